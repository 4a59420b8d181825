"""Identity and expression bases of the built-in head, as smooth displacement fields (numpy, mm).

Identity components are named, anatomically local (Gaussian-weighted) or global (scalings)
displacements, each sized to one standard deviation of adult variation, then decorrelated in
order (Gram-Schmidt: global shape first, local proportions after). Eyeballs move rigidly (by the field at the eye centre), so they never change size.

Expressions are ARKit-named blendshapes at weight 1. Lid shapes (blink, squint, wide) are made by
re-sampling the skin with moved lid lines (so the lids slide over the eyeball); the others are
local displacement fields, multiplied by a face mask that is exactly 0 on the back and top of the
head, and, for ``_L`` / ``_R`` shapes, by a side mask that is exactly 0 on the other half.
"""
from __future__ import annotations

import numpy as np

from face3d.models import builtin_sdf as S
from face3d.models.builtin_mesh import BAG_RINGS, LidState, band_ids, band_rays, march_band
from face3d.models.builtin_rig import Features, smoothstep

EXPRESSION_NAMES = (
    "jawOpen", "jawForward", "jawLeft", "jawRight", "mouthClose", "mouthFunnel", "mouthPucker",
    "mouthLeft", "mouthRight", "mouthSmile_L", "mouthSmile_R", "mouthFrown_L", "mouthFrown_R",
    "mouthDimple_L", "mouthDimple_R", "mouthStretch_L", "mouthStretch_R", "mouthRollLower",
    "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthPress_L", "mouthPress_R",
    "mouthLowerDown_L", "mouthLowerDown_R", "mouthUpperUp_L", "mouthUpperUp_R", "cheekPuff",
    "cheekSquint_L", "cheekSquint_R", "browInnerUp", "browDown_L", "browDown_R", "browOuterUp_L",
    "browOuterUp_R", "eyeBlink_L", "eyeBlink_R", "eyeSquint_L", "eyeSquint_R", "eyeWide_L",
    "eyeWide_R", "noseSneer_L", "noseSneer_R",
)
# Identity components in basis order (component k of the saved model is IDENTITY_NAMES[k]).
IDENTITY_NAMES = (
    "size", "head_breadth", "head_length", "head_height", "face_height", "face_width", "jaw_width",
    "chin_length", "chin_projection", "chin_width", "nose_length", "nose_width", "nose_projection",
    "nose_bridge", "nose_tip_size", "nostril_flare", "brow_ridge", "eye_spacing", "eye_aperture",
    "eye_height", "eye_depth", "cheekbones", "cheek_fullness", "upper_lip_fullness", "lower_lip_fullness",
    "mouth_width", "philtrum_length", "forehead_slope", "forehead_bulge", "ear_size", "ear_protrusion",
    "ear_height", "neck_width", "neck_depth", "occiput", "vertex_height", "temple_width", "gonial_height",
    "submental", "lower_face_shift", "nose_deviation", "canthal_tilt", "prognathism", "midface_projection",
    "cranial_taper", "lower_cheek_width", "nasal_bridge_width", "upper_lip_projection", "mentolabial_depth",
    "skull_asymmetry",
)
JAW_OPEN_RAD = 0.12  # the jawOpen blendshape is this jaw rotation, linearised (skin only)


def rbf(p, c, r):
    q = (p - np.asarray(c, float)) / np.asarray(r, float)
    return np.exp(-0.5 * (q * q).sum(-1))


def sym_rbf(p, c, r):
    c = np.asarray(c, float)
    return rbf(p, c, r) + rbf(p, c * np.array([-1, 1, 1]), r)


def odd_rbf(p, c, r):
    """Mirror-antisymmetric bump: + on the +x side, - on the -x side, smooth (0) at x = 0."""
    c = np.asarray(c, float)
    return rbf(p, c, r) - rbf(p, c * np.array([-1, 1, 1]), r)


def vec(*c):
    return np.asarray(c, float)


# ----------------------------------------------------------------------------- identity
def identity_fields(F: Features) -> list[tuple[str, np.ndarray]]:
    """Named (V, 3) displacement fields, each one standard deviation (mm)."""
    p = F.v.copy()
    # eyeballs move rigidly with their centre
    t = F.topo
    for ids, c in ((t.eyeball_left, S.EYE_CENTER), (t.eyeball_right, S.EYE_CENTER * vec(-1, 1, 1))):
        p[ids] = c
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    sx = np.sign(x)
    one = np.ones_like(x)
    zero = np.zeros_like(x)
    crown = smoothstep((y + 40.0) / 70.0)  # cranium above the ears
    front = smoothstep((z - 10.0) / 30.0)  # the face side
    neckw = smoothstep((-95.0 - y) / 40.0)
    eye_l = S.EYE_CENTER
    eyew = sym_rbf(p, eye_l, (13.0, 11.0, 16.0))
    ear = sym_rbf(p, (76.0, -12.0, -6.0), (8.0, 22.0, 14.0)) * smoothstep((np.abs(x) - 62.0) / 8.0)
    gon = (52.0, -80.0, 5.0)
    mouth = (0.0, S.MOUTH_Y, 84.0)
    lipw = rbf(p, mouth, (22.0, 9.0, 14.0)) * smoothstep((z - 65.0) / 10.0)
    up_lip = lipw * (F.lip_side > 0) * smoothstep((y - S.MOUTH_Y + 2.0) / 4.0 + 0.5)
    lo_lip = lipw * (F.lip_side < 0)
    nasal_tip = (0.0, -37.0, 108.0)
    cen = vec(0.0, -15.0, 0.0)
    f = []

    def add(name, dx, dy, dz):
        f.append((name, np.stack([dx * one, dy * one, dz * one], -1)))

    add("size", *(0.040 * (p - cen)).T)
    add("head_breadth", 0.040 * x * crown, zero, zero)
    back = smoothstep((40.0 - z) / 80.0)
    add("head_length", zero, zero, 0.045 * (z - 40.0) * back * crown)
    add("head_height", zero, 0.05 * np.clip(y, 0, None) * crown, zero)
    add("face_height", zero, -0.045 * np.clip(S.EYE_ROW_Y - y, 0, 130) * front * (1 - neckw * 0.7), zero)
    fw = front * smoothstep((40.0 - y) / 30.0) * (1 - neckw)
    add("face_width", 0.045 * x * fw, zero, zero)
    add("jaw_width", 6.0 * odd_rbf(p, gon, (18.0, 22.0, 30.0)), zero, zero)
    chin = rbf(p, (0.0, -108.0, 70.0), (26.0, 16.0, 30.0))
    add("chin_length", zero, -4.5 * chin, zero)
    add("chin_projection", zero, zero, 4.5 * rbf(p, (0.0, -103.0, 75.0), (22.0, 15.0, 20.0)))
    add("chin_width", 5.0 * np.tanh(x / 15.0) * rbf(p, (0.0, -104.0, 70.0), (28.0, 16.0, 25.0)), zero, zero)
    nose_w = rbf(p, nasal_tip, (13.0, 12.0, 16.0))
    add("nose_length", zero, -3.5 * nose_w, 0.8 * nose_w)
    alae = sym_rbf(p, (15.0, -41.0, 89.0), (8.0, 8.0, 9.0))
    alae_x = odd_rbf(p, (15.0, -41.0, 89.0), (8.0, 8.0, 9.0))
    add("nose_width", 3.0 * alae_x, zero, zero)
    add("nose_projection", zero, -0.5 * nose_w, 4.5 * rbf(p, nasal_tip, (13.0, 18.0, 14.0)))
    add("nose_bridge", zero, zero, 2.8 * rbf(p, (0.0, -10.0, 96.0), (8.0, 16.0, 12.0)))
    add("nose_tip_size", *(0.18 * (p - vec(0, -38, 102)) * rbf(p, nasal_tip, (9.0, 8.0, 9.0))[:, None]).T)
    add("nostril_flare", 2.2 * alae_x, 1.2 * alae, zero)
    brow = sym_rbf(p, (28.0, 13.0, 84.0), (17.0, 7.0, 12.0)) + rbf(p, (0, 11.0, 88.0), (9.0, 7.0, 10.0))
    add("brow_ridge", zero, 0.5 * brow, 3.2 * brow)
    add("eye_spacing", 2.8 * odd_rbf(p, eye_l, (15.0, 13.0, 22.0)), zero, zero)
    lid_w = eyew * (F.skin & (z > 45.0))
    add("eye_aperture", zero, 0.7 * F.eye_side * lid_w * (np.abs(y - S.EYE_ROW_Y) < 14), zero)
    add("eye_height", zero, 2.8 * sym_rbf(p, eye_l, (16.0, 13.0, 22.0)), zero)
    add("eye_depth", zero, zero, -2.5 * sym_rbf(p, eye_l, (15.0, 13.0, 18.0)))
    cb = sym_rbf(p, (52.0, -22.0, 55.0), (14.0, 11.0, 16.0))
    add("cheekbones", 2.5 * sx * cb, zero, 2.5 * cb)
    n = F.normals.copy()
    n[F.eyeball] = 0.0  # eyeballs only translate
    cf = sym_rbf(p, (45.0, -62.0, 55.0), (16.0, 16.0, 18.0))
    add("cheek_fullness", *(3.5 * cf[:, None] * n).T)
    add("upper_lip_fullness", zero, 0.5 * up_lip, 1.7 * up_lip)
    add("lower_lip_fullness", zero, -0.5 * lo_lip, 1.8 * lo_lip)
    mw = rbf(p, mouth, (30.0, 12.0, 30.0)) * front
    add("mouth_width", 2.5 * np.tanh(x / 12.0) * mw, zero, -0.8 * mw * np.abs(np.tanh(x / 12.0)))
    add("philtrum_length", zero, -2.5 * rbf(p, (0.0, -75.0, 80.0), (34.0, 16.0, 34.0)), zero)
    fh = smoothstep((y - 10.0) / 40.0) * front
    add("forehead_slope", zero, zero, -0.07 * np.clip(y - 10.0, 0, None) * fh)
    add("forehead_bulge", *(3.0 * rbf(p, (0.0, 45.0, 80.0), (40.0, 22.0, 30.0))[:, None] * n).T)
    add("ear_size", 0.10 * (x - sx * 76.0) * ear, 0.10 * (y + 12.0) * ear, 0.10 * (z + 6.0) * ear)
    add("ear_protrusion", 4.5 * sx * ear * smoothstep((np.abs(x) - 66.0) / 10.0), zero, zero)
    add("ear_height", zero, 3.5 * ear, zero)
    add("neck_width", 0.07 * x * neckw, zero, zero)
    add("neck_depth", zero, zero, 0.07 * (z - S.NECK_AXIS_Z) * neckw)
    add("occiput", zero, -1.0 * rbf(p, (0.0, 10.0, -95.0), (45.0, 40.0, 30.0)), -4.5 * rbf(p, (0.0, 10.0, -95.0), (45.0, 40.0, 30.0)))
    add("vertex_height", zero, 4.5 * rbf(p, (0.0, 115.0, 0.0), (50.0, 30.0, 60.0)), zero)
    add("temple_width", 3.0 * odd_rbf(p, (62.0, 25.0, 40.0), (14.0, 20.0, 20.0)), zero, zero)
    add("gonial_height", zero, 4.0 * sym_rbf(p, gon, (18.0, 18.0, 25.0)), zero)
    add("submental", zero, -3.5 * rbf(p, (0.0, -120.0, 40.0), (34.0, 10.0, 24.0)), zero)
    lowface = front * smoothstep((-20.0 - y) / 30.0) * (1 - neckw)
    add("lower_face_shift", 2.0 * lowface, zero, zero)
    add("nose_deviation", 2.2 * rbf(p, nasal_tip, (10.0, 22.0, 16.0)), zero, zero)
    add("canthal_tilt", zero, 1.6 * sym_rbf(p, (46.0, -4.0, 62.0), (6.0, 6.0, 10.0)) - 0.8 * sym_rbf(p, (17.0, -5.0, 74.0), (5.0, 6.0, 8.0)), zero)
    add("prognathism", zero, zero, 3.5 * front * smoothstep((-72.0 - y) / 18.0) * (1 - neckw))
    add("midface_projection", zero, zero, 2.0 * rbf(p, (0.0, -30.0, 85.0), (40.0, 20.0, 30.0)))
    add("cranial_taper", 0.05 * x * np.clip(-z / 95.0, -1, 1) * crown, zero, zero)
    add("lower_cheek_width", 3.0 * odd_rbf(p, (52.0, -62.0, 35.0), (14.0, 18.0, 22.0)), zero, zero)
    add("nasal_bridge_width", 1.3 * odd_rbf(p, (8.0, -6.0, 88.0), (6.0, 14.0, 12.0)), zero, zero)
    add("upper_lip_projection", zero, zero, 1.6 * rbf(p, (0.0, -58.0, 88.0), (20.0, 12.0, 12.0)))
    add("mentolabial_depth", zero, zero, 2.4 * rbf(p, (0.0, -87.0, 80.0), (18.0, 7.0, 10.0)))
    add("skull_asymmetry", zero, zero, 2.5 * (x / 75.0) * crown * smoothstep((-z + 20.0) / 60.0))
    return f


def eye_rigidity(F: Features) -> tuple[np.ndarray, np.ndarray]:
    """(V,) weights: 1 on the eyelids around the left / right eyeball (within 15 mm of the eye
    centre), falling to 0 at 26 mm. Shape changes there follow the eyeball rigidly, so the lids
    keep their 1 mm clearance over it."""
    out = []
    for c in (S.EYE_CENTER, S.EYE_CENTER * vec(-1, 1, 1)):
        d = np.linalg.norm(F.v - c, axis=1)
        w = smoothstep((26.0 - d) / 11.0)
        w[~F.skin] = 0.0
        out.append(w)
    return out[0], out[1]


def _rigid_eyes(F: Features, d: np.ndarray, rigidity: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Blend a (V, 3) field towards its value at each eye centre over the eyelids
    (``rigidity``: :func:`eye_rigidity`, computed once by the caller)."""
    t = F.topo
    for w, ids in zip(rigidity, (t.eyeball_left, t.eyeball_right)):
        d = d * (1 - w[:, None]) + d[ids[0]][None] * w[:, None]
    return d


def identity_basis(F: Features) -> tuple[np.ndarray, list[str]]:
    """(V, 3, K) basis (1 sigma per column), decorrelated in order, and the component names.

    Gram-Schmidt in the listed order (global shape first, then local proportions), each column
    rescaled to its original norm: component k is what the k-th named change adds beyond the
    earlier ones, so the basis is orthogonal and the first components keep their meaning exactly.
    """
    rig = eye_rigidity(F)
    fields = [(n, d if n == "eye_aperture" else _rigid_eyes(F, d, rig)) for n, d in identity_fields(F)]
    names = [n for n, _ in fields]
    if tuple(names) != IDENTITY_NAMES:
        raise AssertionError(f"identity_fields order {names} differs from IDENTITY_NAMES")
    B = np.stack([d.reshape(-1) for _, d in fields], -1)  # (3V, K)
    norms = np.linalg.norm(B, axis=0)
    Q, R = np.linalg.qr(B)
    Q = Q * np.sign(np.diag(R))  # same orientation as the named fields
    return (Q * norms).reshape(F.V, 3, -1), names


# ----------------------------------------------------------------------------- expressions
def face_mask(F: Features) -> np.ndarray:
    """(V,) 1 on the face, falling to exactly 0 behind z=-5 mm, above y=70 mm and on eyeballs."""
    v = F.v
    m = smoothstep((v[:, 2] + 5.0) / 30.0) * smoothstep((70.0 - v[:, 1]) / 25.0)
    m[F.eyeball] = 0.0
    return m


def _tangential(F: Features, d: np.ndarray) -> np.ndarray:
    """Project displacements onto the skin's tangent planes, keeping their length (skin slides)."""
    n = F.normals
    t = d - (d * n).sum(-1, keepdims=True) * n
    ln, lt = np.linalg.norm(d, axis=-1, keepdims=True), np.linalg.norm(t, axis=-1, keepdims=True)
    return np.where(lt > 1e-9, t * ln / np.maximum(lt, 1e-9), 0.0)


def expression_basis(F: Features, jaw_w: np.ndarray, fan: np.ndarray) -> np.ndarray:
    """(V, 3, n_expression) blendshape displacements at weight 1 (mm), ordered as EXPRESSION_NAMES."""
    p = F.v
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    V = F.V
    M = face_mask(F)
    side_l = smoothstep((x + 8.0) / 16.0)  # exactly 0 for x <= -8 mm
    side_r = smoothstep((-x + 8.0) / 16.0)
    corner_l = F.v[F.mouth_corners[1]]
    corner_r = F.v[F.mouth_corners[0]]
    mouth_c = vec(0.0, S.MOUTH_Y, 84.0)
    up = (F.lip_side > 0) * 1.0
    lo = (F.lip_side < 0) * 1.0
    mid = (F.lip_side == 0) * 1.0
    out = {}

    def field(dx, dy, dz, w):
        return np.stack([dx * w, dy * w, dz * w], -1)

    # jaw-driven shapes: linearised rigid motions weighted by the jaw skinning weight
    r = p - S.TMJ
    jw = jaw_w.copy()
    jw[F.eyeball] = 0.0
    out["jawOpen"] = JAW_OPEN_RAD * np.stack([0 * x, -r[:, 2], r[:, 1]], -1) * jw[:, None]
    out["jawForward"] = field(0, 0, 4.0, jw)
    out["jawLeft"] = field(5.0, 0, 0, jw)
    out["jawRight"] = field(-5.0, 0, 0, jw)
    lipl = rbf(p, mouth_c, (22.0, 9.0, 16.0)) * smoothstep((z - 60.0) / 15.0)
    out["mouthClose"] = field(0, 7.5, 4.5, lipl * (lo + 0.5 * mid)) + field(0, -2.0, -0.5, lipl * up)
    # funnel/pucker: lips forward and towards the midline
    fw = rbf(p, mouth_c, (26.0, 13.0, 18.0)) * smoothstep((z - 55.0) / 15.0)
    out["mouthFunnel"] = np.stack([-0.18 * x * fw, (2.5 * up - 2.5 * lo) * fw, 6.0 * fw], -1)
    out["mouthPucker"] = np.stack([-0.32 * x * fw, (-0.8 * up + 0.8 * lo) * fw, 8.0 * fw], -1)
    mw = rbf(p, mouth_c, (28.0, 14.0, 20.0)) * smoothstep((z - 55.0) / 15.0)
    out["mouthLeft"] = field(6.0, 0, 0, mw)
    out["mouthRight"] = field(-6.0, 0, 0, mw)
    for s, c, side in (("L", corner_l, side_l), ("R", corner_r, side_r)):
        sg = 1.0 if s == "L" else -1.0
        cw = rbf(p, c, (13.0, 12.0, 14.0)) * side
        cw_wide = rbf(p, c + vec(sg * 2.0, 2.0, 0.0), (16.0, 14.0, 16.0)) * side
        cheek = rbf(p, c + vec(sg * 12.0, 24.0, -6.0), (15.0, 13.0, 16.0)) * side
        out[f"mouthSmile_{s}"] = field(sg * 6.0, 8.5, -5.0, cw_wide) + field(sg * 1.0, 4.0, 2.5, cheek)
        out[f"mouthFrown_{s}"] = field(sg * 1.0, -5.0, -0.5, cw)
        out[f"mouthDimple_{s}"] = field(sg * 3.0, 0.5, -4.0, cw)
        out[f"mouthStretch_{s}"] = field(sg * 6.0, -3.0, -2.0, cw)
        half = rbf(p, (sg * 12.0, S.MOUTH_Y, 84.0), (12.0, 9.0, 16.0)) * side * smoothstep((z - 60.0) / 15.0)
        out[f"mouthPress_{s}"] = field(0, -1.5, -1.2, half * up) + field(0, 1.5, -1.2, half * lo)
        out[f"mouthLowerDown_{s}"] = field(0, -5.0, 0.8, half * (lo + 0.3 * mid))
        out[f"mouthUpperUp_{s}"] = field(0, 4.0, 0.8, half * (up + 0.3 * mid))
        sq = rbf(p, vec(sg * 38.0, -30.0, 64.0), (14.0, 12.0, 14.0)) * side
        out[f"cheekSquint_{s}"] = field(0, 3.5, 1.0, sq)
        ob = rbf(p, vec(sg * 40.0, 14.0, 74.0), (14.0, 18.0, 20.0)) * side
        out[f"browOuterUp_{s}"] = _tangential(F, field(0, 6.0, 0, ob))
        bd = rbf(p, vec(sg * 24.0, 12.0, 84.0), (16.0, 12.0, 18.0)) * side
        gl = rbf(p, vec(sg * 8.0, 8.0, 88.0), (8.0, 10.0, 12.0)) * side
        out[f"browDown_{s}"] = _tangential(F, field(-sg * 2.0, -5.0, 0, bd)) + field(-sg * 1.5, -1.0, -1.0, gl)
        sn = rbf(p, vec(sg * 13.0, -36.0, 92.0), (8.0, 10.0, 12.0)) * side
        bridge = rbf(p, vec(sg * 6.0, -8.0, 93.0), (7.0, 14.0, 12.0)) * side
        lipu = rbf(p, vec(sg * 12.0, -58.0, 88.0), (10.0, 8.0, 12.0)) * side * (up + 0.5 * mid)
        out[f"noseSneer_{s}"] = (field(sg * 0.8, 3.5, -0.5, sn) + _tangential(F, field(0, 2.5, 0, bridge))
                                 + field(0, 2.0, 0.5, lipu))
    roll = rbf(p, mouth_c, (22.0, 7.0, 14.0)) * smoothstep((z - 60.0) / 15.0)
    out["mouthRollLower"] = field(0, 2.0, -4.0, roll * lo)
    out["mouthRollUpper"] = field(0, -2.0, -4.0, roll * up)
    shl = rbf(p, vec(0.0, -85.0, 82.0), (22.0, 14.0, 16.0)) * (lo + mid * 0.5)
    out["mouthShrugLower"] = field(0, 3.5, 1.5, shl)
    shu = rbf(p, vec(0.0, -60.0, 86.0), (20.0, 8.0, 14.0)) * (up + mid * 0.5)
    out["mouthShrugUpper"] = field(0, 2.5, 1.0, shu)
    puff = sym_rbf(p, vec(44.0, -64.0, 50.0), (16.0, 18.0, 18.0))
    out["cheekPuff"] = 7.0 * puff[:, None] * F.normals
    bi = rbf(p, vec(0.0, 18.0, 85.0), (26.0, 22.0, 30.0)) * smoothstep((y - 2.0) / 10.0)
    bi2 = sym_rbf(p, vec(16.0, 12.0, 85.0), (9.0, 7.0, 12.0))
    out["browInnerUp"] = _tangential(F, field(0, 6.5, 0, (bi + 0.35 * bi2) / 1.25))
    wl, wr = eye_rigidity(F)
    lid_free = 1.0 - np.maximum(wl, wr)  # brow/cheek shapes must not push the lids into the eyeballs
    E = np.zeros((V, 3, len(EXPRESSION_NAMES)))
    for k, nm in enumerate(EXPRESSION_NAMES):
        if nm in out:
            E[:, :, k] = out[nm] * (M[:, None] * lid_free[:, None] if not nm.startswith("jaw") else 1.0)
    # lid shapes by re-sampling the skin with moved lid lines
    t = F.topo
    y_n, ph_n = band_rays(t)
    ids = band_ids(t)
    lid_states = {
        "eyeBlink": LidState(up_a=0.0, up_b=-0.55, lo_a=0.55),
        "eyeSquint": LidState(up_a=0.75, up_b=0.0, lo_a=0.5),
        "eyeWide": LidState(up_a=1.5, up_b=0.0, lo_a=1.15),
    }
    neutral = LidState()
    for nm, st in lid_states.items():
        for s in ("L", "R"):
            left, right = (st, neutral) if s == "L" else (neutral, st)
            y_m, _ = band_rays(t, left, right)
            ch = y_m != y_n  # only rays whose height changed are re-sampled; the rest move exactly 0
            d = np.zeros((V, 3))
            d[ids[ch]] = march_band(y_m[ch], ph_n[ch]) - p[ids[ch]]
            if nm == "eyeSquint":  # the cheek rises with a squint
                sg = 1.0 if s == "L" else -1.0
                sq = rbf(p, vec(sg * 36.0, -26.0, 66.0), (12.0, 9.0, 12.0)) * (side_l if s == "L" else side_r)
                d += field(0, 2.0, 0.6, sq * M * lid_free)
            E[:, :, EXPRESSION_NAMES.index(f"{nm}_{s}")] = d
    # the mouth bag follows the lips it hangs from, fading towards the back
    jaw_cols = [k for k, nm in enumerate(EXPRESSION_NAMES) if nm.startswith("jaw")]
    E_jaw = E[:, :, jaw_cols].copy()
    E = _bag_follow(F, E)
    E[:, :, jaw_cols] = E_jaw  # the bag's lower sheet is skinned to the jaw already
    return E


def _bag_follow(F: Features, E: np.ndarray) -> np.ndarray:
    t = F.topo
    m = t.mouth
    cols = np.arange(m.col_start, m.col_end + 1)
    ncol = len(cols)
    upper0 = t.grid_id(m.row, cols)
    lower0 = np.concatenate([[upper0[0]], m.lower_ids, [upper0[-1]]])
    pos = 0
    for r in range(1, BAG_RINGS):
        fade = 1.0 - r / BAG_RINGS
        up = t.bag[pos:pos + ncol]
        E[up] = fade * E[upper0]
        pos += ncol
        lo = t.bag[pos:pos + ncol - 2]
        E[lo] = fade * E[lower0[1:-1]]
        pos += ncol - 2
    E[t.bag[pos:pos + ncol]] = 0.0
    return E
