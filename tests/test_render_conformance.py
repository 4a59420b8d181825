"""One conformance suite for every installed rasterization backend.

Each backend is compared with an independent brute-force float64 reference (screen-space edge
functions, 1/w perspective correction, z-buffer on z/w). Backends whose package is not
installed are skipped with that reason; here (CPU, torch 2.13) only ``torch`` runs. The
pytorch3d cases run in a separate environment with ``easypytorch3d==0.7.9.post1`` and
``torch==2.11.0`` (see docs/performance.md).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from face3d.render import interpolate, rasterize
from face3d.render.backends import is_available
from face3d.models.toy import head_proxy


def _usable(name: str) -> tuple[bool, str]:
    if not is_available(name):
        return False, f"backend {name!r} not installed"
    if name == "nvdiffrast" and not torch.cuda.is_available():
        return False, "backend 'nvdiffrast' needs CUDA, not available here"
    return True, ""


BACKENDS = [pytest.param(b, marks=pytest.mark.skipif(not _usable(b)[0], reason=_usable(b)[1]))
            for b in ("torch", "nvdiffrast", "pytorch3d")]


def _device(backend: str) -> str:
    return "cuda" if backend == "nvdiffrast" else "cpu"


def reference_rasterize(pos: np.ndarray, tri: np.ndarray, H: int, W: int):
    """Brute-force float64 rasterizer for triangles with all w > 0. Returns rast (B, H, W, 4)."""
    B = pos.shape[0]
    out = np.zeros((B, H, W, 4))
    xs = (2 * np.arange(W) + 1) / W - 1
    ys = (2 * np.arange(H) + 1) / H - 1
    X, Y = np.meshgrid(xs, ys)
    for b in range(B):
        zbuf = np.full((H, W), np.inf)
        for f, (i0, i1, i2) in enumerate(tri):
            P = pos[b, [i0, i1, i2]]
            sx, sy, w = P[:, 0] / P[:, 3], P[:, 1] / P[:, 3], P[:, 3]
            area = (sx[1] - sx[0]) * (sy[2] - sy[0]) - (sy[1] - sy[0]) * (sx[2] - sx[0])
            if area == 0:
                continue
            l0 = ((sx[1] - X) * (sy[2] - Y) - (sy[1] - Y) * (sx[2] - X)) / area
            l1 = ((sx[2] - X) * (sy[0] - Y) - (sy[2] - Y) * (sx[0] - X)) / area
            l2 = 1 - l0 - l1
            inside = (l0 >= 0) & (l1 >= 0) & (l2 >= 0)
            # perspective correction: screen-space weights divided by w, renormalised
            q0, q1, q2 = l0 / w[0], l1 / w[1], l2 / w[2]
            s = q0 + q1 + q2
            u, v = q0 / s, q1 / s
            zw = l0 * P[0, 2] / w[0] + l1 * P[1, 2] / w[1] + l2 * P[2, 2] / w[2]
            win = inside & (zw < zbuf) & (zw >= -1) & (zw <= 1)
            zbuf[win] = zw[win]
            out[b][win] = np.stack((u, v, zw, np.full_like(u, f + 1)), -1)[win]
    return out


def _scene(n_lat=10, n_lon=14, batch=2):
    v, f, _ = head_proxy(n_lat, n_lon, torch.float64)
    # Two views of the head: camera 500 mm away, yawed; fx = fy = 4 in NDC units.
    out = []
    for b in range(batch):
        a = 0.4 * b - 0.2
        R = torch.tensor([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]], dtype=torch.float64)
        pc = v @ R.T
        z = 500.0 - pc[:, 2]  # camera looks down -z of the head frame
        x, y = 4.0 * pc[:, 0], -4.0 * pc[:, 1]
        n, fa = 100.0, 1000.0
        zc = (fa + n) / (fa - n) * z - 2 * fa * n / (fa - n)
        out.append(torch.stack((x, y, zc, z), -1))
    return torch.stack(out), f.to(torch.int32)


@pytest.mark.parametrize("backend", BACKENDS)
def test_rasterize_matches_reference(backend):
    pos, tri = _scene()
    H, W = 48, 40
    ref = reference_rasterize(pos.numpy(), tri.numpy().astype(np.int64), H, W)
    dev = _device(backend)
    rast, _ = rasterize(pos.float().to(dev), tri.to(dev), (H, W), backend=backend)
    rast = rast.double().cpu().numpy()
    same = rast[..., 3] == ref[..., 3]
    assert (ref[..., 3] > 0).sum() > 800
    assert same.mean() >= 0.995, same.mean()
    m = same & (ref[..., 3] > 0)
    assert np.abs(rast[..., :2][m] - ref[..., :2][m]).max() < 1e-4
    assert np.abs(rast[..., 2][m] - ref[..., 2][m]).max() < 1e-5


@pytest.mark.parametrize("backend", BACKENDS)
def test_interpolate_reproduces_vertex_attributes(backend):
    pos, tri = _scene(batch=1)
    dev = _device(backend)
    rast, _ = rasterize(pos.float().to(dev), tri.to(dev), (40, 40), backend=backend)
    attr = pos[..., :3].float().to(dev)  # interpolated clip xyz, checked against the rast's own u, v
    out, _ = interpolate(attr, rast, tri.to(dev), backend=backend)
    m = rast[..., 3] > 0
    f = rast[..., 3][m].long() - 1
    corners = attr[0][tri.to(dev).long()[f]]  # (N, 3, 3)
    u, v = rast[..., 0][m], rast[..., 1][m]
    want = u[:, None] * corners[:, 0] + v[:, None] * corners[:, 1] + (1 - u - v)[:, None] * corners[:, 2]
    assert torch.allclose(out[m], want, atol=1e-3)


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b.values[0] != "torch"])
def test_backend_agrees_with_torch_backend(backend):
    # The conformance comparison of the task: same triangle id on >= 99.5 % of pixels and
    # barycentrics within 1e-4, on a head-sized mesh at 128 x 128.
    v, f, _ = head_proxy(48, 64)
    from face3d.render import Camera

    cam = Camera.look_at(torch.tensor([[0.0, 30.0, 600.0], [250.0, 0.0, 550.0]]), fov_deg=30, width=128, height=128)
    pos = cam.to_clip(v[None].expand(2, -1, -1))
    tri = f.int()
    dev = _device(backend)
    r_t, _ = rasterize(pos, tri, (128, 128), backend="torch")
    r_b, _ = rasterize(pos.to(dev), tri.to(dev), (128, 128), backend=backend)
    r_b = r_b.cpu()
    same = r_t[..., 3] == r_b[..., 3]
    assert same.float().mean() >= 0.995
    m = same & (r_t[..., 3] > 0)
    assert (r_t[..., :2][m] - r_b[..., :2][m]).abs().max() < 1e-4
