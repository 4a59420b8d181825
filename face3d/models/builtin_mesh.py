"""Topology and neutral geometry of the built-in head: a ray-sampled grid with eye and lip slits.

The skin is one grid of ``n_rows x n_cols`` vertices (plus a pole at the crown), sampled from the
implicit head of :mod:`face3d.models.builtin_sdf` along rays:

- columns are azimuths ``phi`` about the vertical axis (0 = straight ahead, +pi/2 = subject's
  left), denser on the face;
- the crown "cap" rows are rays from (0, CAP_Y, RAY_Z) at elevations 90..0 degrees;
- the face "band" rows are horizontal rays from the vertical axis (x=0, z=RAY_Z) at heights
  ``y0`` (so the eye and lip lines are exact grid rows);
- the chin/neck rows are resampled by arc length along each column of a fan of rays from
  (0, FAN_Y, RAY_Z), down to a horizontal cut at the base of the neck (the neck is open there).

The lips and the two eyelid lines are *slits*: along those rows the vertices between the two
corners are duplicated (the upper copies belong to the triangles above, the lower copies to those
below), so rotating the jaw or closing the lids moves the two sides independently. The eyelid
slits are opened in the neutral pose by raising/lowering the ray heights around them
(:func:`lid_offsets`); the lips are closed (the copies coincide). Behind the lip slit a mouth
"bag" (two sheets meeting at the back) closes the mouth interior, and two eyeball spheres sit
behind the eyelid openings.

All units are millimetres.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from face3d.models import builtin_sdf as S

N_COLS = 104
COL_BETA = 0.55  # column density on the face is (1 - beta) / (1 + beta) of the back's spacing
N_CAP = 40  # cap rows are at elevations 90 * k / N_CAP degrees, k = N_CAP-1 .. 1
CAP_Y = 30.0
RAY_Z = 4.0  # the vertical axis the rays start from, slightly in front of the head centre (eye corners)
FAN_Y = -95.0
N_FAN = 36
EYE_LAT, EYE_LON = 12, 20  # eyeball sphere resolution
BAG_RINGS = 6
LID_UP_H = 4.4  # neutral opening of the upper lid above the eye line (mm, at its highest point)
LID_LO_H = 4.2  # ... and of the lower lid below it
LID_UP_D = 13.0  # the upper lid's opening fades out over this many mm above the line
LID_LO_D = 11.0


def column_angles(n_cols: int = N_COLS, beta: float = COL_BETA) -> np.ndarray:
    """(n_cols,) azimuths in radians, symmetric (column j mirrors column n_cols - j)."""
    u = -1.0 + 2.0 * np.arange(n_cols) / n_cols
    return np.pi * (u - beta * np.sin(np.pi * u) / np.pi)


def band_heights() -> np.ndarray:
    """Heights y0 (mm, top to bottom) of the horizontal-ray rows; exact rows at the eye and lip lines."""
    a = np.linspace(CAP_Y, S.EYE_ROW_Y, 14)
    b = np.linspace(S.EYE_ROW_Y, S.MOUTH_Y, 27)[1:]
    c = np.linspace(S.MOUTH_Y, FAN_Y, 12)[1:]
    return np.concatenate([a, b, c])


def mirror_columns(n_cols: int = N_COLS) -> np.ndarray:
    return (n_cols - np.arange(n_cols)) % n_cols


def _nearest_col(phi: np.ndarray, target: float) -> int:
    return int(np.argmin(np.abs(phi - target)))


@dataclass
class Slit:
    """A duplicated run of vertices along one grid row."""

    row: int
    col_start: int  # corner column (single vertex)
    col_end: int  # other corner column
    lower_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # copies, by column

    @property
    def interior_cols(self) -> np.ndarray:
        return np.arange(self.col_start + 1, self.col_end)


@dataclass
class HeadTopology:
    """Index bookkeeping for the built-in mesh (numpy arrays; see the module docstring)."""

    phi: np.ndarray  # (n_cols,)
    cap_elev: np.ndarray  # (n_cap_rows,) radians
    band_y: np.ndarray  # (n_band_rows,)
    n_fan: int
    mouth: Slit
    eye_left: Slit
    eye_right: Slit
    n_grid: int = 0  # pole + rows * cols
    n_skin: int = 0  # + slit copies
    eyeball_left: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    eyeball_right: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    bag: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    bag_ring: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # ring number of each bag vertex
    bag_upper: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # sheet: upper (True) / lower
    n_vertices: int = 0

    @property
    def n_cols(self) -> int:
        return len(self.phi)

    @property
    def n_cap(self) -> int:
        return len(self.cap_elev)

    @property
    def n_band(self) -> int:
        return len(self.band_y)

    @property
    def n_rows(self) -> int:
        return self.n_cap + self.n_band + self.n_fan

    def grid_id(self, row, col):
        return 1 + np.asarray(row) * self.n_cols + np.asarray(col) % self.n_cols

    def band_row(self, k):
        return self.n_cap + np.asarray(k)


def make_topology() -> HeadTopology:
    phi = column_angles()
    cap_elev = np.deg2rad(90.0 * np.arange(N_CAP - 1, 0, -1) / N_CAP)
    band_y = band_heights()
    topo = HeadTopology(phi=phi, cap_elev=cap_elev, band_y=band_y, n_fan=N_FAN,
                        mouth=Slit(0, 0, 0), eye_left=Slit(0, 0, 0), eye_right=Slit(0, 0, 0))
    mouth_row = topo.band_row(int(np.argmin(np.abs(band_y - S.MOUTH_Y))))
    eye_row = topo.band_row(int(np.argmin(np.abs(band_y - S.EYE_ROW_Y))))
    # corner columns are fixed by nominal azimuths, so geometry tweaks never change the vertex count
    mc = np.arctan2(S.MOUTH_CORNER_X, 80.0)
    topo.mouth = Slit(mouth_row, _nearest_col(phi, -mc), _nearest_col(phi, mc))
    ei, eo = np.arctan2(S.EYE_INNER_X, 74.0), np.arctan2(S.EYE_OUTER_X, 62.0)
    topo.eye_left = Slit(eye_row, _nearest_col(phi, ei), _nearest_col(phi, eo))
    topo.eye_right = Slit(eye_row, _nearest_col(phi, -eo), _nearest_col(phi, -ei))
    n = 1 + topo.n_rows * topo.n_cols
    topo.n_grid = n
    for s in (topo.mouth, topo.eye_left, topo.eye_right):
        k = len(s.interior_cols)
        s.lower_ids = np.arange(n, n + k)
        n += k
    topo.n_skin = n
    ne = 2 + (EYE_LAT - 1) * EYE_LON
    topo.eyeball_left = np.arange(n, n + ne)
    n += ne
    topo.eyeball_right = np.arange(n, n + ne)
    n += ne
    ncol_m = topo.mouth.col_end - topo.mouth.col_start + 1
    # bag: rings 1..BAG_RINGS-1 for the upper sheet and the lower sheet (corner columns shared),
    # ring BAG_RINGS shared by both sheets.
    ids, ring, upper = [], [], []
    inner = ncol_m - 2
    for r in range(1, BAG_RINGS):
        for sheet in (True, False):
            cnt = inner + (2 if sheet else 0)  # corner columns belong to the upper sheet
            ids.append(np.arange(n, n + cnt))
            ring += [r] * cnt
            upper += [sheet] * cnt
            n += cnt
    ids.append(np.arange(n, n + ncol_m))
    ring += [BAG_RINGS] * ncol_m
    upper += [True] * ncol_m
    n += ncol_m
    topo.bag = np.concatenate(ids)
    topo.bag_ring = np.asarray(ring)
    topo.bag_upper = np.asarray(upper)
    topo.n_vertices = n
    return topo


# ----------------------------------------------------------------------------- eyelids
def lid_profile(phi: np.ndarray, slit: Slit, topo: HeadTopology, peak: float) -> np.ndarray:
    """(n,) in [0, 1]: opening profile along an eye slit, 0 at both corners, maximum at ``peak``
    (fraction of the way from the inner to the outer corner)."""
    a, b = topo.phi[slit.col_start], topo.phi[slit.col_end]
    s = np.clip((phi - a) / (b - a), 0.0, 1.0)
    if a < 0:  # right eye: inner corner is the larger azimuth
        s = 1.0 - s
    s = s ** (np.log(0.5) / np.log(peak))
    return np.sin(np.pi * s) ** 0.9


@dataclass(frozen=True)
class LidState:
    """Lid line offsets (mm, + up) per eye, as multiples of the neutral opening profiles.

    upper = up_a * LID_UP_H * prof_up + up_b * LID_LO_H * prof_lo (at the line; fades above),
    lower = -(lo_a * LID_LO_H * prof_lo) (fades below).
    """

    up_a: float = 1.0
    up_b: float = 0.0
    lo_a: float = 1.0


def lid_offsets(topo: HeadTopology, left: LidState, right: LidState):
    """Ray height offsets for the band rows: (n_band, n_cols) for the grid (upper copies on the
    eye row) and, per eye, (k,) for the lower copies of the eye slits."""
    dy = np.zeros((topo.n_band, topo.n_cols))
    lower = {}
    rel = topo.band_y - S.EYE_ROW_Y  # (n_band,)
    for slit, st in ((topo.eye_left, left), (topo.eye_right, right)):
        cols = np.arange(slit.col_start, slit.col_end + 1)
        ph = topo.phi[cols]
        pu = lid_profile(ph, slit, topo, 0.42)
        pl = lid_profile(ph, slit, topo, 0.58)
        a_up = st.up_a * LID_UP_H * pu + st.up_b * LID_LO_H * pl
        a_lo = -st.lo_a * LID_LO_H * pl
        gu = np.clip(1.0 - np.clip(rel, 0, None) / LID_UP_D, 0, 1) ** 1.5 * (rel >= 0)
        gl = np.clip(1.0 - np.clip(-rel, 0, None) / LID_LO_D, 0, 1) ** 1.5 * (rel < 0)
        dy[:, cols] += gu[:, None] * a_up[None] + gl[:, None] * a_lo[None]
        lower[id(slit)] = a_lo[1:-1]
    return dy, lower[id(topo.eye_left)], lower[id(topo.eye_right)]


# ----------------------------------------------------------------------------- sampling
def _dirs(elev, phi):
    ce = np.cos(elev)
    return np.stack([ce * np.sin(phi), np.sin(elev) * np.ones_like(phi), ce * np.cos(phi)], -1)


def band_rays(topo: HeadTopology, left: LidState = LidState(), right: LidState = LidState()):
    """Ray heights y0 and azimuths of the band rows followed by the lower slit copies: (n,), (n,)."""
    dy, low_l, low_r = lid_offsets(topo, left, right)
    y0 = topo.band_y[:, None] + dy
    ph = np.broadcast_to(topo.phi, y0.shape)
    ys = [y0.reshape(-1)]
    phs = [ph.reshape(-1)]
    for slit, extra in ((topo.mouth, None), (topo.eye_left, low_l), (topo.eye_right, low_r)):
        k = slit.row - topo.n_cap
        cols = slit.interior_cols
        yy = topo.band_y[k] + (0.0 if extra is None else extra)
        ys.append(np.broadcast_to(yy, cols.shape).astype(float))
        phs.append(topo.phi[cols])
    return np.concatenate(ys), np.concatenate(phs)


def band_ids(topo: HeadTopology) -> np.ndarray:
    """Vertex ids matching the order of :func:`band_rays`."""
    start = 1 + topo.n_cap * topo.n_cols
    return np.concatenate([np.arange(start, start + topo.n_band * topo.n_cols),
                           np.arange(topo.n_grid, topo.n_skin)])


def march_band(yb: np.ndarray, pb: np.ndarray, sdf=S.head_sdf) -> np.ndarray:
    """Skin points (n, 3) hit by horizontal rays from the vertical axis at heights yb, azimuths pb."""
    d = _dirs(np.zeros_like(pb), pb)
    org = np.stack([np.zeros_like(yb), yb, np.full_like(yb, RAY_Z)], -1)
    t = S.march(org, d, 170.0, sdf=sdf)
    return org + t[:, None] * d


def sample_skin(topo: HeadTopology, left: LidState = LidState(), right: LidState = LidState(),
                sdf=S.head_sdf, fan: np.ndarray | None = None) -> np.ndarray:
    """(n_skin, 3) skin vertex positions (pole, grid rows, slit copies), in mm.

    ``fan`` (n_fan, n_cols, 3) reuses precomputed chin/neck rows (they do not depend on the lids).
    """
    nc = topo.n_cols
    out = np.zeros((topo.n_skin, 3))
    # crown pole + cap rows: rays from (0, CAP_Y, 0)
    o = np.array([0.0, CAP_Y, RAY_Z])
    el = np.repeat(topo.cap_elev, nc)
    ph = np.tile(topo.phi, topo.n_cap)
    d = np.concatenate([[[0.0, 1.0, 0.0]], _dirs(el, ph)])
    org = np.broadcast_to(o, d.shape)
    t = S.march(org, d, 160.0, sdf=sdf)
    out[: 1 + topo.n_cap * nc] = org + t[:, None] * d
    # band rows (+ lower slit copies): horizontal rays from the vertical axis
    yb, pb = band_rays(topo, left, right)
    out[band_ids(topo)] = march_band(yb, pb, sdf)
    # chin and neck rows
    if fan is None:
        fan = sample_fan(topo, sdf)
    s = 1 + (topo.n_cap + topo.n_band) * nc
    out[s:s + topo.n_fan * nc] = fan.reshape(-1, 3)
    return out


def sample_fan(topo: HeadTopology, sdf=S.head_sdf) -> np.ndarray:
    """(n_fan, n_cols, 3): chin/neck rows, resampled by arc length along each column."""
    nc = topo.n_cols
    el = -np.deg2rad(np.arange(0.0, 84.0, 0.6))
    ne = len(el)
    d = _dirs(np.repeat(el, nc), np.tile(topo.phi, ne))
    org = np.broadcast_to(np.array([0.0, FAN_Y, RAY_Z]), d.shape)
    t = S.march(org, d, 420.0, step=3.0, sdf=sdf)
    p = (org + t[:, None] * d).reshape(ne, nc, 3)
    out = np.zeros((topo.n_fan, nc, 3))
    w = np.arange(1, topo.n_fan + 1) / topo.n_fan
    w = 0.55 * w + 0.45 * w**2
    for j in range(nc):  # per column (104 iterations): a polyline resampling, not a per-vertex loop
        q = p[:, j]
        below = np.where(q[:, 1] < S.NECK_CUT_Y)[0]
        i = int(below[0])
        a, b = q[i - 1], q[i]
        f = (a[1] - S.NECK_CUT_Y) / (a[1] - b[1])
        q = np.concatenate([q[:i], (a + f * (b - a))[None]])
        seg = np.linalg.norm(np.diff(q, axis=0), axis=1)
        s = np.concatenate([[0.0], np.cumsum(seg)])
        target = w * s[-1]
        for c in range(3):
            out[:, j, c] = np.interp(target, s, q[:, c])
    return out


# ----------------------------------------------------------------------------- faces
def _quads_to_tris(a, b, c, d):
    """Quads (a, b top-left/top-right; d, c bottom-left/bottom-right), outward normals."""
    return np.concatenate([np.stack([a, d, b], -1), np.stack([b, d, c], -1)])


def skin_faces(topo: HeadTopology) -> np.ndarray:
    nc, nr = topo.n_cols, topo.n_rows
    j = np.arange(nc)
    j1 = (j + 1) % nc
    top_id = topo.grid_id(np.arange(nr)[:, None], j[None])  # id used by triangles below row r
    bot_id = top_id.copy()  # id used by triangles above row r
    for s in (topo.mouth, topo.eye_left, topo.eye_right):
        top_id[s.row, s.interior_cols] = s.lower_ids
    tris = []
    r = np.arange(nr - 1)[:, None]
    a = top_id[r, j[None]]
    b = top_id[r, j1[None]]
    d = bot_id[r + 1, j[None]]
    c = bot_id[r + 1, j1[None]]
    tris.append(_quads_to_tris(a.ravel(), b.ravel(), c.ravel(), d.ravel()))
    # crown fan: pole (0) to the first row
    tris.append(np.stack([np.zeros(nc, np.int64), bot_id[0, j], bot_id[0, j1]], -1))
    return np.concatenate(tris).astype(np.int64)


def eyeball_mesh(center: np.ndarray, radius: float = S.EYE_RADIUS):
    """UV sphere with its pole on +z (the pupil). Returns vertices (n, 3), local faces, polar
    angle of each vertex from the pupil axis (radians) and azimuth."""
    th = np.pi * np.arange(1, EYE_LAT) / EYE_LAT
    ps = 2 * np.pi * np.arange(EYE_LON) / EYE_LON
    T, P = np.meshgrid(th, ps, indexing="ij")
    pts = np.stack([np.sin(T) * np.cos(P), np.sin(T) * np.sin(P), np.cos(T)], -1).reshape(-1, 3)
    v = np.concatenate([[[0, 0, 1.0]], pts, [[0, 0, -1.0]]]) * radius + center
    theta = np.concatenate([[0.0], T.ravel(), [np.pi]])
    psi = np.concatenate([[0.0], P.ravel(), [0.0]])
    n_last = 1 + (EYE_LAT - 1) * EYE_LON
    tris = []
    k = np.arange(EYE_LON)
    k1 = (k + 1) % EYE_LON
    tris.append(np.stack([np.zeros(EYE_LON, int), 1 + k, 1 + k1], -1))
    for r in range(EYE_LAT - 2):
        a = 1 + r * EYE_LON + k
        b = 1 + r * EYE_LON + k1
        d = 1 + (r + 1) * EYE_LON + k
        c = 1 + (r + 1) * EYE_LON + k1
        tris.append(np.concatenate([np.stack([a, d, b], -1), np.stack([b, d, c], -1)]))
    last = 1 + (EYE_LAT - 2) * EYE_LON
    tris.append(np.stack([last + k, np.full(EYE_LON, n_last), last + k1], -1))
    f = np.concatenate(tris)
    # orient outward: (v1-v0)x(v2-v0) . (v0 - c) > 0
    n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    flip = (n * (v[f[:, 0]] - center)).sum(-1) < 0
    f[flip] = f[flip][:, [0, 2, 1]]
    return v, f, theta, psi


def bag_positions(topo: HeadTopology, skin: np.ndarray) -> np.ndarray:
    """(n_bag, 3): the mouth interior, two sheets from the lip line to a shared back line."""
    m = topo.mouth
    cols = np.arange(m.col_start, m.col_end + 1)
    lip = skin[topo.grid_id(m.row, cols)]  # (n, 3) upper copies incl. corners
    xs = lip[:, 0]
    half = max(abs(xs[0]), abs(xs[-1]))
    taper = np.sqrt(np.clip(1 - (xs / half) ** 2, 0, 1))
    depth = 34.0
    out = []
    for r in range(1, BAG_RINGS + 1):
        f = r / BAG_RINGS
        # shrink towards the midline at the back so the pouch is rounded
        base = lip.copy()
        base[:, 2] -= depth * f
        base[:, 0] *= 1.0 - 0.25 * f
        h = 11.0 * np.sin(np.pi * f) ** 0.8 * taper
        if r < BAG_RINGS:
            up = base[:] + np.stack([0 * h, h, 0 * h], -1)
            lo = base[1:-1] - np.stack([0 * h[1:-1], h[1:-1], 0 * h[1:-1]], -1)
            out += [up, lo]
        else:
            out.append(base)
    return np.concatenate(out)


def bag_faces(topo: HeadTopology) -> np.ndarray:
    m = topo.mouth
    cols = np.arange(m.col_start, m.col_end + 1)
    ncol = len(cols)
    upper0 = topo.grid_id(m.row, cols)
    lower0 = np.concatenate([[upper0[0]], m.lower_ids, [upper0[-1]]])
    # ring ids per sheet
    ring_up, ring_lo = [upper0], [lower0]
    pos = 0
    for r in range(1, BAG_RINGS):
        up = topo.bag[pos:pos + ncol]
        pos += ncol
        lo_in = topo.bag[pos:pos + ncol - 2]
        pos += ncol - 2
        ring_up.append(up)
        ring_lo.append(np.concatenate([[up[0]], lo_in, [up[-1]]]))
    back = topo.bag[pos:pos + ncol]
    ring_up.append(back)
    ring_lo.append(back)
    tris = []
    for rings, flip in ((ring_up, False), (ring_lo, True)):
        for r in range(BAG_RINGS):
            a, b = rings[r][:-1], rings[r][1:]
            d, c = rings[r + 1][:-1], rings[r + 1][1:]
            t = _quads_to_tris(a, b, c, d)
            tris.append(t[:, [0, 2, 1]] if flip else t)
    f = np.concatenate(tris)
    # drop degenerate triangles at the shared corner columns
    ok = (f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])
    return f[ok]


@dataclass
class HeadMesh:
    topo: HeadTopology
    vertices: np.ndarray  # (V, 3)
    faces: np.ndarray  # (F, 3)
    fan: np.ndarray  # (n_fan, n_cols, 3) cached chin/neck rows
    eye_theta: np.ndarray  # (n_eyeball,) polar angle from the pupil axis
    uvs: np.ndarray
    uv_faces: np.ndarray


def build_mesh(sdf=S.head_sdf) -> HeadMesh:
    topo = make_topology()
    fan = sample_fan(topo, sdf)
    skin = sample_skin(topo, sdf=sdf, fan=fan)
    V = topo.n_vertices
    verts = np.zeros((V, 3))
    verts[: topo.n_skin] = skin
    faces = [skin_faces(topo)]
    ev_l, ef, theta, psi = eyeball_mesh(S.EYE_CENTER)
    ev_r, _, _, _ = eyeball_mesh(S.EYE_CENTER * np.array([-1, 1, 1]))
    verts[topo.eyeball_left] = ev_l
    verts[topo.eyeball_right] = ev_r
    faces += [ef + topo.eyeball_left[0], ef + topo.eyeball_right[0]]
    verts[topo.bag] = bag_positions(topo, skin)
    faces.append(bag_faces(topo))
    faces = np.concatenate(faces)
    uvs, uv_faces = make_uvs(topo, faces, theta, psi)
    return HeadMesh(topo, verts, faces, fan, theta, uvs, uv_faces)


def make_uvs(topo: HeadTopology, faces: np.ndarray, eye_theta, eye_psi):
    """Per-vertex UVs (cylindrical grid for the skin, discs for the eyes, a strip for the bag),
    plus seam copies for skin triangles that wrap around the back (u = 1)."""
    V = topo.n_vertices
    uv = np.zeros((V, 2))
    nc, nr = topo.n_cols, topo.n_rows
    v_of_row = 1.0 - 0.84 * (np.arange(nr) + 1) / (nr + 1)
    uv[0] = (0.5, 1.0)
    rr, cc = np.meshgrid(np.arange(nr), np.arange(nc), indexing="ij")
    ids = topo.grid_id(rr, cc)
    uv[ids, 0] = cc / nc
    uv[ids, 1] = v_of_row[rr]
    for s in (topo.mouth, topo.eye_left, topo.eye_right):
        uv[s.lower_ids] = uv[topo.grid_id(s.row, s.interior_cols)]
    for ids_e, cx in ((topo.eyeball_left, 0.08), (topo.eyeball_right, 0.22)):
        rad = 0.065 * eye_theta / np.pi
        uv[ids_e, 0] = cx + rad * np.cos(eye_psi)
        uv[ids_e, 1] = 0.075 + rad * np.sin(eye_psi)
    m = topo.mouth
    ncol = m.col_end - m.col_start + 1
    cols = np.zeros(len(topo.bag))
    pos = 0
    for _ in range(1, BAG_RINGS):
        cols[pos:pos + ncol] = np.arange(ncol)
        pos += ncol
        cols[pos:pos + ncol - 2] = np.arange(1, ncol - 1)
        pos += ncol - 2
    cols[pos:] = np.arange(ncol)
    sheet = np.where(topo.bag_upper, 1.0, -1.0) * topo.bag_ring / BAG_RINGS
    sheet[topo.bag_ring == BAG_RINGS] = 0.0
    uv[topo.bag, 0] = 0.35 + 0.6 * cols / (ncol - 1)
    uv[topo.bag, 1] = 0.075 + 0.06 * sheet
    # seam: skin triangles spanning column n_cols-1 and column 0 use u = 1 copies of column 0
    uvs = [uv]
    uvf = faces.copy()
    skin = np.all(faces < topo.n_grid, axis=1)
    col = np.where(faces > 0, (faces - 1) % nc, -1)  # -1: the crown pole (u = 0.5)
    wrap = skin & (col.max(1) == nc - 1) & (col == 0).any(1)
    extra = {}
    n = V
    for fi in np.where(wrap)[0]:  # a few hundred seam triangles, done once at build time
        for k in range(3):
            if col[fi, k] == 0:
                vid = faces[fi, k]
                if vid not in extra:
                    extra[vid] = n
                    n += 1
                uvf[fi, k] = extra[vid]
    if extra:
        add = np.array([[1.0, uv[vid, 1]] for vid in extra])
        uvs.append(add)
    return np.concatenate(uvs).astype(np.float32), uvf
