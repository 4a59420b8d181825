"""Closest points on triangles (point-to-mesh distances: the NoW metric, mesh-embedded coordinates)."""
from __future__ import annotations

import torch
from torch import Tensor


def closest_point_on_triangles(p: Tensor, a: Tensor, b: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """Closest point on triangles (a, b, c) to points p, all (..., 3) (broadcast); vectorised
    region tests of Ericson, *Real-Time Collision Detection* §5.1.5.

    Returns ``(q (..., 3), bary (..., 3))`` with ``q = bary[..., 0] a + bary[..., 1] b + bary[..., 2] c``.
    """
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = (ab * ap).sum(-1), (ac * ap).sum(-1)
    bp = p - b
    d3, d4 = (ab * bp).sum(-1), (ac * bp).sum(-1)
    cp = p - c
    d5, d6 = (ab * cp).sum(-1), (ac * cp).sum(-1)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    eps = torch.finfo(p.dtype).tiny
    # Default: inside the face region.
    denom = (va + vb + vc)
    denom = torch.where(denom.abs() < eps, torch.full_like(denom, eps), denom)
    v = vb / denom
    w = vc / denom
    u = 1 - v - w
    bary = torch.stack([u, v, w], -1)

    def setb(mask, uu, vv, ww):
        nonlocal bary
        bary = torch.where(mask[..., None], torch.stack([uu, vv, ww], -1), bary)

    zero, one = torch.zeros_like(d1), torch.ones_like(d1)

    def safe(x, y):
        return x / torch.where(y.abs() < eps, torch.full_like(y, eps), y)

    # Edge regions (applied before vertex regions so that vertex regions win where both hold).
    m_bc = (va <= 0) & ((d4 - d3) >= 0) & ((d5 - d6) >= 0)
    t = safe(d4 - d3, (d4 - d3) + (d5 - d6))
    setb(m_bc, zero, 1 - t, t)
    m_ac = (vb <= 0) & (d2 >= 0) & (d6 <= 0)
    t = safe(d2, d2 - d6)
    setb(m_ac, 1 - t, zero, t)
    m_ab = (vc <= 0) & (d1 >= 0) & (d3 <= 0)
    t = safe(d1, d1 - d3)
    setb(m_ab, 1 - t, t, zero)
    setb((d6 >= 0) & (d5 <= d6), zero, zero, one)  # vertex c
    setb((d3 >= 0) & (d4 <= d3), zero, one, zero)  # vertex b
    setb((d1 <= 0) & (d2 <= 0), one, zero, zero)  # vertex a
    q = bary[..., 0:1] * a + bary[..., 1:2] * b + bary[..., 2:3] * c
    return q, bary
