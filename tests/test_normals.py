"""Face and vertex normals: known values, area weighting, batching, gradients."""
from __future__ import annotations

import math

import pytest
import torch
from torch.autograd import gradcheck

from face3d.geometry.normals import face_normals, vertex_normals


def _octahedron(dtype=torch.float64):
    v = torch.tensor([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=dtype)
    f = torch.tensor([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]])
    return v, f


def test_octahedron_normals_point_outwards():
    v, f = _octahedron()
    fn = face_normals(v, f)
    centres = v[f].mean(1)
    assert torch.allclose(fn, centres / centres.norm(dim=-1, keepdim=True), atol=1e-12)
    assert torch.allclose(vertex_normals(v, f), v, atol=1e-12)  # by symmetry: the vertex direction
    # unnormalised face normals have length 2 * area = sqrt(3)
    assert torch.allclose(face_normals(v, f, normalize=False).norm(dim=-1), torch.full((8,), math.sqrt(3), dtype=v.dtype))


def test_area_weighting():
    # vertex 0 shared by a big triangle in the z=0 plane and a small one in the x=0 plane
    v = torch.tensor([[0, 0, 0], [3, 0, 0], [0, 3, 0], [0, 0, 1], [0, 1, 0]], dtype=torch.float64)
    f = torch.tensor([[0, 1, 2], [0, 4, 3]])
    n0 = vertex_normals(v, f)[0]
    expected = torch.tensor([1 * 1.0, 0, 9.0])  # 2*area: 1 along +x, 9 along +z
    assert torch.allclose(n0, (expected / expected.norm()).double(), atol=1e-12)
    assert float(vertex_normals(torch.cat([v, torch.ones(1, 3, dtype=v.dtype)]), f)[5].norm()) == 0  # unused vertex


def test_batched_matches_unbatched_and_gradcheck():
    v, f = _octahedron()
    g = torch.Generator().manual_seed(0)
    vb = v[None] + 0.1 * torch.randn(3, 6, 3, generator=g, dtype=v.dtype)
    nb = vertex_normals(vb, f)
    assert nb.shape == (3, 6, 3)
    assert torch.allclose(nb[1], vertex_normals(vb[1], f))
    x = vb[:1].clone().requires_grad_(True)
    assert gradcheck(lambda p: vertex_normals(p, f), (x,), eps=1e-6, atol=1e-5)
    assert gradcheck(lambda p: face_normals(p, f), (x,), eps=1e-6, atol=1e-5)


def test_bad_input():
    v, f = _octahedron()
    with pytest.raises(ValueError, match=r"\(F, 3\)"):
        vertex_normals(v, f[:, :2])
    with pytest.raises(ValueError, match=r"indices in \[0, 6\)"):
        vertex_normals(v, f + 1)
    with pytest.raises(ValueError, match=r"\(B, V, 3\)"):
        face_normals(v[:, :2], f)
