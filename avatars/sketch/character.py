"""The procedural character head's face on another model's topology, as a head to draw.

The character model (``face3d.load_model("character")``, a stylised head with its own identity
and expression bases) does not share the default model's topology or frame. :func:`register`
maps it once: a similarity from the two models' inner ``ibug68`` landmarks, then a fit of the
target model's identity to the character's surface (iterated closest points on the character's
skin), which leaves every face vertex of the target model on a triangle of the
character mesh (its barycentrics kept). :func:`character_faces` then carries any random character
head over: its face vertices land on the same barycentric points of the deformed character
mesh, the target model's identity is fitted to them (least squares under the model's prior, so
the coefficients stay near the range the coarse stage is trained on; expressions are shared by
name), and what the linear head cannot reach is the head's non-linear part, faded to zero at
the face's border and smoothed (:data:`SMOOTHING_ROUNDS`).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor

# Closest points fold the model's mesh where the character's surface is concave (nostrils, lip
# corners). On 20 random character identities carried onto the default head: unsmoothed, 769 of
# the face's 12,917 triangles flip; after 20 rounds of smoothing the offsets, 180, with the inner
# face 0.89 mm (mean) from the character's surface (its linear part: 2.00 mm) and offsets of
# 2.26 mm (mean) over the face.
SMOOTHING_ROUNDS = 20
INNER_LANDMARKS = range(17, 68)  # ibug68 brows, nose, eyes, mouth: the jaw line is drawn differently by each model


@dataclass(frozen=True)
class CharacterTransfer:
    """Face vertices ``vertex`` (F,) of the target model land on character triangles ``tri``
    (F, 3) (character vertex ids) at barycentrics ``bary`` (F, 3), after the similarity
    ``s * x @ R.T + t`` (mm). ``solve`` (n_identity, 3F) maps the face vertices' displacement
    from the expressed template to identity coefficients (absolute units); ``expressions``
    (n_character_expression, n_expression) gives the character's blendshape weights from the
    model's (by name: ``browInnerUp`` is the mean of ``browInnerUp_L`` and ``_R``), and
    ``shared`` (n_expression,) bool marks the model's expressions the character has;
    ``fade`` (V,) is 1 inside the face, falling to 0 at its border."""

    vertex: Tensor
    tri: Tensor
    bary: Tensor
    R: Tensor
    t: Tensor
    s: Tensor
    solve: Tensor
    expressions: Tensor
    shared: Tensor
    fade: Tensor


def available(model) -> bool:
    """Whether :func:`register` can map the character onto ``model`` (it needs ``ibug68``
    landmarks and a ``face`` region)."""
    return "ibug68" in model.landmarks and "face" in model.regions


def expression_map(model_names, character_names) -> tuple[Tensor, Tensor]:
    """(n_character, n_model) weights giving the character's blendshape weights from the model's,
    matched by name (a character name ``X`` without a model ``X`` takes the mean of the model's
    ``X_L`` and ``X_R``), and the (n_model,) bool mask of the model's names that were used."""
    index = {n: i for i, n in enumerate(model_names)}
    M = torch.zeros(len(character_names), len(model_names))
    for r, n in enumerate(character_names):
        cols = [index[n]] if n in index else [index[k] for k in (n + "_L", n + "_R") if k in index]
        for c in cols:
            M[r, c] = 1.0 / len(cols)
    return M, M.sum(0) > 0


def register(model, iterations: int = 6, prior: float = 100.0) -> CharacterTransfer:
    """Map the character head onto ``model``'s face (see the module docstring).

    ``prior``: weight of the identity prior (squared prior-std units) against the squared mm of
    the face's vertices; at 100 the identities carried onto the default model from 20 random
    characters have an RMS of 1.7 prior standard deviations. Raises ValueError for a model
    without the landmarks or region it needs (:func:`available`).
    """
    from face3d.geometry.procrustes import apply_similarity, procrustes
    from face3d.reconstruct.now import point_mesh_distance

    from avatars.sketch.heads import _soft_mask

    if not available(model):
        raise ValueError(f"character heads: expected a model with 'ibug68' landmarks and a 'face' region, "
                         f"got landmarks {sorted(model.landmarks)} and regions {sorted(model.regions)}")
    ch = _character()
    sel = torch.tensor(list(INNER_LANDMARKS))
    src = ch.landmarks["ibug68"].gather(ch.template[None])[0].double()[sel]
    dst = model.landmarks["ibug68"].gather(model.template[None])[0].double()[sel]
    R, t, s = procrustes(src, dst, scale=True)
    cv = apply_similarity(ch.template.double(), R, t, s)
    skin = ch.region_mask("skin", missing_ok=True)
    cf = ch.faces[skin[ch.faces].all(1)] if bool(skin.any()) else ch.faces
    vertex = torch.nonzero(model.region_mask("face"))[:, 0]
    basis = model.identity_basis.double()[vertex]  # (F, 3, K)
    A = basis.reshape(-1, basis.shape[-1])
    std = model.identity_std.double()
    solve = torch.linalg.solve(A.T @ A + prior * torch.diag(1 / std.pow(2)), A.T)  # (K, 3F)
    x0 = model.template.double()[vertex]
    x = x0
    for _ in range(iterations):
        _, tri, bary = point_mesh_distance(x, cv, cf, k=16)
        q = (cv[cf[tri]] * bary[..., None]).sum(1)
        x = x0 + (basis @ (solve @ (q - x0).reshape(-1)))
    _, tri, bary = point_mesh_distance(x, cv, cf, k=16)
    M, shared = expression_map(model.expression_names, ch.expression_names)
    return CharacterTransfer(vertex, cf[tri], bary.float(), R.float(), t.float(), s.float(), solve.float(), M, shared,
                             _soft_mask(model, model.region_mask("face")))


@lru_cache(maxsize=1)
def _character():
    import face3d

    return face3d.load_model("character")


@lru_cache(maxsize=1)
def transfer_for(model) -> CharacterTransfer | None:
    """:func:`register` for ``model``, once per process (None where it is not :func:`available`)."""
    return register(model) if available(model) else None


def character_faces(model, tr: CharacterTransfer, identity: Tensor, expression: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Character heads on ``model``'s topology at rest, from the character's identity (B, n)
    (prior-std units) and ``model``'s expression weights (B, n_expression), which the character
    takes by name (:func:`expression_map`). Returns the model's identity (B, n_identity)
    (absolute units, as :func:`.heads.sample_heads` draws them), the expression with the weights
    the character lacks set to 0, and the rest-pose offsets (B, V, 3) mm from that linear head
    to the character's face (0 off the face, faded at its border)."""
    from face3d.geometry.procrustes import apply_similarity

    from avatars.sketch.heads import neighbour_mean

    ch = _character()
    ex = expression * tr.shared
    with torch.no_grad():
        cv = ch(identity=identity * ch.identity_std, expression=ex @ tr.expressions.T).vertices
        cv = apply_similarity(cv, tr.R, tr.t, tr.s)
        q = (cv[:, tr.tri] * tr.bary[None, ..., None]).sum(2)  # (B, F, 3)
        expressed = model(expression=ex).vertices
        ident = (q - expressed[:, tr.vertex]).reshape(len(q), -1) @ tr.solve.T  # (B, n_identity)
        lin = model(identity=ident, expression=ex).vertices
        off = torch.zeros_like(lin)
        off[:, tr.vertex] = q - lin[:, tr.vertex]
        mean = neighbour_mean(model)
        for _ in range(SMOOTHING_ROUNDS):  # each round half kept, half the neighbours' mean
            off = 0.5 * off + 0.5 * mean(off)
        off = off * tr.fade[None, :, None]
    return ident, ex, off
