"""A tiny synthetic morphable head for tests and examples (no asset file needed).

An ellipsoid "head" (a UV sphere, ~1 k vertices) with 68 extra landmark vertices laid out in
the iBUG 300-W order on its front, smooth identity modes (width, height, depth, nose, jaw, ...)
and a few ARKit-named expressions. It is not a face; it has exactly the structure the
reconstruction code relies on, so its tests run in seconds.
"""
from __future__ import annotations

import numpy as np

from face3d.models.base import JOINT_NAMES, LandmarkSet, MorphableModel

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

_RADII = np.array([80.0, 120.0, 95.0])  # mm, x/y/z half-axes
_CENTRE = np.array([0.0, -30.0, -20.0])  # ellipsoid centre relative to the eye line


def _sphere(n_lat: int, n_lon: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    th = np.linspace(0, np.pi, n_lat)  # from +y (top) to -y
    ph = np.linspace(-np.pi, np.pi, n_lon, endpoint=False)  # 0 = +z (front)
    T, P = np.meshgrid(th, ph, indexing="ij")
    dirs = np.stack([np.sin(T) * np.sin(P), np.cos(T), np.sin(T) * np.cos(P)], -1).reshape(-1, 3)
    uv = np.stack([(P + np.pi) / (2 * np.pi), 1 - T / np.pi], -1).reshape(-1, 2)
    i, j = np.meshgrid(np.arange(n_lat - 1), np.arange(n_lon), indexing="ij")
    a = i * n_lon + j
    b = i * n_lon + (j + 1) % n_lon
    c = (i + 1) * n_lon + j
    d = (i + 1) * n_lon + (j + 1) % n_lon
    # Counter-clockwise seen from outside, so normals point outwards.
    faces = np.concatenate([np.stack([a, c, b], -1).reshape(-1, 3), np.stack([b, c, d], -1).reshape(-1, 3)])
    faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])]
    return dirs, faces, uv


def toy_model(n_lat: int = 24, n_lon: int = 40, seed: int = 0) -> MorphableModel:
    """Build the toy head (float32 buffers; ~``n_lat * n_lon + 73`` vertices, mm).

    Identity modes (unit coefficient ≈ one standard deviation): 0 overall size, 1 width,
    2 height, 3 depth, 4 nose protrusion, 5 jaw width, 6 eye spacing, 7 mouth width.
    Expressions: ``jawOpen``, ``mouthSmile_L``, ``mouthSmile_R``, ``browInnerUp``.
    """
    dirs, faces, uv = _sphere(n_lat, n_lon)
    shell = dirs * _RADII + _CENTRE
    # Landmarks: the 2D layout pushed onto the ellipsoid's front surface.
    x, y = _IBUG68_2D[:, 0], _IBUG68_2D[:, 1]
    u = np.clip(1 - ((x - _CENTRE[0]) / _RADII[0]) ** 2 - ((y - _CENTRE[1]) / _RADII[1]) ** 2, 0.05, 1)
    lm = np.stack([x, y, _CENTRE[2] + _RADII[2] * np.sqrt(u)], -1)
    lm[27:31, 2] += np.array([2.0, 8.0, 14.0, 20.0])  # a nose ridge
    lm[31:36, 2] += np.array([6.0, 10.0, 14.0, 10.0, 6.0])
    joints = np.array([[0, -150, -40], [0, -110, -30], [0, -40, -40], [30, 0, 10], [-30, 0, 10]], float)
    joints[3] = lm[42:48].mean(0) - [0, 0, 12]
    joints[4] = lm[36:42].mean(0) - [0, 0, 12]
    V0, L = shell.shape[0], 68
    verts = np.concatenate([shell, lm, joints])
    V = verts.shape[0]
    uvs = np.concatenate([uv, np.full((V - V0, 2), 0.5)])

    rel = verts - _CENTRE
    nrm = rel / _RADII
    front = np.clip(nrm[:, 2], 0, 1)
    lower = np.clip(-(verts[:, 1] + 40) / 60, 0, 1)
    K = 8
    idb = np.zeros((V, 3, K))
    idb[:, :, 0] = rel * 0.01  # size (small: absolute size is not visible in an image)
    idb[:, 0, 1] = rel[:, 0] * 0.05  # width
    idb[:, 1, 2] = rel[:, 1] * 0.05  # height
    idb[:, 2, 3] = rel[:, 2] * 0.05  # depth
    nose_d = np.linalg.norm(verts[:, :2] - [0, -30], axis=1)
    idb[:, 2, 4] = 6 * np.exp(-(nose_d / 18) ** 2) * front  # nose protrusion
    idb[:, 0, 5] = rel[:, 0] * 0.08 * lower  # jaw width
    eye_w = np.exp(-((verts[:, 1] - 2) / 15) ** 2) * front
    idb[:, 0, 6] = np.sign(verts[:, 0]) * 3 * eye_w  # eye spacing
    mouth_w = np.exp(-((verts[:, 1] + 57) / 12) ** 2) * np.exp(-(verts[:, 0] / 35) ** 2) * front
    idb[:, 0, 7] = verts[:, 0] * 0.1 * mouth_w  # mouth width

    names = ["jawOpen", "mouthSmile_L", "mouthSmile_R", "browInnerUp"]
    exb = np.zeros((V, 3, 4))
    below_mouth = np.clip(-(verts[:, 1] + 57) / 20, 0, 1) * front
    exb[:, 1, 0] = -15 * below_mouth
    corner_l = np.exp(-(np.linalg.norm(verts[:, :2] - [31, -57], axis=1) / 12) ** 2)
    corner_r = np.exp(-(np.linalg.norm(verts[:, :2] - [-36, -54], axis=1) / 12) ** 2)
    exb[:, 0, 1], exb[:, 1, 1] = 6 * corner_l, 5 * corner_l
    exb[:, 0, 2], exb[:, 1, 2] = -6 * corner_r, 5 * corner_r
    brow = np.exp(-(np.linalg.norm(verts[:, :2] - [0, 18], axis=1) / 25) ** 2) * front
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
        source="face3d.reconstruct.toy",
    )
