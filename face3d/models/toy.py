"""Small procedural heads for tests, examples and benchmarks (no asset files needed).

All are built on one UV sphere (:func:`uv_sphere`, poles at +-y, front at +z, millimetres):

- :func:`head_proxy`: a plain coloured ellipsoid mesh with a nose bump, for the renderer.
- :func:`toy_model`: a morphable head with 68 extra landmark vertices laid out in the iBUG 300-W
  order on its front, smooth identity modes (width, height, depth, nose, jaw, ...) and a few
  ARKit-named expressions: what the reconstruction code relies on.
- :func:`toy_head`: a morphable head with the regions every model names and expressions built to
  be hard for naive stabilizers (upper-face skin sliding over the skull); no expression moves
  ``scalp_back`` and the scalp is skinned 100 % to the head joint.

They are not faces; they have exactly the structure the code under test relies on, so tests run
in seconds.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from face3d.models.base import JOINT_NAMES, LandmarkSet, MorphableModel


def uv_sphere(n_lat: int, n_lon: int, dtype=torch.float32) -> tuple[Tensor, Tensor]:
    """A closed unit sphere.

    Args:
        n_lat: rings of quads between the poles (>= 2); n_lon: segments around (>= 3).
    Returns:
        vertices (2 + (n_lat-1)*n_lon, 3) float; faces (2*n_lon*(n_lat-1), 3) int64,
        counter-clockwise seen from outside (outward normals). The poles are at +-y.
    """
    if n_lat < 2 or n_lon < 3:
        raise ValueError(f"n_lat, n_lon: expected >= 2 and >= 3, got {n_lat}, {n_lon}")
    theta = torch.arange(1, n_lat, dtype=torch.float64) * (math.pi / n_lat)  # polar angle from +y
    phi = torch.arange(n_lon, dtype=torch.float64) * (2 * math.pi / n_lon)
    th, ph = torch.meshgrid(theta, phi, indexing="ij")
    ring = torch.stack((torch.sin(th) * torch.sin(ph), torch.cos(th), torch.sin(th) * torch.cos(ph)), -1).reshape(-1, 3)
    verts = torch.cat((torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64), ring,
                       torch.tensor([[0.0, -1.0, 0.0]], dtype=torch.float64)))
    r = n_lat - 1
    idx = torch.arange(r * n_lon).reshape(r, n_lon) + 1
    nxt = torch.roll(idx, -1, dims=1)
    top = torch.stack((torch.zeros(n_lon, dtype=torch.long), idx[0], nxt[0]), -1)
    a, b, c, d = idx[:-1], nxt[:-1], idx[1:], nxt[1:]
    quads = torch.cat((torch.stack((a, c, b), -1).reshape(-1, 3), torch.stack((b, c, d), -1).reshape(-1, 3)))
    last = verts.shape[0] - 1
    bottom = torch.stack((idx[-1], torch.full((n_lon,), last), nxt[-1]), -1)
    faces = torch.cat((top, quads, bottom))
    return verts.to(dtype), faces


def head_proxy(n_lat: int = 24, n_lon: int = 32, dtype=torch.float32) -> tuple[Tensor, Tensor, Tensor]:
    """An ellipsoidal head (semi-axes 75 x 100 x 90 mm, centred at the origin, facing +z) with
    a nose bump and vertex colours that vary over the surface.

    Returns:
        vertices (V, 3) mm, faces (F, 3) int64, colors (V, 3) in [0, 1].
    """
    v, f = uv_sphere(n_lat, n_lon, torch.float64)
    nose = torch.exp(-((v[:, 0] / 0.25) ** 2 + ((v[:, 1] + 0.05) / 0.3) ** 2)) * (v[:, 2] > 0)
    radial = 1.0 + 0.25 * nose
    verts = v * radial[:, None] * torch.tensor([75.0, 100.0, 90.0], dtype=torch.float64)
    colors = torch.stack((0.55 + 0.35 * v[:, 0], 0.5 + 0.3 * torch.sin(3 * v[:, 1]),
                          0.5 + 0.35 * v[:, 2] * torch.cos(2 * v[:, 0])), -1).clamp(0, 1)
    return verts.to(dtype), f, colors.to(dtype)


def _sphere_np(n_lat: int, n_lon: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`uv_sphere` as numpy float64 unit directions, int64 faces and (V, 2) UVs."""
    v, f = uv_sphere(n_lat, n_lon, torch.float64)
    d = v.numpy()
    ph = np.arctan2(d[:, 0], d[:, 2])
    uv = np.stack([(ph + np.pi) / (2 * np.pi), 1 - np.arccos(np.clip(d[:, 1], -1, 1)) / np.pi], -1)
    return d, f.numpy(), uv


def _bump(p: np.ndarray, c, r: float) -> np.ndarray:
    """Gaussian bump of radius ``r`` mm around ``c`` = (x, y) in the front view (V,)."""
    return np.exp(-(np.linalg.norm(p[:, :2] - np.asarray(c, float), axis=1) / r) ** 2)


# iBUG-68 layout (x to the subject's left, y up, mm; outer eye corners 90 mm apart), measured once
# with dlib on skimage.data.astronaut() and rounded.
_IBUG68_2D = np.array([
    [-69, -1], [-67, -19], [-66, -36], [-64, -54], [-60, -70], [-51, -85], [-37, -97], [-24, -109],
    [-7, -112], [10, -111], [27, -102], [42, -90], [52, -76], [60, -60], [64, -42], [67, -25],
    [70, -7], [-58, 13], [-49, 22], [-37, 24], [-25, 21], [-13, 16], [16, 15], [28, 18], [40, 18],
    [52, 16], [60, 6], [1, 1], [0, -12], [0, -24], [0, -36], [-16, -42], [-9, -45], [-1, -46],
    [6, -45], [13, -43], [-45, 3], [-37, 7], [-27, 7], [-19, -1], [-28, -1], [-39, -1], [18, -4],
    [27, 4], [37, 4], [45, -3], [37, -6], [28, -6], [-36, -54], [-24, -54], [-10, -54], [-1, -57],
    [7, -55], [19, -55], [31, -57], [19, -72], [6, -78], [-4, -79], [-13, -78], [-25, -70],
    [-31, -57], [-10, -60], [-3, -61], [7, -60], [27, -58], [6, -70], [-3, -72], [-12, -70],
], dtype=np.float64)

_LM_RADII = np.array([80.0, 120.0, 95.0])  # mm, x/y/z half-axes
_LM_CENTRE = np.array([0.0, -30.0, -20.0])  # ellipsoid centre relative to the eye line


def toy_model(n_lat: int = 24, n_lon: int = 40) -> MorphableModel:
    """Build the landmark toy head (float32 buffers, mm; ``(n_lat - 2) * n_lon + 2`` shell vertices,
    68 landmark vertices and 5 joint vertices).

    Identity modes (unit coefficient ≈ one standard deviation): 0 overall size, 1 width,
    2 height, 3 depth, 4 nose protrusion, 5 jaw width, 6 eye spacing, 7 mouth width.
    Expressions: ``jawOpen``, ``mouthSmile_L``, ``mouthSmile_R``, ``browInnerUp``.
    """
    dirs, faces, uv = _sphere_np(n_lat - 1, n_lon)
    shell = dirs * _LM_RADII + _LM_CENTRE
    # Landmarks: the 2D layout pushed onto the ellipsoid's front surface.
    x, y = _IBUG68_2D[:, 0], _IBUG68_2D[:, 1]
    u = np.clip(1 - ((x - _LM_CENTRE[0]) / _LM_RADII[0]) ** 2 - ((y - _LM_CENTRE[1]) / _LM_RADII[1]) ** 2, 0.05, 1)
    lm = np.stack([x, y, _LM_CENTRE[2] + _LM_RADII[2] * np.sqrt(u)], -1)
    lm[27:31, 2] += np.array([2.0, 8.0, 14.0, 20.0])  # a nose ridge
    lm[31:36, 2] += np.array([6.0, 10.0, 14.0, 10.0, 6.0])
    joints = np.array([[0, -150, -40], [0, -110, -30], [0, -40, -40], [30, 0, 10], [-30, 0, 10]], float)
    joints[3] = lm[42:48].mean(0) - [0, 0, 12]
    joints[4] = lm[36:42].mean(0) - [0, 0, 12]
    V0, L = shell.shape[0], 68
    verts = np.concatenate([shell, lm, joints])
    V = verts.shape[0]
    uvs = np.concatenate([uv, np.full((V - V0, 2), 0.5)])

    rel = verts - _LM_CENTRE
    nrm = rel / _LM_RADII
    front = np.clip(nrm[:, 2], 0, 1)
    lower = np.clip(-(verts[:, 1] + 40) / 60, 0, 1)
    K = 8
    idb = np.zeros((V, 3, K))
    idb[:, :, 0] = rel * 0.01  # size (small: absolute size is not visible in an image)
    idb[:, 0, 1] = rel[:, 0] * 0.05  # width
    idb[:, 1, 2] = rel[:, 1] * 0.05  # height
    idb[:, 2, 3] = rel[:, 2] * 0.05  # depth
    idb[:, 2, 4] = 6 * _bump(verts, (0, -30), 18) * front  # nose protrusion
    idb[:, 0, 5] = rel[:, 0] * 0.08 * lower  # jaw width
    eye_w = np.exp(-((verts[:, 1] - 2) / 15) ** 2) * front
    idb[:, 0, 6] = np.sign(verts[:, 0]) * 3 * eye_w  # eye spacing
    mouth_w = np.exp(-((verts[:, 1] + 57) / 12) ** 2) * np.exp(-(verts[:, 0] / 35) ** 2) * front
    idb[:, 0, 7] = verts[:, 0] * 0.1 * mouth_w  # mouth width

    names = ["jawOpen", "mouthSmile_L", "mouthSmile_R", "browInnerUp"]
    exb = np.zeros((V, 3, 4))
    below_mouth = np.clip(-(verts[:, 1] + 57) / 20, 0, 1) * front
    exb[:, 1, 0] = -15 * below_mouth
    corner_l = _bump(verts, (31, -57), 12)
    corner_r = _bump(verts, (-36, -54), 12)
    exb[:, 0, 1], exb[:, 1, 1] = 6 * corner_l, 5 * corner_l
    exb[:, 0, 2], exb[:, 1, 2] = -6 * corner_r, 5 * corner_r
    brow = _bump(verts, (0, 18), 25) * front
    exb[:, 1, 3] = 6 * brow

    jr = np.zeros((len(JOINT_NAMES), V))
    jr[np.arange(5), V - 5 + np.arange(5)] = 1.0
    sw = np.zeros((V, len(JOINT_NAMES)))
    jaw_w = np.clip(-(verts[:, 1] + 50) / 25, 0, 1) * (verts[:, 2] > -40) * (verts[:, 1] > -140)
    neck_w = np.clip(-(verts[:, 1] + 130) / 20, 0, 1)
    sw[:, 2] = jaw_w * (1 - neck_w)
    sw[:, 0] = neck_w
    sw[:, 1] = 1 - sw[:, 0] - sw[:, 2]
    sw[V - 5:] = np.eye(5)
    sw[V - 5 + 1] = [0, 1, 0, 0, 0]

    face = np.nonzero((nrm[:, 2] > 0.3) & (verts[:, 1] > -130))[0]
    regions = {
        "face": face,
        "scalp_back": np.nonzero(nrm[:, 2] < -0.3)[0],
        "upper_face": np.nonzero((nrm[:, 2] > 0.3) & (verts[:, 1] > -20))[0],
        "lips": V0 + np.arange(48, 68),
        "eyes": V0 + np.arange(36, 48),
        "neck": np.nonzero(verts[:, 1] < -130)[0],
    }
    return MorphableModel(
        name="toy", template=verts, faces=faces, uvs=uvs, uv_faces=faces,
        identity_basis=idb, expression_basis=exb, expression_names=names,
        identity_std=np.ones(K), expression_std=np.full(4, 0.5),
        joint_regressor=jr, skin_weights=sw,
        landmarks={"ibug68": LandmarkSet.from_vertices(V0 + np.arange(L))}, regions=regions,
        source="face3d.models.toy",
    )


_ST_RADII = np.array([78.0, 105.0, 95.0])  # mm, x/y/z half-axes
_ST_CENTRE = np.array([0.0, -20.0, -15.0])


def toy_head(n_lat: int = 22, n_lon: int = 32) -> MorphableModel:
    """Build the stabilization toy head (float32 buffers, mm, ``(n_lat - 2) * n_lon + 2`` vertices)."""
    dirs, faces, _ = _sphere_np(n_lat - 1, n_lon)
    verts = dirs * _ST_RADII + _ST_CENTRE
    V = len(verts)
    nrm = dirs
    front = np.clip(nrm[:, 2], 0, 1)
    x, y = verts[:, 0], verts[:, 1]

    # Identity: global size and aspect, nose, chin and brow shape.
    rel = verts - _ST_CENTRE
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
        source="face3d.models.toy",
    )
