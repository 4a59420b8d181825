"""Skinning weights, joint regressor, regions and landmarks of the built-in head (numpy, mm)."""
from __future__ import annotations

import numpy as np

from face3d.models import builtin_sdf as S
from face3d.models.builtin_mesh import BAG_RINGS, HeadMesh

ROOT, NECK, JAW, EYE_L, EYE_R = range(5)


def smoothstep(t):
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def jaw_underside_y(z):
    """Height of the lower border of the mandible at depth z (side view), mm."""
    return -120.0 + np.clip(68.0 - z, 0.0, None) * 0.42


class Features:
    """Per-vertex bookkeeping used by the rig and the blendshapes."""

    def __init__(self, mesh: HeadMesh):
        t = mesh.topo
        self.mesh = mesh
        self.topo = t
        v = mesh.vertices
        self.v = v
        V = t.n_vertices
        self.V = V
        self.skin = np.zeros(V, bool)
        self.skin[: t.n_skin] = True
        self.eyeball = np.zeros(V, bool)
        self.eyeball[t.eyeball_left] = True
        self.eyeball[t.eyeball_right] = True
        self.bag = np.zeros(V, bool)
        self.bag[t.bag] = True
        # +1 above the lip line (or upper copy), -1 below; for the bag, by sheet
        y = v[:, 1]
        self.lip_side = np.where(y >= S.MOUTH_Y, 1.0, -1.0)
        m = t.mouth
        self.lip_side[m.lower_ids] = -1.0
        self.lip_side[t.bag] = np.where(t.bag_upper, 1.0, -1.0)
        self.lip_side[t.bag[t.bag_ring == BAG_RINGS]] = 0.0
        corners = t.grid_id(m.row, [m.col_start, m.col_end])
        self.lip_side[corners] = 0.0
        self.mouth_corners = corners  # right (-x), left (+x)
        self.eye_side = np.where(y >= S.EYE_ROW_Y, 1.0, -1.0)
        for s in (t.eye_left, t.eye_right):
            self.eye_side[s.lower_ids] = -1.0
        self.normals = _vertex_normals(v, mesh.faces)


def _vertex_normals(v, f):
    n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    vn = np.zeros_like(v)
    for k in range(3):
        np.add.at(vn, f[:, k], n)
    return vn / np.maximum(np.linalg.norm(vn, axis=1, keepdims=True), 1e-12)


# ----------------------------------------------------------------------------- skinning
def jaw_weight(F: Features) -> np.ndarray:
    """(V,) share of the jaw joint: lower lip, chin and the skin over the mandible, 0 on the
    upper lip and the skull, with smooth falloff over the cheeks and under the chin."""
    v = F.v
    x, y, z = v[:, 0], v[:, 1], v[:, 2]
    phi = np.abs(np.arctan2(x, z))
    phic = np.arctan2(S.MOUTH_CORNER_X, 80.0)
    phit = np.arctan2(62.0, 5.0)
    yb = S.MOUTH_Y + (S.TMJ[1] - 6.0 - S.MOUTH_Y) * smoothstep((phi - phic) / (phit - phic))
    smooth = smoothstep((yb - y + 12.0) / 30.0)  # wide, so jaw motions do not crease the cheek
    sharp = (F.lip_side < 0).astype(float) + 0.5 * (F.lip_side == 0)
    k = smoothstep((np.abs(x) - (S.MOUTH_CORNER_X - 10.0)) / 14.0)
    w = sharp * (1 - k) + smooth * k
    # behind the ramus and below the mandible the skin stays with the neck
    # broad falloffs: sharp ones crease the skin when the jaw opens
    w *= smoothstep((z + 24.0) / 40.0)
    w *= smoothstep((y - (jaw_underside_y(z) - 45.0)) / 45.0)
    w *= smoothstep((70.0 - np.abs(x)) / 8.0)  # the ears stay with the skull
    w[F.eyeball] = 0.0
    # mouth bag: lower sheet with the jaw, upper with the skull, the back line half-way
    b = F.topo.bag
    side = F.lip_side[b]
    w[b] = np.where(side < 0, 1.0, np.where(side > 0, 0.0, 0.5))
    # corner columns of the bag are shared by both sheets
    corner_x = np.abs(v[F.mouth_corners, 0]).min()
    near = np.abs(v[b, 0]) > corner_x * (1 - 0.25 * F.topo.bag_ring / BAG_RINGS) - 0.5
    w[b[near]] = 0.5
    return np.clip(w, 0.0, 1.0)


def skin_weights(F: Features) -> np.ndarray:
    """(V, 5) LBS weights, rows sum to 1: the lower neck blends from ``root`` (below y=-150 mm)
    to ``neck``; the skull, scalp and upper face are 100% ``neck``; lower lip, chin and jaw skin
    go to ``jaw`` (:func:`jaw_weight`); eyeballs are 100% on their eye joints."""
    V = F.V
    W = np.zeros((V, 5))
    y = F.v[:, 1]
    root = smoothstep((-150.0 - y) / 70.0)
    root[~F.skin] = 0.0
    jaw = jaw_weight(F)
    jaw = np.minimum(jaw, 1.0 - root)
    W[:, ROOT] = root
    W[:, JAW] = jaw
    W[:, NECK] = 1.0 - root - jaw
    t = F.topo
    W[t.eyeball_left] = 0.0
    W[t.eyeball_left, EYE_L] = 1.0
    W[t.eyeball_right] = 0.0
    W[t.eyeball_right, EYE_R] = 1.0
    return W


def _hit_target(P: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Weights w (n,) closest to uniform with sum 1 and sum w_i P_i = target (P (n, 3))."""
    n = len(P)
    w0 = np.full(n, 1.0 / n)
    C = np.concatenate([P.T, np.ones((1, n))])  # (4, n)
    b = np.concatenate([target, [1.0]])
    return w0 + C.T @ np.linalg.solve(C @ C.T, b - C @ w0)


def joint_regressor(F: Features, W: np.ndarray, static: np.ndarray) -> np.ndarray:
    """(5, V): joints as weighted sums of vertices that no expression moves (``static`` (V,) bool)."""
    v = F.v
    x, y, z = v[:, 0], v[:, 1], v[:, 2]
    J = np.zeros((5, F.V))
    rigid_neck = F.skin & static & (W[:, NECK] == 1.0)
    # root: the lowest rows of the neck
    sel = np.where(F.skin & static & (y < -200.0))[0]
    J[ROOT, sel] = _hit_target(v[sel], S.ROOT_JOINT)
    # neck: a ring around the skull base (both sides and the back)
    sel = np.where(rigid_neck & (y > -75.0) & (y < -35.0) & (z < 0.0))[0]
    J[NECK, sel] = _hit_target(v[sel], S.NECK_JOINT)
    # jaw: skin just in front of both ears, at the height of the joint
    sel = np.where(rigid_neck & (np.abs(x) > 45.0) & (y > -40.0) & (y < -5.0) & (z > -25.0) & (z < 20.0))[0]
    J[JAW, sel] = _hit_target(v[sel], S.TMJ)
    t = F.topo
    J[EYE_L, t.eyeball_left] = 1.0 / len(t.eyeball_left)
    J[EYE_R, t.eyeball_right] = 1.0 / len(t.eyeball_right)
    return J


# ----------------------------------------------------------------------------- regions
def regions(F: Features, W: np.ndarray) -> dict[str, np.ndarray]:
    """Named vertex index sets (the required ones plus nose, jaw, skull, mouth_interior, skin,
    forehead, eyeball_left/right, ear_left/right). ``scalp_back`` (back and top of the head) is
    100% on the neck joint and outside every expression's support."""
    v = F.v
    x, y, z = v[:, 0], v[:, 1], v[:, 2]
    t = F.topo
    skin = F.skin
    eye_l = S.EYE_CENTER
    eye_r = S.EYE_CENTER * np.array([-1, 1, 1])
    near_eye = (np.hypot(x - eye_l[0], y - eye_l[1]) < 18.0) | (np.hypot(x - eye_r[0], y - eye_r[1]) < 18.0)
    near_eye &= z > 50.0
    r = {}
    r["face"] = np.where(skin & (z > 20.0) & (y < 62.0) & (y > jaw_underside_y(z) - 6.0) & (np.abs(x) < 72.0))[0]
    r["scalp_back"] = np.where(skin & (((z < -25.0) & (y > -55.0)) | (y > 72.0)) & (W[:, NECK] == 1.0))[0]
    upper = skin & (z > 25.0) & (y > 4.0) & (y < 62.0) & ~near_eye
    bridge = skin & (np.abs(x) < 11.0) & (y > -22.0) & (y <= 4.0) & (z > 80.0)
    temples = skin & (np.abs(x) > 48.0) & (y > -2.0) & (y < 50.0) & (z > -5.0)
    r["upper_face"] = np.where(upper | bridge | temples)[0]
    # the red of the lips: skin lying on the lip tubes of the sculpt
    lips = skin & (S.lips(v) < 0.6) & (np.abs(y - S.MOUTH_Y) < 14.0)
    r["lips"] = np.where(lips)[0]
    r["eyes"] = np.concatenate([np.where(skin & near_eye)[0], t.eyeball_left, t.eyeball_right])
    r["eyeball_left"] = t.eyeball_left
    r["eyeball_right"] = t.eyeball_right
    r["neck"] = np.where(skin & (((y < -80.0) & (z < 0.0)) | (y < jaw_underside_y(z) - 10.0)))[0]
    r["nose"] = np.where(skin & (np.abs(x) < 22.0) & (y > -50.0) & (y < 6.0) & (z > 80.0))[0]
    r["jaw"] = np.where(W[:, JAW] > 0.5)[0]
    r["skull"] = np.where(W[:, NECK] == 1.0)[0]
    r["mouth_interior"] = t.bag
    r["skin"] = np.where(skin)[0]
    r["forehead"] = np.where(skin & (z > 30.0) & (y > 18.0) & (y < 62.0))[0]
    ear = skin & (np.abs(x) > 66.0) & (y > -48.0) & (y < 24.0) & (z > -30.0) & (z < 14.0)
    r["ear_left"] = np.where(ear & (x > 0))[0]
    r["ear_right"] = np.where(ear & (x < 0))[0]
    return r


# ----------------------------------------------------------------------------- landmarks
def snap_front(F: Features, xy: np.ndarray, z_min: float = 30.0, pool: np.ndarray | None = None) -> np.ndarray:
    """For each (x, y) target (n, 2), the skin vertex seen there by a frontal camera: among skin
    vertices within 3 mm (2-D) the front-most, else the 2-D nearest."""
    v = F.v
    cand = np.where(F.skin & (v[:, 2] > z_min))[0] if pool is None else pool
    out = []
    for p in np.atleast_2d(xy):  # a few dozen landmarks, once at build time
        d = np.hypot(v[cand, 0] - p[0], v[cand, 1] - p[1])
        close = cand[d < 3.0]
        if len(close):
            out.append(close[np.argmax(v[close, 2] - 0.3 * np.hypot(v[close, 0] - p[0], v[close, 1] - p[1]))])
        else:
            out.append(cand[np.argmin(d)])
    return np.asarray(out)


def _slit_point(F: Features, slit, frac: float, lower: bool) -> int:
    cols = slit.interior_cols
    xs = F.v[F.topo.grid_id(slit.row, cols), 0]
    x0, x1 = F.v[F.topo.grid_id(slit.row, slit.col_start), 0], F.v[F.topo.grid_id(slit.row, slit.col_end), 0]
    target = x0 + frac * (x1 - x0)
    k = int(np.argmin(np.abs(xs - target)))
    return int(slit.lower_ids[k]) if lower else int(F.topo.grid_id(slit.row, cols[k]))


def landmarks(F: Features) -> dict[str, np.ndarray]:
    """Vertex ids of the iBUG-68 and NoW-7 landmark sets."""
    t = F.topo
    v = F.v
    ids = np.zeros(68, np.int64)
    # 0-16 jaw contour: the frontal silhouette of the lower face, subject's right (-x) to left
    face = np.where(F.skin & (v[:, 2] > 5.0) & (v[:, 1] < 0.0) & (np.abs(v[:, 0]) < 70.0)
                    & (v[:, 1] > jaw_underside_y(v[:, 2]) - 4.0))[0]
    c = np.array([0.0, -8.0])
    ang = np.deg2rad(np.linspace(186.0, 354.0, 17))
    for k, a in enumerate(ang):
        d = np.array([np.cos(a), np.sin(a)])
        rel = v[face, :2] - c
        perp = np.abs(rel @ np.array([-d[1], d[0]]))
        band = face[perp < 4.0]
        far = band[np.argmax((v[band, :2] - c) @ d)]
        target = c + (0.995 if k == 8 else 0.97) * ((v[far, :2] - c) @ d) * d
        ids[k] = snap_front(F, target[None], z_min=-20.0, pool=face)[0]
    # 17-21 right brow (outer -> inner), 22-26 left brow (inner -> outer)
    bx = np.array([-50.0, -42.0, -33.0, -24.0, -15.0])
    by = np.array([9.0, 14.0, 16.0, 16.0, 14.0])
    ids[17:22] = snap_front(F, np.stack([bx, by], -1))
    ids[22:27] = snap_front(F, np.stack([-bx[::-1], by[::-1]], -1))
    # 27-30 nose bridge, 31-35 nose bottom
    ids[27:31] = snap_front(F, np.array([[0.0, 4.0], [0.0, -10.0], [0.0, -23.0], [0.0, -37.0]]))
    ids[31:36] = snap_front(F, np.array([[-10.0, -44.5], [-5.0, -46.0], [0.0, -47.0], [5.0, -46.0], [10.0, -44.5]]),
                            z_min=70.0)
    # eyes: 36 outer corner, 37-38 upper lid, 39 inner corner, 40-41 lower lid (right eye, -x)
    er, el = t.eye_right, t.eye_left
    gid = t.grid_id
    ids[36] = gid(er.row, er.col_start)
    ids[37] = _slit_point(F, er, 1 / 3, False)
    ids[38] = _slit_point(F, er, 2 / 3, False)
    ids[39] = gid(er.row, er.col_end)
    ids[40] = _slit_point(F, er, 2 / 3, True)
    ids[41] = _slit_point(F, er, 1 / 3, True)
    ids[42] = gid(el.row, el.col_start)
    ids[43] = _slit_point(F, el, 1 / 3, False)
    ids[44] = _slit_point(F, el, 2 / 3, False)
    ids[45] = gid(el.row, el.col_end)
    ids[46] = _slit_point(F, el, 2 / 3, True)
    ids[47] = _slit_point(F, el, 1 / 3, True)
    # lips: outer contour 48-59, inner 60-67
    m = t.mouth
    cr, cl = gid(m.row, m.col_start), gid(m.row, m.col_end)
    cx = S.LIP_HALF_WIDTH

    def upper_border(x):
        tt = np.clip(1 - (x / (cx + 1.0)) ** 2, 0, 1)
        return S.MOUTH_Y + 4.2 + 1.05 * (0.5 + 5.0 * np.sqrt(tt)) * 0.95

    def lower_border(x):
        tt = np.clip(1 - (x / (cx + 1.0)) ** 2, 0, 1)
        return S.MOUTH_Y - 5.0 - 1.1 * (0.5 + 5.5 * np.sqrt(tt)) * 0.95

    ids[48] = cr
    ux = np.array([-0.62, -0.25, 0.0, 0.25, 0.62]) * cx
    ids[49:54] = snap_front(F, np.stack([ux, upper_border(ux)], -1))
    ids[54] = cl
    lx = np.array([0.62, 0.3, 0.0, -0.3, -0.62]) * cx
    ids[55:60] = snap_front(F, np.stack([lx, lower_border(lx)], -1))
    ids[60] = cr
    ids[61] = _slit_point(F, m, 0.25, False)
    ids[62] = _slit_point(F, m, 0.5, False)
    ids[63] = _slit_point(F, m, 0.75, False)
    ids[64] = cl
    ids[65] = _slit_point(F, m, 0.75, True)
    ids[66] = _slit_point(F, m, 0.5, True)
    ids[67] = _slit_point(F, m, 0.25, True)
    now7 = ids[[36, 39, 42, 45, 33, 48, 54]]
    return {"ibug68": ids, "now7": now7}
