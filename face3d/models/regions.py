"""Approximate head regions and joints derived from a template's geometry (numpy, mm).

Model files users bring do not always come with region masks (FLAME without
``FLAME_masks.pkl``) or a skeleton (ICT-FaceKit). These helpers derive them from the neutral
template in the toolkit frame (+x subject's left, +y up, +z out of the face), measured in units
of the distance ``d`` between the eyeball centres (about 60 mm for adults) from the eyes'
midpoint ``e``. They are **approximations**: good enough to choose which vertices a stabilizer
reads or where a jaw pivots, not anatomical segmentations.
"""
from __future__ import annotations

import numpy as np

# iBUG-68 indices (0-based) used below.
_CHIN, _NOSE_BOTTOM, _MOUTH_L, _MOUTH_R, _LIP_TOP, _LIP_BOTTOM = 8, 33, 54, 48, 51, 57
_CONTOUR_R, _CONTOUR_L = 0, 16


def head_frame(eye_left: np.ndarray, eye_right: np.ndarray) -> tuple[np.ndarray, float]:
    """Eye midpoint (3,) mm and interocular distance ``d`` mm (eyeball centre to centre)."""
    e = (np.asarray(eye_left, float) + np.asarray(eye_right, float)) / 2
    d = float(np.linalg.norm(np.asarray(eye_left, float) - np.asarray(eye_right, float)))
    if not d > 0:
        raise ValueError("eye centres coincide; cannot derive a head frame")
    return e, d


def derive_regions(
    template: np.ndarray,
    eye_left: np.ndarray,
    eye_right: np.ndarray,
    *,
    skin: np.ndarray | None = None,
    eyes: np.ndarray | None = None,
    landmarks68: np.ndarray | None = None,
    expression_basis: np.ndarray | None = None,
    expression_scale: float = 1.0,
    rigid_tol_mm: float = 0.5,
) -> dict[str, np.ndarray]:
    """Required regions (``face, scalp_back, upper_face, lips, eyes, neck``) from geometry.

    Args:
        template: (V, 3) mm, toolkit frame.
        eye_left, eye_right: (3,) eyeball centres, mm.
        skin: (V,) bool, vertices on the outer skin (default all); ``face``, ``lips``,
            ``upper_face``, ``scalp_back`` and ``neck`` are subsets of it.
        eyes: (n,) int vertex indices of the eyeballs (default: none).
        landmarks68: (68, 3) iBUG-68 positions on the template, mm, when known; they place the
            chin and the lips (otherwise typical proportions are used).
        expression_basis: (V, 3, K) mm per unit coefficient, when known: ``scalp_back`` must be
            rigid (stabilizers measure skull motion on it), so vertices that some expression at
            coefficient ``expression_scale`` moves by ``rigid_tol_mm`` or more are dropped from it
            (keeping at least the least-moving quarter of the geometric set).

    Returns:
        name -> sorted int64 vertex indices. Rules (``X, Y, Z`` = offsets from the eye midpoint
        in units of ``d``): face: ``Z > -0.75``, ``Y < 1.1``, above the chin, ``|X| < 1.3``;
        upper_face: face above the nose tip (``Y > -0.45``), eyeballs excluded; lips: an ellipse
        through the mouth corners and the outer lip midpoints, front surface only; scalp_back:
        ``Z < -1.0`` or ``Y > 1.35``, above the chin line, minus vertices expressions move (see
        ``expression_basis``); neck: more than ``0.2 d`` below the chin.
    """
    v = np.asarray(template, dtype=np.float64)
    V = len(v)
    e, d = head_frame(eye_left, eye_right)
    X, Y, Z = ((v - e) / d).T
    skin = np.ones(V, bool) if skin is None else np.asarray(skin, bool)
    eye_mask = np.zeros(V, bool)
    if eyes is not None:
        eye_mask[np.asarray(eyes, np.int64)] = True
    if landmarks68 is not None:
        L = (np.asarray(landmarks68, float) - e) / d
        chin_y = L[_CHIN, 1]
        mouth_c = (L[_MOUTH_L] + L[_MOUTH_R]) / 2
        mouth_a = np.linalg.norm(L[_MOUTH_L, :2] - L[_MOUTH_R, :2]) / 2 * 1.1
        mouth_cy = (L[_LIP_TOP, 1] + L[_LIP_BOTTOM, 1]) / 2
        mouth_b = (L[_LIP_TOP, 1] - L[_LIP_BOTTOM, 1]) / 2 * 1.2
        lip_z = min(L[_MOUTH_L, 2], L[_MOUTH_R, 2]) - 0.1
    else:
        chin_y = -1.8
        mouth_c = np.array([0.0, -1.2, 0.0])
        mouth_cy, mouth_a, mouth_b = -1.2, 0.42, 0.22
        lip_z = Z[skin & (np.abs(X) < 0.1) & (np.abs(Y - mouth_cy) < 0.2)].max(initial=0.0) - 0.35
    face = skin & ~eye_mask & (Z > -0.75) & (Y < 1.1) & (Y > chin_y - 0.05) & (np.abs(X) < 1.3)
    upper = face & (Y > -0.45)
    lips = skin & ~eye_mask & (Z > lip_z) & (
        ((X - mouth_c[0]) / mouth_a) ** 2 + ((Y - mouth_cy) / mouth_b) ** 2 < 1
    )
    scalp_back = skin & ~eye_mask & ((Z < -1.0) | (Y > 1.35)) & (Y > chin_y + 0.3)
    if expression_basis is not None and np.asarray(expression_basis).shape[-1] > 0 and scalp_back.any():
        moves = np.linalg.norm(np.asarray(expression_basis, np.float64), axis=1).max(1) * abs(expression_scale)
        rigid = scalp_back & (moves < rigid_tol_mm)
        if rigid.sum() < scalp_back.sum() / 4:  # keep the least-moving quarter rather than nothing
            idx = np.nonzero(scalp_back)[0]
            keep = idx[np.argsort(moves[idx], kind="stable")[: max(1, len(idx) // 4)]]
            rigid = np.zeros(V, bool)
            rigid[keep] = True
        scalp_back = rigid
    neck = skin & (Y < chin_y - 0.2)
    out = {
        "face": face, "upper_face": upper, "lips": lips, "scalp_back": scalp_back, "neck": neck,
        "eyes": eye_mask,
    }
    return {k: np.nonzero(m)[0].astype(np.int64) for k, m in out.items()}


def affine_regressor(template: np.ndarray, anchors: np.ndarray, point: np.ndarray) -> np.ndarray:
    """(V,) weights summing to 1 over ``anchors`` such that ``weights @ template == point``.

    The minimum-norm affine combination of the anchor vertices: a joint placed inside the head
    (where no vertex is) still follows the shaped mesh linearly, translation included.
    """
    v = np.asarray(template, np.float64)
    a = np.unique(np.asarray(anchors, np.int64))
    A = np.concatenate([v[a].T, np.ones((1, len(a)))], 0)  # (4, n)
    b = np.concatenate([np.asarray(point, float), [1.0]])
    w, *_ = np.linalg.lstsq(A, b, rcond=None)
    if np.abs(A @ w - b).max() > 1e-6 * max(1.0, np.abs(b).max()):
        raise ValueError("anchor vertices are coplanar; cannot express the joint as their affine combination")
    out = np.zeros(len(v))
    out[a] = w
    return out


def smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3 - 2 * t)
