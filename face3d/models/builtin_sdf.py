"""The implicit (signed-distance-like) head the built-in model's mesh is sampled from.

Everything here is numpy, millimetres, the toolkit's axes (+x subject's left, +y up, +z out of
the face) with the origin at the centre of the head. The function is negative inside the head.
It is not an exact distance (smooth unions of ellipsoid-like parts), but it is smooth and its
zero set is the skin; only the zero set is used (rays are marched onto it).

Landmark anatomy (neutral head, mm): vertex (top) y=+115, menton y=-115, glabella z=95,
opisthocranion z=-95, eye centres (+-31.5, -5, 71), nasion (0, 5, 87), pronasale (0, -37, 113),
subnasale (0, -47, ~91), stomion y=-69, mouth corners x=+-25.
"""
from __future__ import annotations

import numpy as np

# Anatomical anchors shared by the mesh builder, the rig and the blendshapes.
EYE_CENTER = np.array([31.5, -5.0, 71.0])  # left eye (+x); right eye mirrors x
EYE_RADIUS = 12.0
LID_RADIUS = 13.0  # skin over the eyeball: 1 mm thicker than the eyeball
EYE_ROW_Y = -5.0  # the palpebral fissure (eye slit) lies on this horizontal line
EYE_INNER_X = 16.0  # endocanthion |x|
EYE_OUTER_X = 46.5  # exocanthion |x|
MOUTH_Y = -69.0  # stomion height: the lip slit
MOUTH_CORNER_X = 25.0  # nominal, picks the slit's corner columns (fixed topology)
LIP_HALF_WIDTH = 23.5  # where the sculpted lips end
NECK_CUT_Y = -235.0
NECK_AXIS_Z = -18.0
TMJ = np.array([0.0, -22.0, 8.0])  # mid-point between the two temporomandibular joints
NECK_JOINT = np.array([0.0, -52.0, -22.0])
ROOT_JOINT = np.array([0.0, -205.0, -18.0])


def smin(a, b, k):
    """Polynomial smooth minimum (union) with blend width ``k`` mm."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b * (1 - h) + a * h - k * h * (1 - h)


def smax(a, b, k):
    return -smin(-a, -b, k)


def ellipsoid(p, c, r):
    q = (p - np.asarray(c, float)) / np.asarray(r, float)
    return (np.linalg.norm(q, axis=-1) - 1.0) * float(np.min(r))


def _interp(y, knots):
    k = np.asarray(knots, float)
    return np.interp(y, k[:, 0], k[:, 1])


def _smooth_interp(y, knots):
    """Monotone-ish smooth interpolation (cubic Hermite with Catmull-Rom tangents)."""
    k = np.asarray(knots, float)
    xs, ys = k[:, 0], k[:, 1]
    y = np.clip(y, xs[0], xs[-1])
    i = np.clip(np.searchsorted(xs, y) - 1, 0, len(xs) - 2)
    x0, x1 = xs[i], xs[i + 1]
    y0, y1 = ys[i], ys[i + 1]
    m = np.gradient(ys, xs)
    t = (y - x0) / (x1 - x0)
    h = x1 - x0
    t2, t3 = t * t, t * t * t
    return (2 * t3 - 3 * t2 + 1) * y0 + (t3 - 2 * t2 + t) * h * m[i] + (-2 * t3 + 3 * t2) * y1 + (t3 - t2) * h * m[i + 1]


# Face "loft": horizontal cross-sections (superellipses) of the face and jaw, keyed by height y.
FACE_HALF_WIDTH = [(-125, 20), (-115, 27), (-106, 37), (-95, 47), (-82, 53), (-65, 57), (-45, 61),
                   (-25, 65), (-8, 67), (8, 64), (25, 62), (40, 60)]
FACE_FRONT_Z = [(-125, 50), (-115, 66), (-108, 78), (-100, 82), (-90, 79), (-80, 80), (-69, 82),
                (-55, 85), (-45, 84), (-30, 80), (-15, 78), (-5, 80), (5, 86), (15, 90), (28, 86), (40, 82)]
FACE_EXPONENT = [(-120, 2.2), (-100, 2.4), (-80, 2.6), (-60, 2.4), (-30, 2.5), (0, 2.6), (30, 2.4)]


def face_loft(p):
    """Face and jaw mass: superelliptic horizontal sections keyed by height, cut below by the
    mandible's lower border and above at the forehead."""
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    a = _smooth_interp(y, FACE_HALF_WIDTH)
    zf = _smooth_interp(y, FACE_FRONT_Z)
    e = _interp(y, FACE_EXPONENT)
    zc = -15.0
    cf = zf - zc
    cb = 75.0
    c = np.where(z > zc, cf, cb)
    r = (np.abs(x) / a) ** e + (np.abs(z - zc) / c) ** e
    d = (r ** (1.0 / e) - 1.0) * np.minimum(a, c)
    # jaw underside: a plane rising from the menton back towards the neck
    y_under = -120.0 + np.clip(68.0 - z, 0.0, None) * 0.42
    d = smax(d, y_under - y, 6.0)
    # the loft stops at the forehead, where the cranium takes over
    d = smax(d, y - 45.0, 12.0)
    return d


def cranium(p):
    """Braincase: an ellipsoid (breadth ~150, length ~190 mm), narrower at the forehead."""
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    # narrower forehead/temples than parietal region; flatter forehead
    front = np.clip((z - 10.0) / 70.0, 0.0, 1.0)
    a = 71.0 * (1.0 - 0.10 * front**2) * (1.0 - 0.06 * np.clip((20.0 - y) / 80.0, 0, 1))
    b = 95.0
    c = 87.0
    q = np.abs(np.stack([x / a, (y - 20.0) / b, (z + 4.0) / c], -1))
    # rounder (less egg-shaped) crown: superellipse in the upper half
    e = np.where(y > 20.0, 2.35, 2.0)
    r = ((q[..., 0] ** e + q[..., 1] ** e) ** (2.0 / e) + q[..., 2] ** 2) ** 0.5
    return (r - 1.0) * 75.0


def neck(p):
    """Elliptic neck column behind the jaw, closed 30 mm below the cut at NECK_CUT_Y."""
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    # slightly narrower at the top, Adam's-apple-free front
    a = 58.0 - 4.0 * np.clip((y + 150.0) / 80.0, 0, 1)
    cz = NECK_AXIS_Z + 0.0 * y
    cf, cb = 52.0, 50.0
    c = np.where(z > cz, cf, cb)
    r = np.sqrt((x / a) ** 2 + ((z - cz) / c) ** 2)
    d = (r - 1.0) * 50.0
    d = smax(d, y + 25.0, 20.0)
    return smax(d, (NECK_CUT_Y - 30.0) - y, 5.0)  # closed below the cut, so steep rays end there


def nose(p):
    """Nasal pyramid (rounded-diamond sections from nasion to tip) with tip and alae."""
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    # dorsum line from nasion to tip, and the half-width of the nose at each height
    zd = _smooth_interp(y, [(-44, 104), (-38, 111), (-30, 108), (-15, 100), (0, 92), (8, 86)])
    hw = _smooth_interp(y, [(-46, 14), (-40, 12.5), (-30, 10), (-15, 8.0), (0, 7.0), (8, 8)])
    zb = _smooth_interp(y, [(-46, 86), (-30, 82), (-10, 80), (8, 80)])
    depth = np.maximum(zd - zb, 1.0)
    pe = 1.35
    r = (np.abs(x) / hw) ** pe + (np.clip(z - zb, 0, None) / depth) ** pe
    d = (r ** (1 / pe) - 1.0) * np.minimum(hw, 10.0)
    d = smax(d, (zb - 12.0) - z, 2.0)  # the wedge must not poke out of the back of the head
    d = smax(d, y - 10.0, 4.0)
    # underside of the nose: from the subnasale up to the tip
    y_bottom = -47.0 + np.clip(z - 90.0, 0, None) * 0.30
    d = smax(d, y_bottom - y, 2.5)
    tip = ellipsoid(p, (0, -37.0, 105.5), (7.0, 7.0, 7.5))
    alae = np.minimum(ellipsoid(p, (12.0, -41.5, 90.0), (5.5, 5.0, 8.0)),
                      ellipsoid(p, (-12.0, -41.5, 90.0), (5.5, 5.0, 8.0)))
    d = smin(d, tip, 6.0)
    d = smin(d, alae, 7.0)
    return d


def lips(p):
    """Upper and lower lip rolls along the dental arch, meeting at the stomion line y=MOUTH_Y."""
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    # tubes following the dental arch; thinner towards the corners
    arch = 87.5 - x**2 / 90.0
    t = np.clip(1.0 - (x / (LIP_HALF_WIDTH + 1.0)) ** 2, 0.0, 1.0)
    ru = 0.5 + 5.3 * np.sqrt(t)
    rl = 0.5 + 5.8 * np.sqrt(t)
    # cupid's bow: the upper lip is a little fuller either side of the midline
    bow = 0.6 * np.exp(-(((np.abs(x) - 5.0) / 4.0) ** 2))
    du = np.sqrt(((y - (MOUTH_Y + 4.4 + bow)) / 1.05) ** 2 + (z - (arch - 3.0)) ** 2) - ru
    dl = np.sqrt(((y - (MOUTH_Y - 5.4)) / 1.1) ** 2 + (z - (arch - 4.8)) ** 2) - rl
    d = np.minimum(du, dl)
    d = np.maximum(d, np.abs(x) - (LIP_HALF_WIDTH + 1.0))
    return np.maximum(d, 60.0 - z)  # only at the front of the face


def eye_sockets(p):
    c = EYE_CENTER
    s = np.minimum(ellipsoid(p, (c[0] + 1.0, c[1] - 2.5, c[2] + 8.0), (17.0, 10.0, 10.0)),
                   ellipsoid(p, (-c[0] - 1.0, c[1] - 2.5, c[2] + 8.0), (17.0, 10.0, 10.0)))
    return s


def eyelids(p):
    c = EYE_CENTER
    left = np.linalg.norm(p - c, axis=-1) - LID_RADIUS
    right = np.linalg.norm(p - c * np.array([-1, 1, 1]), axis=-1) - LID_RADIUS
    return np.minimum(left, right)


def ears(p):
    """Pinnae: a flattened, backward-tilted disc per side with a concha hollowed out of it."""
    q = p.copy()
    q[..., 0] = np.abs(q[..., 0])
    # tilt the pinna's long axis back by ~15 degrees (top further back)
    yy, zz = q[..., 1] + 12.0, q[..., 2] + 7.0
    ca, sa = np.cos(0.26), np.sin(0.26)
    ly, lz = ca * yy - sa * zz, sa * yy + ca * zz
    # the back edge of the pinna stands further out from the head than the front
    xo = q[..., 0] - 71.0 - 2.0 * np.clip(-lz / 17.0, 0.0, 1.0)
    rim = (np.sqrt((xo / 8.0) ** 2 + (ly / 31.0) ** 2 + (lz / 16.0) ** 2) - 1.0) * 8.0
    loc = np.stack([q[..., 0], ly, lz], -1)
    concha = ellipsoid(loc, (83.0, -6.0, 1.5), (8.0, 9.5, 7.0))
    scapha = ellipsoid(loc, (83.0, 13.0, -2.5), (6.0, 10.0, 6.5))
    d = smax(rim, -concha, 1.5)
    d = smax(d, -scapha, 1.2)
    tragus = ellipsoid(loc, (75.0, -8.0, 9.5), (3.5, 5.0, 3.0))
    lobe = ellipsoid(loc, (73.0, -24.0, 2.0), (5.0, 7.0, 7.5))
    return smin(smin(d, tragus, 2.0), lobe, 5.0)


def sym(fn, c, r):
    c = np.asarray(c, float)
    return lambda p: np.minimum(fn(p, c, r), fn(p, c * np.array([-1, 1, 1]), r))


def head_sdf(p: np.ndarray) -> np.ndarray:
    """(..., 3) points in mm -> (...,) implicit value (< 0 inside the head)."""
    p = np.asarray(p, float)
    d = smin(cranium(p), face_loft(p), 24.0)
    d = smin(d, neck(p), 22.0)
    cheek = sym(ellipsoid, (49.0, -22.0, 50.0), (15.0, 11.0, 17.0))(p)
    d = smin(d, cheek, 14.0)
    brow = sym(ellipsoid, (29.0, 13.0, 79.0), (22.0, 8.0, 10.0))(p)
    d = smin(d, brow, 8.0)
    glab = ellipsoid(p, (0.0, 12.0, 84.0), (12.0, 8.0, 10.0))
    d = smin(d, glab, 6.0)
    chin = ellipsoid(p, (0.0, -105.0, 72.0), (19.0, 11.0, 11.0))
    d = smin(d, chin, 8.0)
    d = smax(d, -eye_sockets(p), 8.0)
    d = smin(d, eyelids(p), 3.5)
    d = smin(d, nose(p), 4.0)
    d = smin(d, lips(p), 2.5)
    d = smin(d, ears(p), 6.0)
    return d


def march(origins: np.ndarray, dirs: np.ndarray, t_max: float, step: float = 2.0,
          sdf=head_sdf, chunk: int = 4096) -> np.ndarray:
    """Distance along each ray to the OUTERMOST crossing of the zero set.

    origins, dirs: (N, 3) (dirs unit). Samples t from t_max down to 0 every ``step`` mm, takes the
    first inside sample from the outside, then bisects. Returns (N,) t. Rays are processed in
    chunks of ``chunk`` to bound memory (N * t_max/step samples at once otherwise).
    """
    n = origins.shape[0]
    ts = np.arange(t_max, -1e-9, -step)
    out = np.zeros(n)
    for s in range(0, n, chunk):
        o, d = origins[s:s + chunk], dirs[s:s + chunk]
        pts = o[:, None, :] + ts[None, :, None] * d[:, None, :]
        f = sdf(pts)  # (n, T)
        inside = f < 0
        first = np.argmax(inside, axis=1)  # first inside sample counting from outside
        if not inside.any(axis=1).all():
            bad = np.where(~inside.any(axis=1))[0][:3] + s
            raise RuntimeError(f"head_sdf: rays {bad.tolist()} never enter the head (t_max={t_max})")
        if (first == 0).any():
            bad = np.where(first == 0)[0][:3] + s
            raise RuntimeError(f"head_sdf: rays {bad.tolist()} start inside at t_max={t_max}")
        lo = ts[first]  # inside
        hi = ts[first - 1]  # outside
        for _ in range(16):
            mid = 0.5 * (lo + hi)
            fm = sdf(o + mid[:, None] * d)
            ins = fm < 0
            lo = np.where(ins, mid, lo)
            hi = np.where(ins, hi, mid)
        out[s:s + chunk] = 0.5 * (lo + hi)
    return out
