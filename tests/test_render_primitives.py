"""Primitives of face3d.render (torch backend): fill rule, barycentrics, gradients, bad input."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from face3d.render import antialias, interpolate, rasterize, texture
from face3d.render.primitives import resolve_backend


def _coverage(pos, tri, res):
    rast, _ = rasterize(pos, tri, res, backend="torch")
    return rast[..., 3] > 0


# ----------------------------------------------------------------------------- import hygiene


def test_import_does_not_load_optional_backends():
    code = ("import sys, face3d, face3d.render; from face3d.render import rasterize, Renderer; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('nvdiffrast', 'pytorch3d')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_auto_backend_on_cpu_is_torch():
    assert resolve_backend("auto", torch.zeros(1, 3, 4)) == "torch"
    with pytest.raises(ValueError, match="backend"):
        resolve_backend("opengl", torch.zeros(1))


# ----------------------------------------------------------------------------- fill rule


def test_quad_diagonal_through_pixel_centres_is_covered_exactly_once():
    # Square from NDC (-1,-1) to (1,1): its diagonal passes exactly through the centres of the
    # pixels (i, i); also at w != 1 (same NDC, scaled clip coordinates).
    for w in (1.0, 2.5):
        q = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
        pos = torch.cat((q, torch.zeros(4, 1), torch.ones(4, 1)), -1)[None] * w
        t1 = torch.tensor([[0, 1, 2]], dtype=torch.int32)
        t2 = torch.tensor([[0, 2, 3]], dtype=torch.int32)
        c1 = _coverage(pos, t1, (9, 9))
        c2 = _coverage(pos, t2, (9, 9))
        both = c1.int() + c2.int()
        assert both.min() == 1 and both.max() == 1
        diag = torch.arange(9)
        # Each diagonal pixel went to exactly one side (which side is the tie-break's choice).
        assert int(c1[0, diag, diag].sum()) in (0, 9)


def test_fan_around_a_pixel_centre_covers_it_once():
    # Eight triangles meeting at a vertex placed exactly on a pixel centre, spokes through
    # other pixel centres: every pixel of the octagon is covered exactly once.
    H = W = 17
    c = torch.tensor([1.0 / W, 1.0 / H])  # centre of pixel (8, 8) in NDC
    ang = torch.arange(8) * (np.pi / 4)
    ring = c + 0.8 * torch.stack((torch.cos(ang), torch.sin(ang)), -1) * torch.tensor([1.0, 1.0])
    # Snap ring vertices to pixel centres so the spokes run along pixel rows/columns/diagonals.
    ring = torch.round((ring + 1) * W / 2 - 0.5) * 2 / W + 1.0 / W - 1
    xy = torch.cat((c[None], ring))
    pos = torch.cat((xy, torch.zeros(9, 1), torch.ones(9, 1)), -1)[None]
    counts = torch.zeros(1, H, W, dtype=torch.int32)
    for k in range(8):
        t = torch.tensor([[0, 1 + k, 1 + (k + 1) % 8]], dtype=torch.int32)
        counts += _coverage(pos, t, (H, W)).int()
    assert counts.max() == 1
    assert counts[0, 8, 8] == 1
    allt = torch.tensor([[0, 1 + k, 1 + (k + 1) % 8] for k in range(8)], dtype=torch.int32)
    assert torch.equal(_coverage(pos, allt, (H, W)), counts > 0)


def test_random_mesh_partition_has_no_cracks_or_overlaps():
    # A jittered grid of triangles under a perspective-like w: each pixel inside the outer
    # square is covered by exactly one triangle.
    g = torch.Generator().manual_seed(1)
    n = 6
    lin = torch.linspace(-0.9, 0.9, n + 1)
    gy, gx = torch.meshgrid(lin, lin, indexing="ij")
    xy = torch.stack((gx, gy), -1).reshape(-1, 2)
    inner = ((gx.abs() < 0.89) & (gy.abs() < 0.89)).reshape(-1)
    xy[inner] += (torch.rand(int(inner.sum()), 2, generator=g) - 0.5) * 0.2
    w = 1.0 + torch.rand(xy.shape[0], 1, generator=g)
    pos = torch.cat((xy * w, torch.zeros_like(w), w), -1)[None]
    idx = torch.arange((n + 1) ** 2).reshape(n + 1, n + 1)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    tri = torch.cat((torch.stack((a, b, d), -1).reshape(-1, 3), torch.stack((a, d, c), -1).reshape(-1, 3))).int()
    counts = torch.zeros(1, 40, 40, dtype=torch.int32)
    for k in range(tri.shape[0]):
        counts += _coverage(pos, tri[k:k + 1], (40, 40)).int()
    assert counts.max() == 1
    # pixel centres strictly inside [-0.9, 0.9]^2 are all covered
    centres = (2 * torch.arange(40) + 1) / 40 - 1
    inside = (centres.abs() < 0.9)
    assert bool(counts[0][inside][:, inside].eq(1).all())


def test_coverage_matches_brute_force_reference():
    xy = torch.tensor([[-0.71, -0.43], [0.83, -0.12], [-0.05, 0.77]])
    pos = torch.cat((xy, torch.zeros(3, 1), torch.ones(3, 1)), -1)[None]
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    cov = _coverage(pos, tri, (32, 32))[0].numpy()
    c = (2 * np.arange(32) + 1) / 32 - 1
    X, Y = np.meshgrid(c, c)
    p = xy.double().numpy()

    def e(a, b):
        return (p[b, 0] - p[a, 0]) * (Y - p[a, 1]) - (p[b, 1] - p[a, 1]) * (X - p[a, 0])

    s = np.sign((p[1, 0] - p[0, 0]) * (p[2, 1] - p[0, 1]) - (p[1, 1] - p[0, 1]) * (p[2, 0] - p[0, 0]))
    ref = (e(1, 2) * s >= 0) & (e(2, 0) * s >= 0) & (e(0, 1) * s >= 0)
    assert cov.sum() > 50
    assert (cov == ref).all()


def test_depth_test_keeps_the_nearest_triangle():
    # Two overlapping triangles; the one with smaller z/w wins, whatever the index order.
    xy = torch.tensor([[-0.9, -0.9], [0.9, -0.9], [0.0, 0.9]])
    near = torch.cat((xy, torch.full((3, 1), -0.5), torch.ones(3, 1)), -1)
    far = torch.cat((xy * 0.8, torch.full((3, 1), 0.5), torch.ones(3, 1)), -1)
    for order in ((near, far), (far, near)):
        pos = torch.cat(order)[None]
        tri = torch.tensor([[0, 1, 2], [3, 4, 5]], dtype=torch.int32)
        rast, _ = rasterize(pos, tri, (16, 16))
        ids = rast[..., 3][rast[..., 3] > 0]
        want = 1 if order[0] is near else 2
        assert bool((ids == want).all())
        assert torch.allclose(rast[..., 2][rast[..., 3] > 0], torch.tensor(-0.5))


# ----------------------------------------------------------------------------- barycentrics


def test_barycentrics_are_perspective_correct():
    # Triangle in camera space; interpolating the camera-space positions with (u, v) must give
    # points on each pixel's viewing ray (x/z = x_ndc, y/z = y_ndc for this projection).
    P = torch.tensor([[-1.0, -1.0, 2.0], [1.5, -0.5, 5.0], [0.0, 1.2, 3.0]], dtype=torch.float64)
    pos = torch.cat((P[:, :2], torch.zeros(3, 1, dtype=torch.float64), P[:, 2:]), -1)[None]
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    rast, _ = rasterize(pos, tri, (48, 48))
    pts, _ = interpolate(P[None], rast, tri)
    m = rast[0, ..., 3] > 0
    c = (2 * torch.arange(48, dtype=torch.float64) + 1) / 48 - 1
    Y, X = torch.meshgrid(c, c, indexing="ij")
    q = pts[0][m]
    assert m.sum() > 100
    assert torch.allclose(q[:, 0] / q[:, 2], X[m], atol=1e-9)
    assert torch.allclose(q[:, 1] / q[:, 2], Y[m], atol=1e-9)


def test_rast_db_matches_finite_differences():
    xy = torch.tensor([[-0.7, -0.6], [0.8, -0.3], [-0.1, 0.75]], dtype=torch.float64)
    w = torch.tensor([[1.0], [2.0], [1.5]], dtype=torch.float64)
    pos = torch.cat((xy * w, torch.zeros(3, 1, dtype=torch.float64), w), -1)[None]
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    H = W = 20
    rast, db = rasterize(pos, tri, (H, W))
    d = 1e-4  # pixels
    shift = torch.tensor([2 * d / W, 0, 0, 0], dtype=torch.float64)
    rx, _ = rasterize(pos - shift * pos[..., 3:], tri, (H, W))  # image moved left = sample moved right
    shift = torch.tensor([0, 2 * d / H, 0, 0], dtype=torch.float64)
    ry, _ = rasterize(pos - shift * pos[..., 3:], tri, (H, W))
    m = (rast[..., 3] > 0) & (rx[..., 3] > 0) & (ry[..., 3] > 0)
    num = torch.stack(((rx[..., 0] - rast[..., 0]) / d, (ry[..., 0] - rast[..., 0]) / d,
                       (rx[..., 1] - rast[..., 1]) / d, (ry[..., 1] - rast[..., 1]) / d), -1)
    assert m.sum() > 50
    assert torch.allclose(db[m], num[m], atol=1e-5)


def test_gradcheck_barycentrics_wrt_positions():
    g = torch.Generator().manual_seed(7)
    xy = torch.tensor([[-0.8, -0.7], [0.7, -0.8], [0.1, 0.8], [0.9, 0.6]], dtype=torch.float64)
    xy = xy + 0.05 * torch.rand(4, 2, generator=g, dtype=torch.float64)
    w = torch.tensor([[1.0], [1.3], [0.8], [1.1]], dtype=torch.float64)
    z = torch.tensor([[0.1], [0.2], [-0.1], [0.3]], dtype=torch.float64)
    pos = torch.cat((xy * w, z, w), -1)[None].requires_grad_(True)
    tri = torch.tensor([[0, 1, 2], [1, 3, 2]], dtype=torch.int32)

    def f(p):
        rast, db = rasterize(p, tri, (8, 8))
        return rast[..., :3], db

    assert torch.autograd.gradcheck(f, (pos,), eps=1e-6, atol=1e-6)


def test_gradcheck_interpolate():
    g = torch.Generator().manual_seed(8)
    pos = torch.tensor([[[-0.8, -0.7, 0.0, 1.0], [0.7, -0.8, 0.2, 1.3], [0.1, 0.8, 0.1, 0.9]]], dtype=torch.float64)
    pos = pos.requires_grad_(True)
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    attr = torch.rand(1, 3, 2, generator=g, dtype=torch.float64, requires_grad=True)

    def f(p, a):
        rast, db = rasterize(p, tri, (6, 6))
        out, da = interpolate(a, rast, tri, rast_db=db, diff_attrs="all")
        return out, da

    assert torch.autograd.gradcheck(f, (pos, attr), eps=1e-6, atol=1e-6)
    # value check: each vertex's attribute is reproduced by the barycentric combination
    rast, _ = rasterize(pos.detach(), tri, (6, 6))
    out, _ = interpolate(torch.eye(3, dtype=torch.float64), rast, tri)
    m = rast[..., 3] > 0
    assert torch.allclose(out[m], torch.stack((rast[..., 0], rast[..., 1], 1 - rast[..., 0] - rast[..., 1]), -1)[m])


# ----------------------------------------------------------------------------- texture


def test_texture_bilinear_values_and_gradcheck():
    tex = torch.arange(12, dtype=torch.float64).reshape(1, 3, 4, 1)
    # texel centres: uv = ((j + .5)/4, (i + .5)/3); halfway between (0,0) and (0,1) gives 0.5
    uv = torch.tensor([[[[0.5 / 4, 0.5 / 3], [1.0 / 4, 0.5 / 3], [0.5 / 4, 1.0 / 3]]]], dtype=torch.float64)
    out = texture(tex, uv, boundary_mode="clamp")
    assert torch.allclose(out[0, 0, :, 0], torch.tensor([0.0, 0.5, 2.0], dtype=torch.float64))
    # wrap: u slightly below 0 blends the first and last column
    wr = texture(tex, torch.tensor([[[[0.0, 0.5 / 3]]]], dtype=torch.float64), boundary_mode="wrap")
    assert torch.allclose(wr[0, 0, 0, 0], torch.tensor(1.5, dtype=torch.float64))
    g = torch.Generator().manual_seed(2)
    t = torch.rand(1, 5, 6, 2, generator=g, dtype=torch.float64, requires_grad=True)
    uv = (0.1 + 0.8 * torch.rand(1, 3, 3, 2, generator=g, dtype=torch.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: texture(a, b), (t, uv), eps=1e-6, atol=1e-5)


# ----------------------------------------------------------------------------- antialias


def _aa_scene(px: float):
    # A triangle over a background triangle; vertex 1 (x = px in NDC) sits on the silhouette.
    fg = torch.tensor([[-0.6, -0.7, -0.5, 1.0], [px, -0.1, -0.5, 1.0], [-0.5, 0.75, -0.5, 1.0]], dtype=torch.float64)
    bg = torch.tensor([[-1.0, -1.0, 0.5, 1.0], [3.0, -1.0, 0.5, 1.0], [-1.0, 3.0, 0.5, 1.0]], dtype=torch.float64)
    pos = torch.cat((fg, bg))[None]
    tri = torch.tensor([[0, 1, 2], [3, 4, 5]], dtype=torch.int32)
    col = torch.tensor([[1.0, 0.2], [0.8, 0.3], [0.9, 0.1], [0.1, 0.9], [0.2, 0.8], [0.0, 1.0]], dtype=torch.float64)
    return pos, tri, col


def test_antialias_position_gradient_matches_finite_differences():
    H, W = 16, 16
    g = torch.Generator().manual_seed(4)
    wts = torch.rand(1, H, W, 2, generator=g, dtype=torch.float64)

    def loss(px):
        pos, tri, col = _aa_scene(px)
        pos = pos.clone().requires_grad_(True)
        rast, _ = rasterize(pos, tri, (H, W))
        c, _ = interpolate(col, rast, tri)
        out = antialias(c, rast, pos, tri)
        val = (out * wts).sum()
        (gpos,) = torch.autograd.grad(val, pos)
        return float(val.detach()), float(gpos[0, 1, 0]), rast[..., 3].clone()

    x = 0.43
    _, analytic, ids = loss(x)
    h = 1e-5
    lp, _, ids_p = loss(x + h)
    lm, _, ids_m = loss(x - h)
    assert torch.equal(ids, ids_p) and torch.equal(ids, ids_m)  # no pixel centre crossed
    numeric = (lp - lm) / (2 * h)
    assert abs(numeric) > 0.1  # the silhouette does contribute
    assert analytic == pytest.approx(numeric, rel=1e-4, abs=1e-6)
    # Without antialiasing the image would not depend on the silhouette position at all.
    pos, tri, col = _aa_scene(x)
    pos.requires_grad_(True)
    rast, _ = rasterize(pos, tri, (H, W))
    c, _ = interpolate(col, rast, tri)
    (g0,) = torch.autograd.grad((c * wts).sum(), pos)
    assert float(g0[0, 1, 0]) != pytest.approx(numeric, abs=1e-3)


def test_antialias_gives_exact_coverage_for_a_vertical_edge():
    # A white rectangle over a black one, its right edge swept across a pixel centre: along
    # that edge a 1D box filter is the exact area coverage, so pixel values must be
    # clamp(edge - (j - 1/2), 0, 1) in pixel units, continuously through the crossing.
    H = W = 16
    rows = slice(5, 11)  # away from the rectangle's corners
    for edge_px in (7.2, 7.45, 7.5, 7.55, 7.9, 8.3):
        xe = (edge_px + 0.5) * 2 / W - 1
        fg = torch.tensor([[-0.5, -0.6, -0.5, 1.0], [xe, -0.6, -0.5, 1.0], [xe, 0.6, -0.5, 1.0], [-0.5, 0.6, -0.5, 1.0]])
        bg = torch.tensor([[-1.0, -1.0, 0.5, 1.0], [1.0, -1.0, 0.5, 1.0], [1.0, 1.0, 0.5, 1.0], [-1.0, 1.0, 0.5, 1.0]])
        pos = torch.cat((fg, bg))[None]
        tri = torch.tensor([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]], dtype=torch.int32)
        rast, _ = rasterize(pos, tri, (H, W))
        col = (rast[..., 3:4] <= 2).float() * (rast[..., 3:4] > 0).float()  # 1 on the white quad
        out = antialias(col, rast, pos, tri)
        j = torch.arange(W, dtype=torch.float32)
        want = (edge_px - (j - 0.5)).clamp(0, 1)
        got = out[0, rows, :, 0]
        assert torch.allclose(got[:, 6:], want[6:].expand_as(got[:, 6:]), atol=1e-5), (edge_px, got[0])


# ----------------------------------------------------------------------------- bad input


def _ok():
    pos = torch.tensor([[[-0.5, -0.5, 0.0, 1.0], [0.5, -0.5, 0.0, 1.0], [0.0, 0.5, 0.0, 1.0]]])
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    return pos, tri


@pytest.mark.parametrize("make, exc, name", [
    (lambda p, t: rasterize(p[0], t, (8, 8)), ValueError, "pos"),
    (lambda p, t: rasterize(p[..., :3], t, (8, 8)), ValueError, "pos"),
    (lambda p, t: rasterize(p.long(), t, (8, 8)), TypeError, "pos"),
    (lambda p, t: rasterize(p, t.float(), (8, 8)), TypeError, "tri"),
    (lambda p, t: rasterize(p, t[:, :2], (8, 8)), ValueError, "tri"),
    (lambda p, t: rasterize(p, t + 1, (8, 8)), ValueError, "tri"),
    (lambda p, t: rasterize(p, t - 1, (8, 8)), ValueError, "tri"),
    (lambda p, t: rasterize(p.clone().index_fill_(1, torch.tensor([1]), float("nan")), t, (8, 8)), ValueError, "pos"),
    (lambda p, t: rasterize(p, t, (0, 8)), ValueError, "resolution"),
    (lambda p, t: rasterize(p, t, (8,)), ValueError, "resolution"),
    (lambda p, t: rasterize(p, t, (8, 8), backend="vulkan"), ValueError, "backend"),
    (lambda p, t: interpolate(torch.ones(2, 3), rasterize(p, t, (8, 8))[0], t), ValueError, "tri"),
    (lambda p, t: interpolate(torch.ones(3, 2).int(), rasterize(p, t, (8, 8))[0], t), TypeError, "attr"),
    (lambda p, t: interpolate(torch.ones(3, 2), torch.zeros(1, 8, 8, 3), t), ValueError, "rast"),
    (lambda p, t: interpolate(torch.ones(3, 2), torch.zeros(1, 0, 8, 4), t), ValueError, "rast"),
    (lambda p, t: texture(torch.ones(1, 0, 4, 3), torch.zeros(1, 2, 2, 2)), ValueError, "tex"),
    (lambda p, t: texture(torch.ones(1, 4, 4, 3), torch.zeros(1, 2, 2, 3)), ValueError, "uv"),
    (lambda p, t: antialias(torch.ones(1, 8, 7, 3), rasterize(p, t, (8, 8))[0], p, t), ValueError, "color"),
])
def test_bad_input_raises_naming_the_argument(make, exc, name):
    pos, tri = _ok()
    with pytest.raises(exc, match=name):
        make(pos, tri)


def test_tiny_chunks_and_big_triangles_drop_nothing():
    # Memory chunking and tiling must not change the result: a 7-candidate chunk budget gives
    # the same image as the default, and a triangle larger than the biggest tile (cut into
    # 64 px tiles) covers exactly the pixels a brute-force test says.
    from face3d.render.backends import torch_raster

    g = torch.Generator().manual_seed(9)
    xy = torch.rand(40, 2, generator=g) * 2 - 1
    pos = torch.cat((xy, torch.rand(40, 1, generator=g) - 0.5, torch.ones(40, 1)), -1)[None]
    tri = torch.randint(0, 40, (60, 3), generator=g)
    a = torch_raster.visibility(pos, tri, 24, 24)
    b = torch_raster.visibility(pos, tri, 24, 24, chunk=7)
    assert torch.equal(a, b) and int((a >= 0).sum()) > 200
    big = torch.tensor([[[-3.0, -1.0, 0.0, 1.0], [1.0, -1.0, 0.0, 1.0], [1.0, 3.0, 0.0, 1.0]]])
    cov = _coverage(big, torch.tensor([[0, 1, 2]]), (150, 170))[0]
    c_x = (2 * torch.arange(170) + 1) / 170 - 1
    c_y = (2 * torch.arange(150) + 1) / 150 - 1
    ref = c_y[:, None] <= c_x[None, :] + 2.0 + 1e-9  # inside iff y <= x + 2 (the hypotenuse)
    assert torch.equal(cov, ref.expand(150, 170))


def test_dense_mesh_depth_test_never_lets_a_surface_behind_win():
    """Two tilted grids of sub-pixel triangles 3 mm apart, seen from 900 mm: the rear one must
    never show through. (A plane equation for z/w, set up per triangle in float32, cancels
    catastrophically for triangles this small: it showed the rear grid in ~2 % of the pixels.)"""
    from face3d.render import Camera

    n = 140
    u = torch.linspace(-25.0, 25.0, n)
    gx, gy = torch.meshgrid(u, u, indexing="xy")
    idx = torch.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1].reshape(-1), idx[:-1, 1:].reshape(-1), idx[1:, :-1].reshape(-1), idx[1:, 1:].reshape(-1)
    quad = torch.cat([torch.stack([a, b, d], 1), torch.stack([a, d, c], 1)])
    front = torch.stack([gx, gy, 0.4 * gx + 0.2 * gy], -1).reshape(-1, 3)
    back = front - torch.tensor([0.0, 0.0, 3.0])
    verts = torch.cat([front, back])
    faces = torch.cat([quad, quad + n * n])
    cam = Camera.look_at(torch.tensor([0.0, 0.0, 900.0]), torch.zeros(3), fov_deg=2.6, width=96, height=96)
    rast, _ = rasterize(cam.to_clip(verts[None]), faces.int(), (96, 96), backend="torch")
    tid = rast[0, ..., 3].long() - 1
    assert (tid >= 0).float().mean() > 0.9  # the grids fill the view, at ~0.4 triangles per pixel
    assert int((tid >= quad.shape[0]).sum()) == 0
