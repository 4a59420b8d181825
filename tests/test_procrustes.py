"""Weighted Umeyama alignment: recovers known similarity transforms; gradients; bad input."""
from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

from face3d.geometry.procrustes import apply_similarity, procrustes, similarity_to_matrix
from face3d.geometry.rotations import axis_angle_to_matrix, rotation_angle_deg


def _problem(B=4, N=30, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    src = torch.randn(B, N, 3, generator=g, dtype=dtype) * 50  # mm
    R = axis_angle_to_matrix(torch.randn(B, 3, generator=g, dtype=dtype))
    t = torch.randn(B, 3, generator=g, dtype=dtype) * 100
    s = 0.5 + torch.rand(B, generator=g, dtype=dtype)
    return src, R, t, s, g


def test_recovers_rigid_and_similarity_exactly():
    src, R, t, s, _ = _problem()
    dst = apply_similarity(src, R, t)
    R1, t1, s1 = procrustes(src, dst)
    assert torch.allclose(R1, R, atol=1e-10) and torch.allclose(t1, t, atol=1e-8) and bool((s1 == 1).all())
    dst = apply_similarity(src, R, t, s)
    R2, t2, s2 = procrustes(src, dst, scale=True)
    assert torch.allclose(R2, R, atol=1e-10) and torch.allclose(t2, t, atol=1e-8) and torch.allclose(s2, s, atol=1e-12)
    M = similarity_to_matrix(R2, t2, s2)
    hom = torch.cat([src, torch.ones_like(src[..., :1])], -1)
    assert torch.allclose((hom @ M.transpose(-1, -2))[..., :3], dst, atol=1e-8)


def test_noise_and_weights_ignore_outliers():
    src, R, t, s, g = _problem(B=2, N=200)
    dst = apply_similarity(src, R, t, s) + 0.5 * torch.randn(src.shape, generator=g, dtype=src.dtype)
    R1, t1, s1 = procrustes(src, dst, scale=True)
    assert float(rotation_angle_deg(R1, R).max()) < 0.2 and float((s1 - s).abs().max()) < 2e-3
    # corrupt 20% of the points; zero weight on them gives the clean answer back
    bad = torch.zeros(2, 200, dtype=torch.bool)
    bad[:, :40] = True
    dst_bad = torch.where(bad[..., None], dst + 300, dst)
    w = (~bad).double()
    Rw, tw, sw = procrustes(src, dst_bad, weights=w, scale=True)
    Rc, tc, sc = procrustes(src[:, 40:], dst[:, 40:], scale=True)
    assert torch.allclose(Rw, Rc, atol=1e-10) and torch.allclose(tw, tc, atol=1e-8) and torch.allclose(sw, sc)
    Ru, _, _ = procrustes(src, dst_bad, scale=True)
    assert float(rotation_angle_deg(Ru, R).max()) > 1.0  # unweighted is pulled away


def test_never_returns_a_reflection():
    src, R, t, _, _ = _problem(B=3, N=10)
    mirror = torch.diag(torch.tensor([-1.0, 1, 1], dtype=torch.float64))
    R1, _, _ = procrustes(src, apply_similarity(src, R @ mirror, t))
    assert torch.allclose(torch.det(R1), torch.ones(3, dtype=torch.float64), atol=1e-10)


def test_unbatched_float32_and_shared_weights():
    src, R, t, s, _ = _problem(B=1, dtype=torch.float32)
    dst = apply_similarity(src[0], R[0], t[0], s[0])
    R1, t1, s1 = procrustes(src[0], dst, weights=torch.ones(30), scale=True)
    assert R1.shape == (3, 3) and t1.shape == (3,) and s1.shape == () and R1.dtype == torch.float32
    assert float(rotation_angle_deg(R1.double(), R[0].double())) < 0.05
    assert float((s1 - s[0]).abs()) < 1e-4


def test_gradcheck():
    src, R, t, s, g = _problem(B=2, N=6)
    dst = apply_similarity(src, R, t, s) + torch.randn(src.shape, generator=g, dtype=src.dtype)
    src = src.requires_grad_(True)
    w = torch.rand(2, 6, generator=g, dtype=torch.float64).add(0.5).requires_grad_(True)

    def f(x, ww):
        R_, t_, s_ = procrustes(x, dst, weights=ww, scale=True)
        return torch.cat([R_.reshape(2, -1), t_, s_[:, None]], 1)

    assert gradcheck(f, (src, w), eps=1e-6, atol=1e-5)


def test_bad_input():
    with pytest.raises(ValueError, match="at least 3 points"):
        procrustes(torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="same shape"):
        procrustes(torch.zeros(5, 3), torch.zeros(4, 3))
    with pytest.raises(ValueError, match="weights"):
        procrustes(torch.randn(2, 5, 3), torch.randn(2, 5, 3), weights=torch.ones(2, 4))
    with pytest.raises(ValueError, match="all-zero"):
        procrustes(torch.randn(5, 3), torch.randn(5, 3), weights=torch.zeros(5))
