"""Synthetic training and evaluation data for stabilization, from any :class:`MorphableModel`.

A *pair* is one identity in two expressions (jaw included; extremes included; brow and nose
expressions that slide the upper-face skin over the skull), two neck rotations and two random
global rigid transforms, plus registration-like noise (per-vertex jitter and a smooth,
low-frequency drift field). A *performance* is a sequence with smooth expression and head motion.

Ground truth is the relative skull transform ``T_rel = S_b @ inv(S_a)`` (``S`` =
:attr:`ModelOutput.skull_transform`), which maps mesh A's skull onto mesh B's. The meshes are
returned whole (the model's topology), but a stabilizer only reads :func:`visible_vertices`: the
face as a scanner crops it, without the back of the head, the neck, the eyes or the mouth
interior, so the rigid parts that define the ground truth are never visible to any method.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from face3d.models.base import HEAD_JOINT, MorphableModel
from face3d.stabilize.align import invert_transform

# Regions no method may use: they carry no skull signal (neck, eyeballs, mouth interior) or are
# not captured by face scanners (back of the head). Regions a model lacks are skipped.
HIDDEN_REGIONS = ("scalp_back", "neck", "eyes", "mouth_interior")
_UPPER_FACE_WORDS = ("brow", "nose", "sneer", "squint")
_ARKIT_PREFIXES = ("brow", "jaw", "mouth", "eye", "nose", "cheek")


@dataclass(frozen=True)
class SynthConfig:
    """How synthetic meshes are sampled (angles in degrees, lengths in mm).

    ``expression_kind``: ``"blendshape"`` (ARKit-style weights in [0, 1]: built-in, ICT),
    ``"pca"`` (FLAME-style ~N(0, std²)) or ``"auto"`` (blendshape when the names look like ARKit).
    """

    identity_scale: float = 1.0
    expression_kind: Literal["auto", "blendshape", "pca"] = "auto"
    expression_active_prob: float = 0.15
    upper_face_active_prob: float = 0.4  # brow/nose/squint shapes: the ones that fool stabilizers
    extreme_prob: float = 0.15  # an active weight is set to its extreme (1, or 2.5 std for PCA)
    jaw_open_prob: float = 0.6
    jaw_open_max_deg: float = 25.0
    neck_max_deg: tuple[float, float, float] = (25.0, 35.0, 15.0)  # about x (pitch), y (yaw), z (roll)
    eye_max_deg: float = 20.0
    global_rot_max_deg: float = 30.0
    global_trans_max_mm: float = 40.0
    jitter_mm: float = 0.1  # per-vertex registration noise (std)
    drift_mm: float = 0.3  # amplitude of the low-frequency drift field
    drift_wavelength_mm: float = 150.0


@dataclass(frozen=True)
class PairBatch:
    """B synthetic pairs (float32, mm).

    - ``source``, ``target`` (B, V, 3): noisy meshes (what a stabilizer is given).
    - ``source_clean``, ``target_clean`` (B, V, 3): the same without noise.
    - ``transform`` (B, 4, 4): ground truth ``S_target @ inv(S_source)``.
    - ``source_skull``, ``target_skull`` (B, 4, 4): the skull transforms ``S``.
    - ``source_head`` (B, 3): the posed head joint of the source (the centre at which translation
      errors are measured).
    """

    source: Tensor
    target: Tensor
    source_clean: Tensor
    target_clean: Tensor
    transform: Tensor
    source_skull: Tensor
    target_skull: Tensor
    source_head: Tensor


@dataclass(frozen=True)
class Performance:
    """S synthetic sequences of T frames (float32, mm).

    - ``frames`` (S, T, V, 3) noisy, ``clean`` (S, T, V, 3) without noise.
    - ``skull`` (S, T, 4, 4) skull transforms; ``head`` (S, T, 3) posed head joints.
    """

    frames: Tensor
    clean: Tensor
    skull: Tensor
    head: Tensor

    def relative_to(self, reference: int = 0) -> Tensor:
        """(S, T, 4, 4) ground truth mapping the reference frame's skull onto each frame's."""
        return self.skull @ invert_transform(self.skull[:, reference : reference + 1])


def hidden_mask(model: MorphableModel) -> Tensor:
    """(V,) bool: vertices no stabilizer may read (see :data:`HIDDEN_REGIONS`)."""
    m = torch.zeros(model.n_vertices, dtype=torch.bool)
    for name in HIDDEN_REGIONS:
        if name in model.regions:
            m[model.regions[name]] = True
    return m


def visible_vertices(model: MorphableModel) -> Tensor:
    """(N,) int64 sorted indices of the face vertices a stabilizer may read: ``face`` minus
    :data:`HIDDEN_REGIONS`."""
    keep = torch.zeros(model.n_vertices, dtype=torch.bool)
    keep[model.region("face")] = True
    idx = torch.nonzero(keep & ~hidden_mask(model))[:, 0]
    if idx.numel() < 3:
        raise ValueError(f"model {model.name!r}: the visible face region has {idx.numel()} vertices; need at least 3")
    return idx


def upper_face_vertices(model: MorphableModel) -> Tensor:
    """(N,) int64: ``upper_face`` minus :data:`HIDDEN_REGIONS`."""
    keep = torch.zeros(model.n_vertices, dtype=torch.bool)
    keep[model.region("upper_face")] = True
    return torch.nonzero(keep & ~hidden_mask(model))[:, 0]


def expression_kind(model: MorphableModel, kind: str = "auto") -> str:
    if kind != "auto":
        return kind
    names = [n.lower() for n in model.expression_names]
    return "blendshape" if sum(n.startswith(_ARKIT_PREFIXES) for n in names) >= max(1, len(names) // 2) else "pca"


def _uniform(shape, lo, hi, g: torch.Generator) -> Tensor:
    return lo + (hi - lo) * torch.rand(shape, generator=g)


def _random_rotvec(n: int, max_deg: float, g: torch.Generator) -> Tensor:
    axis = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=-1)
    return axis * _uniform((n, 1), 0.0, math.radians(max_deg), g)


def sample_expressions(model: MorphableModel, n: int, cfg: SynthConfig, g: torch.Generator) -> Tensor:
    """(n, n_expression) random expression coefficients (sparse, with extremes)."""
    K = model.n_expression
    upper = torch.tensor([any(w in nm.lower() for w in _UPPER_FACE_WORDS) for nm in model.expression_names])
    p = torch.where(upper, cfg.upper_face_active_prob, cfg.expression_active_prob)
    active = torch.rand(n, K, generator=g) < p
    extreme = torch.rand(n, K, generator=g) < cfg.extreme_prob
    if expression_kind(model, cfg.expression_kind) == "blendshape":
        w = torch.where(extreme, torch.ones(n, K), torch.rand(n, K, generator=g))
    else:
        z = torch.randn(n, K, generator=g)
        w = torch.where(extreme, 2.5 * torch.sign(z), z) * model.expression_std.cpu()
    return (w * active).float()


def sample_pose(n: int, cfg: SynthConfig, g: torch.Generator) -> dict[str, Tensor]:
    """Random jaw (n, 3), neck (n, 3), eyes (n, 6) axis-angles (radians)."""
    jaw_open = _uniform((n,), 0.0, math.radians(cfg.jaw_open_max_deg), g)
    jaw_open = torch.where(torch.rand(n, generator=g) < cfg.extreme_prob, math.radians(cfg.jaw_open_max_deg), jaw_open)
    jaw_open = jaw_open * (torch.rand(n, generator=g) < cfg.jaw_open_prob)
    jaw = torch.stack([jaw_open, _uniform((n,), -0.05, 0.05, g), _uniform((n,), -0.03, 0.03, g)], -1)
    lim = torch.tensor([math.radians(a) for a in cfg.neck_max_deg])
    neck = (2 * torch.rand(n, 3, generator=g) - 1) * lim
    eyes = (2 * torch.rand(n, 6, generator=g) - 1) * math.radians(cfg.eye_max_deg)
    return {"jaw": jaw, "neck": neck, "eyes": eyes}


def registration_noise(template: Tensor, n: int, cfg: SynthConfig, g: torch.Generator) -> Tensor:
    """(n, V, 3) noise in mm: iid jitter plus a smooth drift field over the template (V, 3).

    The drift is a sum of 4 random plane waves with wavelength ``drift_wavelength_mm``, evaluated
    at the rest-pose position of each vertex, so it slides the surface coherently (as a
    registration does when it settles differently from scan to scan).
    """
    V = template.shape[0]
    noise = torch.randn(n, V, 3, generator=g) * cfg.jitter_mm
    if cfg.drift_mm > 0:
        k = torch.nn.functional.normalize(torch.randn(n, 4, 3, generator=g), dim=-1) * (2 * math.pi / cfg.drift_wavelength_mm)
        phase = _uniform((n, 4, 1), 0.0, 2 * math.pi, g)
        amp = torch.randn(n, 4, 3, generator=g) * (cfg.drift_mm / 2)  # 4 waves: total std ~ drift_mm
        waves = torch.sin(torch.einsum("nkc,vc->nkv", k, template.cpu().float()) + phase)  # (n, 4, V)
        noise = noise + torch.einsum("nkv,nkc->nvc", waves, amp)
    return noise


def _global_transform(n: int, cfg: SynthConfig, g: torch.Generator) -> tuple[Tensor, Tensor]:
    rot = _random_rotvec(n, cfg.global_rot_max_deg, g)
    trans = (2 * torch.rand(n, 3, generator=g) - 1) * cfg.global_trans_max_mm
    return rot, trans


def _evaluate(model: MorphableModel, identity: Tensor, expression: Tensor, pose: dict[str, Tensor],
              rot: Tensor, trans: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    # In the model's own dtype, so a float64 model gives float64 ground truth.
    dev, dt = model.template.device, model.template.dtype
    c = lambda x: x.to(device=dev, dtype=dt)  # noqa: E731
    args = dict(identity=c(identity), expression=c(expression), neck=c(pose["neck"]), jaw=c(pose["jaw"]),
                eyes=c(pose["eyes"]), rotation=c(rot), translation=c(trans))
    out = model(**args)
    return out.vertices, out.skull_transform, out.joints[:, HEAD_JOINT]


@torch.no_grad()
def sample_groups(model: MorphableModel, n_identities: int, per_identity: int, cfg: SynthConfig,
                  g: torch.Generator) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``n_identities * per_identity`` meshes, ``per_identity`` consecutive ones sharing an identity.

    Returns ``(noisy (M, V, 3), clean (M, V, 3), skull (M, 4, 4), head (M, 3))`` with
    ``M = n_identities * per_identity`` (float32, mm). Any two meshes of a group form a pair.
    """
    M = n_identities * per_identity
    ident = torch.randn(n_identities, model.n_identity, generator=g) * model.identity_std.cpu() * cfg.identity_scale
    ident = ident.repeat_interleave(per_identity, 0)
    expr = sample_expressions(model, M, cfg, g)
    pose = sample_pose(M, cfg, g)
    rot, trans = _global_transform(M, cfg, g)
    clean, skull, head = _evaluate(model, ident, expr, pose, rot, trans)
    noise = registration_noise(model.template, M, cfg, g).to(clean)
    return clean + noise, clean, skull, head


@torch.no_grad()
def sample_pairs(model: MorphableModel, batch_size: int, cfg: SynthConfig = SynthConfig(),
                 generator: torch.Generator | int | None = None) -> PairBatch:
    """``batch_size`` random pairs (see the module docstring). ``generator``: a torch CPU
    generator or an int seed (default seed 0)."""
    g = generator if isinstance(generator, torch.Generator) else torch.Generator().manual_seed(int(generator or 0))
    noisy, clean, skull, head = sample_groups(model, batch_size, 2, cfg, g)
    S_a, S_b = skull[0::2], skull[1::2]
    return PairBatch(
        source=noisy[0::2], target=noisy[1::2], source_clean=clean[0::2], target_clean=clean[1::2],
        transform=S_b @ invert_transform(S_a), source_skull=S_a, target_skull=S_b, source_head=head[0::2],
    )


def _smooth_curves(n: int, T: int, k: int, g: torch.Generator, n_waves: int = 3, period: tuple[float, float] = (20.0, 80.0)) -> Tensor:
    """(n, T, k) smooth random curves in about [-1, 1]: sums of sines with periods in frames."""
    t = torch.arange(T, dtype=torch.float32)[None, :, None, None]
    per = _uniform((n, 1, k, n_waves), *period, g)
    ph = _uniform((n, 1, k, n_waves), 0.0, 2 * math.pi, g)
    amp = torch.rand(n, 1, k, n_waves, generator=g)
    amp = amp / amp.sum(-1, keepdim=True)
    return (amp * torch.sin(2 * math.pi * t / per + ph)).sum(-1)


@torch.no_grad()
def sample_performances(model: MorphableModel, n_sequences: int, n_frames: int, cfg: SynthConfig = SynthConfig(),
                        generator: torch.Generator | int | None = None) -> Performance:
    """Synthetic performances: smooth expression, jaw, neck and global head motion over
    ``n_frames`` frames, with per-frame registration noise (see :class:`Performance`)."""
    g = generator if isinstance(generator, torch.Generator) else torch.Generator().manual_seed(int(generator or 0))
    S, T, K = n_sequences, n_frames, model.n_expression
    ident = torch.randn(S, model.n_identity, generator=g) * model.identity_std.cpu() * cfg.identity_scale
    # Expressions: each sequence uses a random subset; a curve's positive part is its weight.
    scale = sample_expressions(model, S, cfg, g)  # (S, K): which shapes and how strongly
    if expression_kind(model, cfg.expression_kind) == "blendshape":
        expr = scale.abs()[:, None] * _smooth_curves(S, T, K, g).clamp_min(0) * 1.6
        expr = expr.clamp(0, 1)
    else:
        expr = scale[:, None] * _smooth_curves(S, T, K, g) * 1.6
    jaw_amp = torch.rand(S, 1, generator=g) * math.radians(cfg.jaw_open_max_deg)
    jaw = torch.zeros(S, T, 3)
    jaw[..., 0] = jaw_amp * _smooth_curves(S, T, 1, g)[..., 0].clamp_min(0) * 1.6
    lim = torch.tensor([math.radians(a) for a in cfg.neck_max_deg])
    neck = _smooth_curves(S, T, 3, g, period=(40.0, 160.0)) * lim
    eyes = _smooth_curves(S, T, 6, g, period=(10.0, 40.0)) * math.radians(cfg.eye_max_deg)
    rot0, trans0 = _global_transform(S, cfg, g)
    rot = rot0[:, None] + _smooth_curves(S, T, 3, g, period=(60.0, 200.0)) * math.radians(10)
    trans = trans0[:, None] + _smooth_curves(S, T, 3, g, period=(60.0, 200.0)) * 15.0
    flat = lambda x: x.reshape(S * T, -1)  # noqa: E731
    clean, skull, head = _evaluate(
        model, ident.repeat_interleave(T, 0), flat(expr), {"jaw": flat(jaw), "neck": flat(neck), "eyes": flat(eyes)},
        flat(rot), flat(trans),
    )
    noise = registration_noise(model.template, S * T, cfg, g).to(clean)
    V = model.n_vertices
    return Performance(
        frames=(clean + noise).reshape(S, T, V, 3), clean=clean.reshape(S, T, V, 3),
        skull=skull.reshape(S, T, 4, 4), head=head.reshape(S, T, 3),
    )


def restrict_model(model: MorphableModel, keep: Tensor) -> MorphableModel:
    """A model that evaluates only the vertices ``keep`` (K,) of ``model``, exactly.

    Its vertices are ``model``'s ``keep`` vertices followed by 5 virtual vertices that reproduce
    the joint positions (the joint regressor is linear in the shaped mesh, so it folds into
    template and bases). Training data needs a few thousand of the model's vertices; skipping
    the rest (eyeballs, mouth interior, hair) makes generation several times faster.
    Output vertex ``i < K`` equals vertex ``keep[i]`` of the full model for the same inputs (up to
    float32 rounding of the folded joint terms, ~1e-5 mm).
    """
    keep = torch.as_tensor(keep, dtype=torch.int64)
    J = model.joint_regressor
    tmpl = torch.cat([model.template[keep], J @ model.template])
    idb = torch.cat([model.identity_basis[keep], torch.einsum("jv,vck->jck", J, model.identity_basis)])
    exb = torch.cat([model.expression_basis[keep], torch.einsum("jv,vck->jck", J, model.expression_basis)])
    nj = J.shape[0]
    K = len(keep)
    jr = torch.zeros(nj, K + nj)
    jr[:, K:] = torch.eye(nj)
    sw = torch.cat([model.skin_weights[keep], torch.eye(nj)])
    pb = None
    if model.pose_basis is not None:
        pb = model.pose_basis.reshape(36, -1, 3)[:, keep]
        pb = torch.cat([pb, torch.zeros(36, nj, 3, dtype=pb.dtype)], 1).reshape(36, -1)
    return MorphableModel(
        name=f"{model.name}[{K} vertices]", template=tmpl, faces=torch.zeros(0, 3, dtype=torch.int64),
        identity_basis=idb, expression_basis=exb, expression_names=model.expression_names,
        identity_std=model.identity_std, expression_std=model.expression_std, joint_regressor=jr,
        skin_weights=sw, pose_basis=pb, landmarks={}, regions={}, source=model.source,
    ).to(model.template.device)


def skull_points(model: MorphableModel) -> Tensor:
    """(N,) int64: the vertices errors are measured on (``scalp_back``: rigid, never visible)."""
    return model.region("scalp_back")


__all__ = [
    "SynthConfig", "PairBatch", "Performance", "HIDDEN_REGIONS", "hidden_mask", "visible_vertices",
    "upper_face_vertices", "sample_pairs", "sample_groups", "sample_performances", "sample_expressions",
    "sample_pose", "registration_noise", "skull_points", "expression_kind", "restrict_model",
]
