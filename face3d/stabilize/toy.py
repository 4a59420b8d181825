"""A small synthetic head for stabilization tests and examples (no asset file needed).

An ellipsoid (~700 vertices) with the regions every model names, identity modes, and
ARKit-named expressions built to be hard for naive stabilizers: ``browInnerUp``, ``browDown_L``,
``browDown_R`` and ``noseSneer`` slide the upper-face skin over the skull, ``mouthSmile_L/R``
and ``cheekPuff`` move the lower face. No expression moves ``scalp_back``, and the scalp is skinned
100% to the head joint, so the skull transform describes it exactly.
"""
from __future__ import annotations

import numpy as np

from face3d.models.base import JOINT_NAMES, LandmarkSet, MorphableModel

_RADII = np.array([78.0, 105.0, 95.0])  # mm, x/y/z half-axes
_CENTRE = np.array([0.0, -20.0, -15.0])


def _bump(p: np.ndarray, c, r: float) -> np.ndarray:
    return np.exp(-(np.linalg.norm(p[:, :2] - np.asarray(c, float), axis=1) / r) ** 2)


def toy_head(n_lat: int = 22, n_lon: int = 32) -> MorphableModel:
    """Build the toy head (float32 buffers, millimetres, ``n_lat * n_lon`` vertices before the
    poles are merged)."""
    th = np.linspace(0, np.pi, n_lat)[1:-1]
    ph = np.linspace(-np.pi, np.pi, n_lon, endpoint=False)
    T, P = np.meshgrid(th, ph, indexing="ij")
    dirs = np.stack([np.sin(T) * np.sin(P), np.cos(T), np.sin(T) * np.cos(P)], -1).reshape(-1, 3)
    dirs = np.concatenate([dirs, [[0, 1, 0], [0, -1, 0]]])
    n_ring = n_lat - 2
    i, j = np.meshgrid(np.arange(n_ring - 1), np.arange(n_lon), indexing="ij")
    a, b = i * n_lon + j, i * n_lon + (j + 1) % n_lon
    c, d = a + n_lon, b + n_lon
    faces = [np.stack([a, c, b], -1).reshape(-1, 3), np.stack([b, c, d], -1).reshape(-1, 3)]
    top, bot = len(dirs) - 2, len(dirs) - 1
    jj = np.arange(n_lon)
    faces.append(np.stack([np.full(n_lon, top), jj, (jj + 1) % n_lon], -1))
    last = (n_ring - 1) * n_lon
    faces.append(np.stack([np.full(n_lon, bot), last + (jj + 1) % n_lon, last + jj], -1))
    faces = np.concatenate(faces)
    verts = dirs * _RADII + _CENTRE
    V = len(verts)
    nrm = dirs
    front = np.clip(nrm[:, 2], 0, 1)
    x, y = verts[:, 0], verts[:, 1]

    # Identity: global size and aspect, nose, chin and brow shape.
    rel = verts - _CENTRE
    idb = np.zeros((V, 3, 6))
    idb[:, :, 0] = rel * 0.04
    idb[:, 0, 1] = rel[:, 0] * 0.05
    idb[:, 1, 2] = rel[:, 1] * 0.05
    idb[:, 2, 3] = 6 * _bump(verts, (0, -5), 16) * front
    idb[:, 2, 4] = 5 * _bump(verts, (0, -75), 20) * front
    idb[:, 2, 5] = 4 * _bump(verts, (0, 30), 30) * front

    names = ["jawOpen", "browInnerUp", "browDown_L", "browDown_R", "noseSneer",
             "mouthSmile_L", "mouthSmile_R", "cheekPuff"]
    exb = np.zeros((V, 3, len(names)))
    exb[:, 1, 0] = -10 * np.clip(-(y + 50) / 25, 0, 1) * front
    brow = np.clip((y - 5) / 25, 0, 1) * np.clip((70 - y) / 30, 0, 1) * front
    exb[:, 1, 1] = 7 * brow  # slides the forehead skin up over the skull
    exb[:, 1, 2] = -5 * brow * np.clip(x / 30, 0, 1)
    exb[:, 1, 3] = -5 * brow * np.clip(-x / 30, 0, 1)
    exb[:, 1, 4] = 4 * _bump(verts, (0, 0), 22) * front
    exb[:, 2, 4] = 1.5 * _bump(verts, (0, 0), 22) * front
    for k, s in ((5, 1.0), (6, -1.0)):
        w = _bump(verts, (s * 30, -55), 15) * front
        exb[:, 0, k], exb[:, 1, k] = 6 * s * w, 5 * w
    exb[:, :, 7] = (nrm * (4 * _bump(verts, (0, -45), 35) * front)[:, None])

    jr = np.zeros((len(JOINT_NAMES), V))
    # Root, neck and jaw joints: centroids of horizontal rings of vertices (so they sit inside).
    for k, (lo, hi) in enumerate(((-125, -112), (-100, -85), (-60, -45))):
        ring = (y > lo) & (y < hi)
        jr[k, ring] = 1 / ring.sum()
    for k, px in ((3, 32.0), (4, -32.0)):
        near = np.argsort(np.linalg.norm(verts - [px, 18, 70], axis=1))[:3]
        jr[k, near] = 1 / 3
    sw = np.zeros((V, len(JOINT_NAMES)))
    neck_w = np.clip(-(y + 100) / 25, 0, 1) * (nrm[:, 2] > -0.3)
    jaw_w = np.clip(-(y + 55) / 20, 0, 1) * front * (1 - neck_w)
    sw[:, 0], sw[:, 2] = neck_w, jaw_w
    sw[:, 1] = 1 - neck_w - jaw_w

    regions = {
        "face": np.nonzero((nrm[:, 2] > 0.25) & (y > -120))[0],
        "scalp_back": np.nonzero((nrm[:, 2] < -0.2) & (y > -70))[0],
        "upper_face": np.nonzero((nrm[:, 2] > 0.25) & (y > -15))[0],
        "lips": np.nonzero((_bump(verts, (0, -55), 14) > 0.5) & (front > 0.5))[0],
        "eyes": np.nonzero(((_bump(verts, (32, 18), 10) > 0.5) | (_bump(verts, (-32, 18), 10) > 0.5)) & (front > 0.3))[0],
        "neck": np.nonzero(neck_w > 0)[0],
    }
    lm = LandmarkSet.from_vertices(np.argsort(np.linalg.norm(verts - [0, -5, 80], axis=1))[:68])
    return MorphableModel(
        name="toy-stabilize", template=verts, faces=faces, identity_basis=idb, expression_basis=exb,
        expression_names=names, identity_std=np.ones(6), expression_std=np.full(len(names), 0.5),
        joint_regressor=jr, skin_weights=sw, landmarks={"ibug68": lm}, regions=regions,
        source="face3d.stabilize.toy",
    )
