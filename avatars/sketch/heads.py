"""Random heads to draw: a model's identities, expressions and poses, plus detail no linear model
holds (smooth bumps, exaggerated features, wrinkles) so the fine stage has something to recover,
and the procedural character head's face carried onto the model (:mod:`.character`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class HeadConfig:
    """Ranges of the random heads (coefficient prior scales, radians, mm)."""

    identity_sigma: float = 1.0  # identity ~ N(0, sigma² identity_std²)
    expression_active: int = 3  # expressions switched on per head (weights U(0, expression_max))
    expression_max: float = 0.7
    yaw: float = 0.14  # neck rotation, uniform in [-yaw, yaw] rad (~8°)
    pitch: float = 0.09
    detail_p: float = 0.8  # probability that a head gets detail beyond the linear model
    bumps: int = 6  # smooth random displacements along the normal
    bump_mm: float = 3.0  # their amplitude (up to)
    bump_radius_mm: tuple[float, float] = (10.0, 30.0)
    wrinkle_mm: float = 1.0  # forehead wrinkle amplitude (up to)
    character_p: float = 0.15  # probability that a head's face is the character head's (random identity), where the model allows


@dataclass(frozen=True)
class Heads:
    """A batch of random heads. ``identity`` (B, n_identity), ``expression`` (B, n_expression),
    ``neck`` (B, 3) rad: the linear part; ``vertices`` (B, V, 3) mm: the posed head with its detail;
    ``linear`` (B, V, 3) mm: the same without detail; ``character`` (B,) bool: the heads whose face
    is the character head's (:mod:`.character`)."""

    identity: Tensor
    expression: Tensor
    neck: Tensor
    vertices: Tensor
    linear: Tensor
    character: Tensor


def detail_field(model, vertices: Tensor, cfg: HeadConfig, gen: torch.Generator) -> Tensor:
    """(B, V, 3) posed heads -> (B, V) displacement along the normal, mm, zero off the face.

    Gaussian bumps centred on random face vertices (an exaggerated nose, cheek, brow or chin
    comes out of the same field) and horizontal forehead wrinkles.
    """
    B, V, _ = vertices.shape
    face = model.region_mask("face", missing_ok=True)
    if not bool(face.any()):
        face = torch.ones(V, dtype=torch.bool)
    face_idx = torch.nonzero(face)[:, 0]
    rest = model.template
    d = torch.zeros(B, V)
    for _ in range(cfg.bumps):
        c = rest[face_idx[torch.randint(len(face_idx), (B,), generator=gen)]]  # (B, 3)
        lo, hi = cfg.bump_radius_mm
        r = lo + (hi - lo) * torch.rand(B, 1, generator=gen)
        a = (torch.rand(B, 1, generator=gen) * 2 - 1) * cfg.bump_mm
        d = d + a * torch.exp(-((rest[None] - c[:, None]).pow(2).sum(-1)) / r.pow(2))
    if "upper_face" in model.regions:
        up = model.region_mask("upper_face")
        y = rest[:, 1]
        y0 = rest[up, 1].quantile(0.6)
        band = (up & (y > y0)).float()
        period = 7 + 5 * torch.rand(B, 1, generator=gen)
        amp = torch.rand(B, 1, generator=gen) * cfg.wrinkle_mm
        phase = torch.rand(B, 1, generator=gen) * 6.283
        d = d + band * amp * torch.sin(y[None] * 6.283 / period + phase)
    on = (torch.rand(B, 1, generator=gen) < cfg.detail_p).float()
    return d * _soft_mask(model, face) * on


def neighbour_mean(model):
    """A function taking per-vertex values (..., V, C) of ``model`` to the mean of each vertex's
    mesh neighbours' values (an edge shared by two triangles counts twice)."""
    f = model.faces
    e = torch.cat((f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]))
    e = torch.cat((e, e.flip(1)))
    deg = torch.zeros(model.n_vertices).index_add_(0, e[:, 0], torch.ones(len(e))).clamp_min(1)[:, None]
    return lambda x: torch.zeros_like(x).index_add_(x.dim() - 2, e[:, 0], x[..., e[:, 1], :]) / deg


def _soft_mask(model, mask: Tensor, rounds: int = 6) -> Tensor:
    """(V,) bool -> (V,) float that fades from 1 inside to 0 at the mask's border (neighbour
    averaging), so displacements leave no step at the border."""
    mean = neighbour_mean(model)
    m = mask.float()[:, None]
    w = m
    for _ in range(rounds):
        w = mean(w) * m
    return w[:, 0]


def sample_heads(model, n: int, seed: int | torch.Generator = 0, cfg: HeadConfig = HeadConfig(),
                 detail: bool = True) -> Heads:
    """Draw ``n`` random heads of ``model`` (see :class:`HeadConfig`)."""
    from face3d.geometry.normals import vertex_normals

    gen = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed))
    ident = torch.randn(n, model.n_identity, generator=gen) * cfg.identity_sigma * model.identity_std
    ex = torch.zeros(n, model.n_expression)
    k = min(cfg.expression_active, model.n_expression)
    for i in range(n):
        idx = torch.randperm(model.n_expression, generator=gen)[:k]
        ex[i, idx] = torch.rand(k, generator=gen) * cfg.expression_max
    neck = torch.zeros(n, 3)
    neck[:, 0] = (torch.rand(n, generator=gen) * 2 - 1) * cfg.pitch
    neck[:, 1] = (torch.rand(n, generator=gen) * 2 - 1) * cfg.yaw
    with torch.no_grad():
        lin = model(identity=ident, expression=ex, neck=neck).vertices
        verts = lin
        if detail:
            d = detail_field(model, lin, cfg, gen)
            verts = lin + d[..., None] * vertex_normals(lin, model.faces)
        # Drawn after the model's own heads, so those are the same with or without characters.
        ident, ex, lin, verts, pick = _characters(model, n, gen, cfg, ident, ex, neck, lin, verts, detail)
    return Heads(ident, ex, neck, verts, lin, pick)


def _characters(model, n, gen, cfg, ident, ex, neck, lin, verts, detail):
    """Replace a random ``cfg.character_p`` share of the heads by character heads (their linear
    part fitted to the character's face, the rest of it posed with the head as detail)."""
    from face3d.geometry.rotations import axis_angle_to_matrix

    from avatars.sketch.character import _character, character_faces, transfer_for

    none = torch.zeros(n, dtype=torch.bool)
    if cfg.character_p <= 0:
        return ident, ex, lin, verts, none
    tr = transfer_for(model)
    if tr is None:
        return ident, ex, lin, verts, none
    pick = torch.rand(n, generator=gen) < cfg.character_p
    cid = torch.randn(n, _character().n_identity, generator=gen) * cfg.identity_sigma
    if not bool(pick.any()):
        return ident, ex, lin, verts, pick
    i, e, off = character_faces(model, tr, cid[pick], ex[pick])
    ident, ex, lin, verts = ident.clone(), ex.clone(), lin.clone(), verts.clone()
    ident[pick], ex[pick] = i, e
    lin[pick] = model(identity=i, expression=e, neck=neck[pick]).vertices
    R = axis_angle_to_matrix(neck[pick])  # the face turns with the head about the neck joint
    verts[pick] = lin[pick] + (off @ R.transpose(1, 2) if detail else 0)
    return ident, ex, lin, verts, pick
