"""Synthetic training and evaluation data made with a morphable model.

Random identities, expressions, jaw and head poses, focal lengths and positions; the model's
``ibug68`` landmarks are projected with a random pinhole camera (:mod:`face3d.reconstruct.camera`)
and then jittered and partly dropped, imitating a detector.

:func:`landmark_submodel` makes sampling cheap: the joint centres and landmark vertices are linear
in the coefficients, so a model restricted to those few vertices gives exactly the same landmarks
as the full model.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from face3d.models.base import JOINT_NAMES, LandmarkSet, MorphableModel
from face3d.reconstruct.camera import project


def restrict_model(model: MorphableModel, vertex_ids: Tensor, faces: Tensor | None = None,
                   landmark_names: tuple[str, ...] = ("ibug68",)) -> tuple[MorphableModel, Tensor]:
    """The model restricted to ``vertex_ids`` (plus whatever the named landmark sets use) and
    5 joint vertices, exact for any coefficients and pose (joint centres and vertices are linear
    in the coefficients, so they can be precomputed as their own "vertices").

    Args:
        model: the full model.
        vertex_ids: (n,) int64 vertices to keep.
        faces: (F, 3) triangles of the full model to keep (all their vertices must be kept);
            default none.

    Returns:
        ``(sub, kept)``: the sub-model and (n',) int64 full-model indices of its first n'
        vertices (the joint vertices follow them); ``sub.parent_vertex_ids`` is ``kept`` too, so
        per-vertex data of the full model (e.g. :class:`~face3d.reconstruct.contour.SlidingContour`'s
        bands) can be mapped onto the sub-model.
    """
    lm_ids = [model.landmarks[n].vertex_ids.reshape(-1) for n in landmark_names]
    ids = torch.unique(torch.cat([torch.as_tensor(vertex_ids, dtype=torch.int64).reshape(-1)] + lm_ids))
    remap = torch.full((model.n_vertices,), -1, dtype=torch.int64)
    remap[ids] = torch.arange(ids.numel())
    J = model.joint_regressor  # (J, V)
    n = ids.numel()
    nj = len(JOINT_NAMES)
    # Joint "vertices" reproduce the full model's regressed joint centres exactly (linear map).
    tmpl = torch.cat([model.template[ids], J @ model.template])
    idb = torch.cat([model.identity_basis[ids], torch.einsum("jv,vck->jck", J, model.identity_basis)])
    exb = torch.cat([model.expression_basis[ids], torch.einsum("jv,vck->jck", J, model.expression_basis)])
    jr = torch.zeros(nj, n + nj)
    jr[:, n:] = torch.eye(nj)
    sw = torch.cat([model.skin_weights[ids], torch.eye(nj)])
    pb = None
    if model.pose_basis is not None:
        cols = (ids[:, None] * 3 + torch.arange(3)).reshape(-1)
        pb = torch.cat([model.pose_basis[:, cols], torch.zeros(36, 3 * nj)], 1)
    if faces is None:
        f = torch.zeros(0, 3, dtype=torch.int64)
    else:
        f = remap[faces]
        if (f < 0).any():
            raise ValueError("restrict_model: faces use vertices outside vertex_ids")
    lms = {nm: LandmarkSet(remap[model.landmarks[nm].vertex_ids], model.landmarks[nm].weights) for nm in landmark_names}
    sub = MorphableModel(
        name=f"{model.name}[sub]", template=tmpl, faces=f,
        identity_basis=idb, expression_basis=exb, expression_names=model.expression_names,
        identity_std=model.identity_std, expression_std=model.expression_std,
        joint_regressor=jr, skin_weights=sw, pose_basis=pb, landmarks=lms, regions={},
    )
    sub.parent_vertex_ids = ids
    return sub, ids


def landmark_submodel(model: MorphableModel, name: str = "ibug68") -> MorphableModel:
    """A model with only the vertices landmark set ``name`` uses, plus 5 joint vertices.

    Its forward pass gives the same landmarks (``landmark_positions(v, name)``) as ``model``'s for
    any coefficients and pose, at a fraction of the cost (L + 5 vertices instead of V).
    """
    return restrict_model(model, torch.zeros(0, dtype=torch.int64), None, (name,))[0]


@dataclass(frozen=True)
class SyntheticConfig:
    """Ranges of the random scenes (angles in degrees, sizes in pixels / fractions).

    - ``identity_scale``: identity coefficients ~ N(0, (scale·identity_std)²).
    - ``expression_prob``: chance that an expression component is active; active ones are
      ~U(0, 1)·2·expression_std (ARKit-style weights stay in [0, 1]).
    - ``yaw``/``pitch``/``roll``: uniform head rotation ranges (±).
    - ``jaw_open``: jaw rotation about +x, uniform in [0, jaw_open] degrees.
    - ``fov``: horizontal field of view range; ``face_frac``: face width / image width range.
    - ``noise``: landmark noise std as a fraction of the outer-eye distance.
    - ``dropout``: chance that a landmark is marked missing.
    """

    image_size: int = 256
    identity_scale: float = 1.0
    expression_prob: float = 0.15
    yaw: float = 35.0
    pitch: float = 20.0
    roll: float = 15.0
    jaw_open: float = 15.0
    fov: tuple[float, float] = (15.0, 60.0)
    face_frac: tuple[float, float] = (0.3, 0.7)
    noise: float = 0.02
    dropout: float = 0.05


@dataclass(frozen=True)
class SyntheticBatch:
    """A batch of synthetic scenes (B first).

    ``identity`` (B, n_id), ``expression`` (B, n_exp), ``jaw`` (B, 3) rad, ``rotation`` (B, 3) rad,
    ``translation`` (B, 3) mm, ``focal`` (B,) px, ``landmarks`` (B, 68, 2) px (noisy),
    ``clean`` (B, 68, 2) px (exact projections), ``visible`` (B, 68) bool, ``size`` (W = H) px.
    """

    identity: Tensor
    expression: Tensor
    jaw: Tensor
    rotation: Tensor
    translation: Tensor
    focal: Tensor
    landmarks: Tensor
    clean: Tensor
    visible: Tensor
    size: int


def _euler(yaw: Tensor, pitch: Tensor, roll: Tensor) -> Tensor:
    from face3d.geometry.rotations import matrix_to_axis_angle

    def rot(axis: int, a: Tensor) -> Tensor:
        c, s = torch.cos(a), torch.sin(a)
        R = torch.zeros(a.shape[0], 3, 3, dtype=a.dtype)
        i, j = [(1, 2), (2, 0), (0, 1)][axis]
        R[:, axis, axis] = 1
        R[:, i, i], R[:, j, j], R[:, i, j], R[:, j, i] = c, c, -s, s
        return R

    return matrix_to_axis_angle(rot(1, yaw) @ rot(0, pitch) @ rot(2, roll))


def sample_batch(sub: MorphableModel, batch: int, cfg: SyntheticConfig = SyntheticConfig(),
                 generator: torch.Generator | None = None, name: str = "ibug68") -> SyntheticBatch:
    """Draw ``batch`` random scenes and their detected-like landmarks (float32, CPU).

    ``sub`` is a :func:`landmark_submodel` (or any model; a full model is just slower).
    """
    g = generator
    B = batch

    def U(lo, hi, *shape):
        return lo + (hi - lo) * torch.rand(*(shape or (B,)), generator=g)

    ident = torch.randn(B, sub.n_identity, generator=g) * sub.identity_std * cfg.identity_scale
    active = torch.rand(B, sub.n_expression, generator=g) < cfg.expression_prob
    expr = active * torch.rand(B, sub.n_expression, generator=g) * 2 * sub.expression_std
    if float(sub.expression_std.max()) <= 0.75:  # ARKit-style weights live in [0, 1]
        expr = expr.clamp(0, 1)
    jaw = torch.zeros(B, 3)
    jaw[:, 0] = U(0, math.radians(cfg.jaw_open))
    d2r = math.pi / 180
    rotation = _euler(U(-cfg.yaw, cfg.yaw) * d2r, U(-cfg.pitch, cfg.pitch) * d2r, U(-cfg.roll, cfg.roll) * d2r)
    S = cfg.image_size
    fov = U(*cfg.fov) * d2r
    focal = (S / 2) / torch.tan(fov / 2)
    # Place the head: pick a face size in the image, then the distance that gives it.
    out0 = sub(identity=ident, expression=expr, jaw=jaw)
    lm0 = sub.landmark_positions(out0.vertices, name)
    width_mm = (lm0[:, 16] - lm0[:, 0]).norm(dim=-1)
    frac = U(*cfg.face_frac)
    dist = focal * width_mm / (frac * S)
    centre_px = (torch.rand(B, 2, generator=g) - 0.5) * S * (1 - frac[:, None]) * 0.8
    centre_w = lm0.mean(1)  # the face centre should land at centre_px
    tx = centre_px[:, 0] * dist / focal - centre_w[:, 0]
    ty = -centre_px[:, 1] * dist / focal - centre_w[:, 1]
    translation = torch.stack([tx, ty, -dist - centre_w[:, 2]], -1)
    out = sub(identity=ident, expression=expr, jaw=jaw, rotation=rotation, translation=translation)
    lm3 = sub.landmark_positions(out.vertices, name)
    clean = project(lm3, focal, S, S)
    iod = (clean[:, 36] - clean[:, 45]).norm(dim=-1)
    noisy = clean + torch.randn(clean.shape, generator=g) * (cfg.noise * iod)[:, None, None]
    visible = torch.rand(B, clean.shape[1], generator=g) >= cfg.dropout
    return SyntheticBatch(ident, expr, jaw, rotation, translation, focal, noisy, clean, visible, S)


def normalize_landmarks(landmarks: Tensor, visible: Tensor | None = None) -> Tensor:
    """(B, L, 2) px (+ (B, L) bool) -> (B, 3·L) scale- and translation-free features.

    Visible landmarks are centred on their mean and divided by their RMS distance to it; missing
    ones are zeroed and flagged in the last L entries (1 = visible). Absolute image size and
    position carry no information about metric shape (they depend on distance and focal length),
    so the estimator sees only landmark ratios.
    """
    B, L, _ = landmarks.shape
    vis = torch.ones(B, L, dtype=torch.bool) if visible is None else visible.to(torch.bool)
    w = vis.to(landmarks.dtype)[..., None]
    n = w.sum(1).clamp_min(1)
    c = (landmarks * w).sum(1) / n
    x = (landmarks - c[:, None]) * w
    s = ((x ** 2).sum((1, 2)) / n[:, 0]).sqrt().clamp_min(1e-6)
    x = x / s[:, None, None]
    return torch.cat([x.reshape(B, -1), w.reshape(B, -1)], 1)


def model_fingerprint(model: MorphableModel) -> str:
    """sha256 of the model's template and bases (identifies the model weights were trained for)."""
    from face3d.fileio import content_sha256

    return content_sha256(model.template, model.identity_basis, model.expression_basis,
                          model.landmarks["ibug68"].vertex_ids)
