"""Pure-PyTorch rasterizer (CPU and CUDA): the reference and default backend.

Conventions (identical to nvdiffrast's, so code moves between backends unchanged):

- ``pos`` is clip space ``(x, y, z, w)``; NDC is ``(x/w, y/w, z/w)``.
- Pixel ``(row i, col j)`` has its centre at NDC ``x = (2j + 1)/W - 1``, ``y = (2i + 1)/H - 1``:
  row 0 is ``y_ndc = -1``. (The :class:`~face3d.render.Camera` maps image-down OpenCV ``y`` to
  ``+y_ndc``, so rendered images come out with row 0 at the top, like a photo.)
- ``rast[..., 0:2] = (u, v)`` are perspective-correct barycentrics: an attribute interpolates as
  ``u*a0 + v*a1 + (1 - u - v)*a2``; ``rast[..., 2] = z/w``; ``rast[..., 3] = triangle_id + 1``
  (0 where empty), stored as float like nvdiffrast.

Algorithm (why it is fast on a CPU):

1. *Visibility without autograd.* Each triangle is tested with homogeneous 2D rasterization
   (Olano & Greer 1997): with ``M = [v0 v1 v2]`` the columns ``(x, y, w)``, a pixel ``p = (x_ndc,
   y_ndc, 1)`` has unnormalised barycentrics ``c = adj(M) p``, i.e. ``c_i = (v_j x v_k) . p``. The
   pixel is covered when all ``c_i / det(M) >= 0``; this needs no division by ``w``, so triangles
   that cross the camera plane are handled exactly, and the near/far planes are clipped per pixel
   (``-1 <= z/w <= 1``; ``z/w`` is affine in screen space over a triangle, so this equals clipping
   the triangle against those planes). Candidate pixels come from each triangle's screen
   bounding box, padded to one of a few square size classes so that a class is one dense
   broadcast (see ``SIZE_CLASSES``); the nearest triangle per pixel is found with one
   ``scatter_reduce(amin)`` over a packed int64 key ``(depth bits << 32) | id``.
2. *Differentiable recompute.* Only for covered pixels, ``(u, v, z/w)`` are recomputed from the
   vertex positions with autograd (the same closed form, as per-triangle linear forms, see
   :func:`pixel_forms`), so gradients flow to ``pos`` through the barycentrics as in
   nvdiffrast, and the autograd graph is as small as the visible image.

Fill rule: the edge value ``c_i`` of an edge shared by two triangles is computed from the same
cross product with the operands swapped, which in IEEE arithmetic is the exact negation, so a
pixel can never be inside both (no double coverage) or neither (no cracks). Pixels exactly on an
edge (``c_i == 0``) go to the triangle whose inward edge normal ``(n_x, n_y)`` satisfies
``n_x > 0 or (n_x == 0 and n_y > 0)``: the sample is nudged by an infinitesimal step towards
``+x`` (then ``+y``), a top-left-style rule that also resolves pixels on shared vertices.
"""
from __future__ import annotations

import torch
from torch import Tensor

# Candidate (triangle, pixel) pairs evaluated per chunk. Each candidate costs ~20 bytes of
# temporaries (edge sums, masks), so 2^19 keeps a chunk near 10 MB -- inside the L2/L3 cache
# range where these memory-bound ops run fastest -- while staying large enough that per-op
# overhead is amortised. Big triangles are cut into tiles and crowded classes into several
# chunks, so nothing is ever dropped however crowded the screen is.
CHUNK_CANDIDATES = 1 << 19

_EMPTY = torch.iinfo(torch.int64).max


def _cross(a: Tensor, b: Tensor) -> Tensor:
    # Written out (not torch.linalg.cross) so that _cross(b, a) is bit-exactly -_cross(a, b):
    # the watertight fill rule depends on it.
    ax, ay, aw = a.unbind(-1)
    bx, by, bw = b.unbind(-1)
    return torch.stack((ay * bw - aw * by, aw * bx - ax * bw, ax * by - ay * bx), dim=-1)


def edge_normals(xyw: Tensor) -> Tensor:
    """(..., 3, 3) triangle vertices' (x, y, w) -> (..., 3, 3) line coefficients ``n_i = v_j x v_k``.

    ``n_i . (x_ndc, y_ndc, 1)`` is the unnormalised barycentric of vertex ``i`` (edge ``i`` is the
    one opposite vertex ``i``).
    """
    v0, v1, v2 = xyw.unbind(-2)
    return torch.stack((_cross(v1, v2), _cross(v2, v0), _cross(v0, v1)), dim=-2)


def pixel_ndc(index: Tensor, size: int, dtype: torch.dtype) -> Tensor:
    """Integer pixel indices -> NDC of their centres, ``(2 i + 1) / size - 1``."""
    return (2 * index + 1).to(dtype) / size - 1


def _corners(pos: Tensor, tri: Tensor, b: Tensor | None = None, f: Tensor | None = None):
    """The 3 corners' clip coordinates as 12 tensors ``(x0, y0, z0, w0, x1, ...)``.

    Without ``b``/``f``: one entry per (batch, triangle), shape (B*F,). With them: one entry per
    item, shape (N,). Positions are gathered component-major with ``index_select`` so every
    later elementwise op runs on contiguous memory (strided columns are several times slower
    on CPU); all of it stays differentiable.
    """
    B, V, _ = pos.shape
    comp = pos.permute(2, 0, 1).reshape(4, B * V).unbind(0)  # 4 contiguous rows
    if b is None:
        base = (torch.arange(B, device=pos.device) * V)[:, None]
        vids = [(base + tri[None, :, k]).reshape(-1) for k in range(3)]
    else:
        tf = tri.index_select(0, f)
        vids = [b * V + tf[:, k] for k in range(3)]
    # 1-D index_select per component: gathers along dim 1 of a 2-D tensor are much slower.
    return [row.index_select(0, vid) for vid in vids for row in comp]


def _edge_terms(x0, y0, w0, x1, y1, w1, x2, y2, w2):
    # Line coefficients n_i = v_j x v_k of the three edges, written out; see _cross.
    n0 = (y1 * w2 - w1 * y2, w1 * x2 - x1 * w2, x1 * y2 - y1 * x2)
    n1 = (y2 * w0 - w2 * y0, w2 * x0 - x2 * w0, x2 * y0 - y2 * x0)
    n2 = (y0 * w1 - w0 * y1, w0 * x1 - x0 * w1, x0 * y1 - y0 * x1)
    return n0, n1, n2


def _triangle_setup(pos: Tensor, tri: Tensor, H: int, W: int):
    """Per-triangle coefficients for the no-grad visibility pass (B*F triangles, flattened)."""
    x0, y0, z0, w0, x1, y1, z1, w1, x2, y2, z2, w2 = _corners(pos, tri)
    n0, n1, n2 = _edge_terms(x0, y0, w0, x1, y1, w1, x2, y2, w2)
    det = x0 * n0[0] + y0 * n0[1] + w0 * n0[2]
    sgn = torch.sign(det)
    e = [c * sgn for n in (n0, n1, n2) for c in n]  # inward-oriented: inside iff e . p >= 0
    # ``val > thr`` with thr = -tiny for included edges is ``val >= 0``: a value in (-tiny, 0)
    # would need an edge function below 1e-38, far beneath float resolution here.
    tiny = torch.finfo(pos.dtype).tiny
    thr = []
    for i in range(3):
        ex, ey = e[3 * i], e[3 * i + 1]
        incl = (ex > 0) | ((ex == 0) & (ey > 0))
        thr.append(incl.to(pos.dtype) * -tiny)
    # Depth is not taken from the plane equation z/w = (sum_i z_i n_i) . p / det: for the sub-pixel
    # triangles of a dense mesh its coefficients cancel catastrophically in float32 (errors of
    # 2e-4 in z/w, several mm at 1 m, let a mouth socket win over the lips in one pixel in fifty).
    # The corners' z and w are kept instead: z/w = sum e_i z_i / sum e_i w_i at the pixel, with
    # e_i >= 0 inside, is a weighted mean of the corners' depths, accurate to float rounding.
    coef = e + [z0, z1, z2, w0, w1, w2] + thr  # 18 rows of (B*F,): kept separate, gathered row by row below

    front = (w0 > 0) & (w1 > 0) & (w2 > 0)
    # Triangles entirely behind the camera are dropped here; those off-screen in x or y get an
    # empty clamped box below, and those beyond near/far fail the per-pixel depth test.
    valid = (det != 0) & torch.isfinite(det) & ((w0 > 0) | (w1 > 0) | (w2 > 0))

    # Screen bounding boxes in pixel-index units (pixel centres at integers). Triangles that
    # cross w = 0 have unbounded projections: they get the whole screen, which is exact
    # because the homogeneous edge test does the rest. The box is widened by a hair because
    # projected coordinates round differently from the edge test, and a pixel centre lying
    # exactly on a vertex must still be a candidate.
    eps = 1e-3

    def box(a0, a1, a2, size):
        r0, r1, r2 = (torch.where(front, a / w, 0.0) for a, w in ((a0, w0), (a1, w1), (a2, w2)))
        lo = torch.minimum(torch.minimum(r0, r1), r2)
        hi = torch.maximum(torch.maximum(r0, r1), r2)
        lo = torch.ceil((lo + 1) * (size * 0.5) - (0.5 + eps)).clamp(0, size)
        hi = torch.floor((hi + 1) * (size * 0.5) - (0.5 - eps)).clamp(-1, size - 1)
        lo = torch.where(front, lo, 0.0)
        hi = torch.where(front, hi, size - 1.0)
        n = torch.where(valid, (hi - lo + 1).clamp(min=0), 0.0)
        return lo.long(), n.long()

    lx, nx = box(x0, x1, x2, W)
    ly, ny = box(y0, y1, y2, H)
    return coef, lx, ly, nx, ny


# Bounding boxes are padded up to one of these square sizes so that a whole size class is one
# dense (s, s, T) broadcast with no per-candidate gathers; boxes larger than the last size are
# cut into tiles of that size first (a full-screen triangle becomes many tiles, never dropped).
# Few classes beat tight boxes: each class costs ~40 tensor ops whatever its size (measured on
# a 27k-face head at 256²: these 6 classes ~15 % faster than 12 finer ones).
SIZE_CLASSES = (3, 6, 12, 24, 48, 64)


@torch.no_grad()
def visibility(pos: Tensor, tri: Tensor, H: int, W: int, chunk: int = CHUNK_CANDIDATES) -> Tensor:
    """Front triangle per pixel, without autograd.

    Args:
        pos: (B, V, 4) float clip-space positions.
        tri: (F, 3) int64 vertex indices.
        chunk: most (triangle, pixel) candidates evaluated at once (memory bound).
    Returns:
        (B*H*W,) int64 triangle index per pixel (row-major, batch first), -1 where empty.
    """
    B = pos.shape[0]
    F = tri.shape[0]
    dev = pos.device
    key = torch.full((B * H * W,), _EMPTY, dtype=torch.int64, device=dev)
    if F == 0:
        return key.fill_(-1)
    coef, x0, y0, nx, ny = _triangle_setup(pos, tri, H, W)
    live = ((nx > 0) & (ny > 0)).nonzero().squeeze(1)
    if live.numel() == 0:
        return key.fill_(-1)
    x0, y0, nx, ny = (t.index_select(0, live) for t in (x0, y0, nx, ny))
    tid = live  # flat (b * F + f)

    tile = SIZE_CLASSES[-1]
    ntx = (nx + tile - 1) // tile
    nty = (ny + tile - 1) // tile
    nt = ntx * nty
    if bool((nt > 1).any()):
        item = torch.repeat_interleave(torch.arange(nt.numel(), device=dev), nt)
        k = torch.arange(item.numel(), device=dev) - (torch.cumsum(nt, 0) - nt)[item]
        ky = torch.div(k, ntx[item], rounding_mode="floor")
        kx = k - ky * ntx[item]
        tx0 = x0[item] + kx * tile
        ty0 = y0[item] + ky * tile
        nx = torch.minimum(x0[item] + nx[item] - tx0, torch.full_like(tx0, tile))
        ny = torch.minimum(y0[item] + ny[item] - ty0, torch.full_like(ty0, tile))
        tid, x0, y0 = tid[item], tx0, ty0

    size = torch.maximum(nx, ny)
    classes = torch.tensor(SIZE_CLASSES, device=dev)
    cls = torch.searchsorted(classes, size)  # smallest class >= size
    counts = torch.bincount(cls, minlength=len(SIZE_CLASSES)).tolist()
    HW = H * W
    nan = float("nan")
    for ci, n_c in enumerate(counts):
        if n_c == 0:
            continue
        s = SIZE_CLASSES[ci]
        members = (cls == ci).nonzero().squeeze(1)
        ar = torch.arange(s, device=dev)
        step = max(1, chunk // (s * s))
        for a in range(0, n_c, step):
            it = members[a:a + step]
            t_c = tid.index_select(0, it)
            x_c = x0.index_select(0, it)
            y_c = y0.index_select(0, it)
            c = [row.index_select(0, t_c) for row in coef]
            # Layout (s, s, T): the triangle axis is innermost so every broadcast op runs long
            # contiguous loops (with T outside, loops of length s are ~20x slower on CPU).
            px = x_c[None] + ar[:, None]  # (s, T)
            py = y_c[None] + ar[:, None]
            # Pixels beyond the image get NaN coordinates, which fail every comparison below.
            xn = torch.where(px < W, pixel_ndc(px, W, pos.dtype), nan)[None]  # (1, s, T)
            yn = torch.where(py < H, pixel_ndc(py, H, pos.dtype), nan)[:, None]  # (s, 1, T)
            # Small (1, s, T) and (s, 1, T) terms first, so each edge costs one full-size add,
            # compare and and; the evaluation order is the same for every triangle, which keeps
            # shared-edge values exact negations of each other.
            inside = (c[0] * xn + c[2]) + c[1] * yn > c[15]
            inside &= (c[3] * xn + c[5]) + c[4] * yn > c[16]
            inside &= (c[6] * xn + c[8]) + c[7] * yn > c[17]
            sel = inside.view(-1).nonzero().squeeze(1)
            if sel.numel() == 0:
                continue
            nT = t_c.shape[0]
            iy = torch.div(sel, s * nT, rounding_mode="floor")
            r = sel - iy * (s * nT)
            ix = torch.div(r, nT, rounding_mode="floor")
            ti = r - ix * nT
            pxs = x_c.index_select(0, ti) + ix
            pys = y_c.index_select(0, ti) + iy
            # Depth and near/far clipping per pixel, on covered candidates only.
            xs, ys = pixel_ndc(pxs, W, pos.dtype), pixel_ndc(pys, H, pos.dtype)
            ev = [(c[3 * i].index_select(0, ti) * xs + c[3 * i + 2].index_select(0, ti))
                  + c[3 * i + 1].index_select(0, ti) * ys for i in range(3)]
            num = ev[0] * c[9].index_select(0, ti) + ev[1] * c[10].index_select(0, ti) + ev[2] * c[11].index_select(0, ti)
            den = ev[0] * c[12].index_select(0, ti) + ev[1] * c[13].index_select(0, ti) + ev[2] * c[14].index_select(0, ti)
            z = num / den
            t = t_c.index_select(0, ti)
            ok = (z >= -1) & (z <= 1)
            if not bool(ok.all()):
                ok = ok.nonzero().squeeze(1)
                t, pxs, pys, z = t[ok], pxs[ok], pys[ok], z[ok]
            bb = torch.div(t, F, rounding_mode="floor")
            f = t - bb * F
            # Non-negative floats order like their bit patterns; depth is in [0, 2] after the shift.
            zb = (z + 1).float().view(torch.int32).to(torch.int64)
            pix = bb * HW + pys * W + pxs
            key.scatter_reduce_(0, pix, (zb << 32) | f, reduce="amin")
    out = key & 0xFFFFFFFF
    out[key == _EMPTY] = -1
    return out


def pixel_forms(pos: Tensor, tri: Tensor, H: int, W: int, b: Tensor | None = None,
                f: Tensor | None = None) -> list[Tensor]:
    """Per-triangle linear forms in pixel coordinates, differentiable w.r.t. ``pos``.

    For pixel indices ``(px, py)`` and a triangle ``t``: ``c0 = A0 px + B0 py + C0`` and
    ``c1``, ``s`` likewise give ``u = c0 / s``, ``v = c1 / s`` (perspective-correct, from the
    homogeneous closed form ``c_i = (v_j x v_k) . p``), and ``z/w = Az px + Bz py + Cz``.

    Returns 14 tensors of shape (B*F,), or (N,) for the triangles ``(b, f)`` if given:
    ``A0, B0, C0, A1, B1, C1, As, Bs, Cs, Az, Bz, Cz, rx, ry``, where the forms take
    ``(px - rx, py - ry)`` instead of ``(px, py)``.
    The cross products cancel large terms (products of clip coordinates), so float32 input is
    set up in float64 (cheap: once per triangle) and the forms are rounded back to float32;
    evaluating them per pixel in float32 is then accurate to ~1e-6.
    """
    work = torch.float64 if pos.dtype == torch.float32 else pos.dtype
    x0, y0, z0, w0, x1, y1, z1, w1, x2, y2, z2, w2 = _corners(pos.to(work), tri, b, f)
    n0, n1, n2 = _edge_terms(x0, y0, w0, x1, y1, w1, x2, y2, w2)
    S = [n0[k] + n1[k] + n2[k] for k in range(3)]
    det = x0 * n0[0] + y0 * n0[1] + w0 * n0[2]
    det = torch.where(det == 0, torch.ones_like(det), det)
    Z = [(z0 * n0[k] + z1 * n1[k] + z2 * n2[k]) / det for k in range(3)]
    ax, bx = 2.0 / W, 1.0 / W - 1.0  # x_ndc = ax * px + bx
    ay, by = 2.0 / H, 1.0 / H - 1.0
    # Forms are taken relative to a pixel near the triangle (its first corner), so per-pixel
    # terms stay as small as the result and float32 evaluation does not cancel digits.
    with torch.no_grad():
        ok = w0 > 0
        ws = torch.where(ok, w0, torch.ones_like(w0))
        rx = torch.where(ok, torch.round((x0 / ws + 1) * (W / 2) - 0.5).clamp(-2 * W, 3 * W), 0.0)
        ry = torch.where(ok, torch.round((y0 / ws + 1) * (H / 2) - 0.5).clamp(-2 * H, 3 * H), 0.0)
    out = []
    for n in (n0, n1, S, Z):
        A, Bc = n[0] * ax, n[1] * ay
        out += [A, Bc, A * rx + Bc * ry + (n[0] * bx + n[1] * by + n[2])]
    return [o.to(pos.dtype) for o in out] + [rx.to(pos.dtype), ry.to(pos.dtype)]


def rasterize(pos: Tensor, tri: Tensor, resolution: tuple[int, int], grad_db: bool = True):
    """Torch backend of :func:`face3d.render.rasterize` (inputs already validated)."""
    H, W = resolution
    B = pos.shape[0]
    F = tri.shape[0]
    tri = tri.long()
    front = visibility(pos.detach(), tri, H, W)
    idx = (front >= 0).nonzero().squeeze(1)
    f = front.index_select(0, idx)
    b = torch.div(idx, H * W, rounding_mode="floor")
    r = idx - b * (H * W)
    py = torch.div(r, W, rounding_mode="floor")
    px = (r - py * W).to(pos.dtype)
    py = py.to(pos.dtype)
    # Differentiable recompute on covered pixels only: gather each triangle's linear forms.
    # Forms only for the triangles that are visible somewhere (often under half of them).
    # A presence mask and a lookup table instead of torch.unique: O(N), no sort.
    t = b * F + f
    seen = torch.zeros(B * F, dtype=torch.bool, device=pos.device)
    seen[t] = True
    vis_t = seen.nonzero().squeeze(1)
    lut = torch.empty(B * F, dtype=torch.int64, device=pos.device)
    lut[vis_t] = torch.arange(vis_t.numel(), device=pos.device)
    inv_t = lut.index_select(0, t)
    vb = torch.div(vis_t, F, rounding_mode="floor")
    A0, B0, C0, A1, B1, C1, As, Bs, Cs, Az, Bz, Cz, rx, ry = (
        g.index_select(0, inv_t) for g in pixel_forms(pos, tri, H, W, vb, vis_t - vb * F))
    px = px - rx
    py = py - ry
    inv = 1.0 / (As * px + Bs * py + Cs)
    u = (A0 * px + B0 * py + C0) * inv
    v = (A1 * px + B1 * py + C1) * inv
    zw = Az * px + Bz * py + Cz
    vals = torch.stack((u, v, zw, (f + 1).to(pos.dtype)), -1)
    # In-place copy into fresh zeros (not the out-of-place index_copy, which clones them).
    rast = torch.zeros(B * H * W, 4, dtype=pos.dtype, device=pos.device)
    rast.index_copy_(0, idx, vals)
    # d(c/s)/dpx = (A - (c/s) As) / s, per pixel as in nvdiffrast.
    if not grad_db:
        u, v, inv = u.detach(), v.detach(), inv.detach()
        A0, B0, A1, B1, As, Bs = (g.detach() for g in (A0, B0, A1, B1, As, Bs))
    db = torch.stack(((A0 - u * As) * inv, (B0 - u * Bs) * inv, (A1 - v * As) * inv, (B1 - v * Bs) * inv), -1)
    rast_db = torch.zeros(B * H * W, 4, dtype=pos.dtype, device=pos.device)
    rast_db.index_copy_(0, idx, db)
    return rast.view(B, H, W, 4), rast_db.view(B, H, W, 4)


def _covered(rast: Tensor):
    B, H, W, _ = rast.shape
    flat = rast.reshape(-1, 4)
    tid = flat[:, 3].detach()
    idx = (tid > 0).nonzero().squeeze(1)
    f = tid[idx].long() - 1
    b = torch.div(idx, H * W, rounding_mode="floor")
    return flat, idx, f, b


def interpolate(attr: Tensor, rast: Tensor, tri: Tensor, rast_db: Tensor | None = None, diff_attrs=None):
    """Torch backend of :func:`face3d.render.interpolate` (inputs already validated)."""
    B, H, W, _ = rast.shape
    tri = tri.long()
    flat, idx, f, b = _covered(rast)
    u = flat[idx, 0:1]
    v = flat[idx, 1:2]
    if attr.dim() == 3 and attr.shape[0] > 1:
        a = attr[b[:, None], tri[f]]  # (N, 3, C)
    else:
        a = attr.reshape(attr.shape[-2], attr.shape[-1])[tri[f]]
    a2 = a[:, 2]
    val = a2 + u * (a[:, 0] - a2) + v * (a[:, 1] - a2)
    C = attr.shape[-1]
    dtype = torch.promote_types(attr.dtype, rast.dtype)
    out = torch.zeros(B * H * W, C, dtype=dtype, device=rast.device).index_copy(0, idx, val.to(dtype))
    out = out.view(B, H, W, C)
    if diff_attrs is None:
        return out, None
    sel = list(range(C)) if diff_attrs == "all" else list(diff_attrs)
    dbf = rast_db.reshape(-1, 4)[idx]
    d0 = (a[:, 0] - a2)[:, sel]
    d1 = (a[:, 1] - a2)[:, sel]
    ddx = d0 * dbf[:, 0:1] + d1 * dbf[:, 2:3]
    ddy = d0 * dbf[:, 1:2] + d1 * dbf[:, 3:4]
    da = torch.stack((ddx, ddy), -1).reshape(-1, 2 * len(sel)).to(dtype)
    out_da = torch.zeros(B * H * W, 2 * len(sel), dtype=dtype, device=rast.device).index_copy(0, idx, da)
    return out, out_da.view(B, H, W, 2 * len(sel))


def texture(tex: Tensor, uv: Tensor, filter_mode: str = "linear", boundary_mode: str = "wrap") -> Tensor:
    """Torch backend of :func:`face3d.render.texture`: bilinear lookup, texel centres at ``(i + 0.5) / size``."""
    B = uv.shape[0]
    if tex.shape[0] == 1 and B > 1:
        tex = tex.expand(B, *tex.shape[1:])
    Ht, Wt = tex.shape[1], tex.shape[2]
    t = tex.permute(0, 3, 1, 2)
    if boundary_mode == "wrap":
        # One texel of wrapped border turns wrapping into clamping on a padded texture.
        t = torch.cat((t[..., -1:, :], t, t[..., :1, :]), dim=-2)
        t = torch.cat((t[..., -1:], t, t[..., :1]), dim=-1)
        u = torch.remainder(uv[..., 0], 1.0)
        v = torch.remainder(uv[..., 1], 1.0)
        gx = (2 * (u * Wt + 0.5) + 1) / (Wt + 2) - 1
        gy = (2 * (v * Ht + 0.5) + 1) / (Ht + 2) - 1
        pad = "border"
    else:
        gx = 2 * uv[..., 0] - 1
        gy = 2 * uv[..., 1] - 1
        pad = "border" if boundary_mode == "clamp" else "zeros"
    grid = torch.stack((gx, gy), -1).to(t.dtype)
    mode = "bilinear" if filter_mode in ("linear", "auto") else "nearest"
    out = torch.nn.functional.grid_sample(t, grid, mode=mode, padding_mode=pad, align_corners=False)
    return out.permute(0, 2, 3, 1)


def edge_topology(tri: Tensor, n_vertices: int):
    """Neighbour across each edge, from a sort over undirected edge keys (no Python loops).

    Args:
        tri: (F, 3) int64. Edge ``e`` of a triangle is the one opposite vertex ``e``.
    Returns:
        nbr (F, 3) int64 neighbouring triangle (-1 on boundary or non-manifold edges, which are
        then always treated as silhouettes); flip (F, 3) bool, True where the neighbour lists
        the shared edge in the same direction (inconsistently wound faces).
    """
    F = tri.shape[0]
    a = tri[:, (1, 2, 0)].reshape(-1)
    b = tri[:, (2, 0, 1)].reshape(-1)
    key = torch.minimum(a, b) * n_vertices + torch.maximum(a, b)
    ks, order = torch.sort(key)
    n = ks.numel()
    nbr = torch.full((n,), -1, dtype=torch.int64, device=tri.device)
    flip = torch.zeros(n, dtype=torch.bool, device=tri.device)
    if n >= 2:
        same = ks[1:] == ks[:-1]
        prev_same = torch.cat((same.new_zeros(1), same[:-1]))
        next_same = torch.cat((same[1:], same.new_zeros(1)))
        pair = same & ~prev_same & ~next_same  # groups of exactly two half-edges
        k = pair.nonzero().squeeze(1)
        h0, h1 = order[k], order[k + 1]
        nbr[h0] = torch.div(h1, 3, rounding_mode="floor")
        nbr[h1] = torch.div(h0, 3, rounding_mode="floor")
        fl = a[h0] == a[h1]
        flip[h0] = fl
        flip[h1] = fl
    return nbr.view(F, 3), flip.view(F, 3)


_TOPOLOGY_CACHE: dict = {}


def _cached_topology(tri: Tensor, n_vertices: int):
    """:func:`edge_topology`, memoised on the content of ``tri`` (renderers reuse one mesh).

    The hit test is an exact ``torch.equal`` on the indices: O(F), far cheaper than the sort.
    """
    key = (tuple(tri.shape), str(tri.device), n_vertices)
    hit = _TOPOLOGY_CACHE.get(key)
    if hit is not None and torch.equal(hit[0], tri):
        return hit[1]
    if len(_TOPOLOGY_CACHE) > 8:
        _TOPOLOGY_CACHE.clear()
    topo = edge_topology(tri, n_vertices)
    _TOPOLOGY_CACHE[key] = (tri.clone(), topo)
    return topo


def antialias(color: Tensor, rast: Tensor, pos: Tensor, tri: Tensor) -> Tensor:
    """Torch backend of :func:`face3d.render.antialias` (inputs already validated).

    For every pair of 4-neighbouring pixels ``(a, o)`` covered by different triangles (pairs
    along x for edges steeper than 45 degrees on screen, along y for the others), where
    the triangle ``T`` at ``a`` has a *silhouette* edge (a mesh boundary, or an edge whose
    neighbour faces the other way on screen) crossing the segment from ``a`` to ``o`` and ``T``
    extrapolated to ``o`` lies in front of whatever ``o`` shows, the edge crosses the segment
    at ``t = c_a / (c_a - c_o)`` (edge values are affine in NDC). A 1D box filter along the
    segment then gives: if ``t < 1/2`` pixel ``a`` is only partly covered and receives
    ``(1/2 - t) (color_o - color_a)``; otherwise pixel ``o`` is partly covered by ``T`` and
    receives ``(t - 1/2) (color_a - color_o)``. ``t`` is recomputed with autograd from the two
    edge vertices, which is where the vertex-position gradients at silhouettes come from.

    Known limits (as with any pair-based analytic antialiasing): the image is continuous in the
    vertex positions along an edge, but can jump slightly where an edge's screen slope crosses
    45 degrees (it switches between horizontal and vertical pairs) and next to a vertex where
    two silhouette edges meet and the covered sliver is thinner than a pixel.
    """
    B, H, W, C = color.shape
    tri = tri.long()
    F = tri.shape[0]
    dev = color.device
    with torch.no_grad():
        tid = rast[..., 3].detach().long() - 1  # (B, H, W)
        zw = rast[..., 2].detach()
        P = pos.detach()
        # Silhouette edges of every (batch, triangle): boundary, or the neighbour's screen
        # orientation differs from the triangle's (after correcting for inconsistent winding).
        x0, y0, _, w0, x1, y1, _, w1, x2, y2, _, w2 = _corners(P, tri)
        n0, _, _ = _edge_terms(x0, y0, w0, x1, y1, w1, x2, y2, w2)
        sgn = torch.sign(x0 * n0[0] + y0 * n0[1] + w0 * n0[2]).view(B, F)
        nbr, flip = _cached_topology(tri, pos.shape[1])
        sgn_n = sgn[:, nbr.clamp(min=0)]  # (B, F, 3)
        sil = (nbr < 0) | ((sgn_n == sgn[..., None]) == flip)
        has_sil = sil.any(-1).reshape(-1)
        # Only pixels whose triangle has a silhouette edge can start a pair; on a dense mesh
        # that removes almost all of the (many) pixel pairs with different triangle ids.
        covered = tid >= 0
        bidx = torch.arange(B, device=dev)[:, None, None] * F
        hs = covered & has_sil[(bidx + tid.clamp(min=0)).view(-1)].view(B, H, W)
        base = torch.arange(B * H * W, device=dev).view(B, H, W)
        dh = tid[:, :, :-1] != tid[:, :, 1:]
        dv = tid[:, :-1, :] != tid[:, 1:, :]
        parts = []
        for m, a_img, o_img, horizontal in (
            (dh & hs[:, :, :-1], base[:, :, :-1], base[:, :, 1:], True),
            (dh & hs[:, :, 1:], base[:, :, 1:], base[:, :, :-1], True),
            (dv & hs[:, :-1, :], base[:, :-1, :], base[:, 1:, :], False),
            (dv & hs[:, 1:, :], base[:, 1:, :], base[:, :-1, :], False),
        ):
            parts.append((a_img[m], o_img[m], torch.full((int(m.sum()),), horizontal, device=dev)))
        pa = torch.cat([p_[0] for p_ in parts])
        po = torch.cat([p_[1] for p_ in parts])
        horiz = torch.cat([p_[2] for p_ in parts])
        if pa.numel() == 0:
            return color
        tflat = tid.reshape(-1)
        ta = tflat[pa]
        to = tflat[po]
        b = torch.div(pa, H * W, rounding_mode="floor")

        def ndc(p):
            r = p - torch.div(p, H * W, rounding_mode="floor") * (H * W)
            y = torch.div(r, W, rounding_mode="floor")
            return pixel_ndc(r - y * W, W, pos.dtype), pixel_ndc(y, H, pos.dtype)

        xa, ya = ndc(pa)
        xo, yo = ndc(po)
        v = P[b[:, None], tri[ta]]  # (K, 3, 4)
        n = edge_normals(v[..., (0, 1, 3)])
        det = (v[:, 0, (0, 1, 3)] * n[:, 0]).sum(-1)
        ca = n[..., 0] * xa[:, None] + n[..., 1] * ya[:, None] + n[..., 2]
        co = n[..., 0] * xo[:, None] + n[..., 1] * yo[:, None] + n[..., 2]
        sg = torch.sign(det)[:, None]
        crossing = (ca * sg >= 0) & (co * sg < 0)
        tt = torch.where(crossing, ca / (ca - co), torch.full_like(ca, 2.0))
        tmin, e = tt.min(-1)
        ok = tmin <= 1
        silhouette = sil.view(B * F, 3)[b * F + ta, e]
        # T in front of what o shows: extrapolate z/w (and require the point to be before the camera).
        s_o = co.sum(-1)
        w_pos = (s_o / det) > 0
        z_ext = (co * v[..., 2]).sum(-1) / det
        in_front = w_pos & ((to < 0) | (z_ext < zw.reshape(-1)[po]))
        # Each edge is resolved along one axis only: horizontal pairs for edges steeper than
        # 45 degrees on screen, vertical pairs otherwise. Using both would blend a pixel twice
        # and make the image jump when the edge crosses its centre.
        ne = n.gather(1, e[:, None, None].expand(-1, 1, 3))[:, 0]
        steep = (ne[:, 0] * H).abs() >= (ne[:, 1] * W).abs()
        sel = (ok & silhouette & in_front & (steep == horiz)).nonzero().squeeze(1)
        if sel.numel() == 0:
            return color
        pa, po, ta, e, b = pa[sel], po[sel], ta[sel], e[sel], b[sel]
        xa, ya, xo, yo = xa[sel], ya[sel], xo[sel], yo[sel]
    # Differentiable part: only the two endpoints of the crossing edge matter.
    j = tri[ta, (e + 1) % 3]
    k = tri[ta, (e + 2) % 3]
    work = torch.float64 if pos.dtype == torch.float32 else pos.dtype  # see rasterize()
    vj = pos[b, j][:, (0, 1, 3)].to(work)
    vk = pos[b, k][:, (0, 1, 3)].to(work)
    ne = _cross(vj, vk)
    ca = ne[:, 0] * xa.to(work) + ne[:, 1] * ya.to(work) + ne[:, 2]
    co = ne[:, 0] * xo.to(work) + ne[:, 1] * yo.to(work) + ne[:, 2]
    t = (ca / (ca - co)).clamp(0, 1)[:, None].to(color.dtype)
    cf = color.reshape(-1, C)
    col_a = cf[pa]
    col_o = cf[po]
    wa = (0.5 - t).clamp(min=0)
    wo = (t - 0.5).clamp(min=0)
    delta = torch.cat((wa * (col_o - col_a), wo * (col_a - col_o)), 0)
    dst = torch.cat((pa, po), 0)
    out = cf.index_add(0, dst, delta.to(cf.dtype))
    return out.view(B, H, W, C)
