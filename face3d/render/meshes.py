"""Small procedural meshes for tests, examples and benchmarks of the renderer.

``head_proxy`` is an ellipsoid of head size with a nose bump and smoothly varying vertex
colours: a stand-in when the built-in head model is not available.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor


def uv_sphere(n_lat: int, n_lon: int, dtype=torch.float32) -> tuple[Tensor, Tensor]:
    """A closed unit sphere.

    Args:
        n_lat: rings of quads between the poles (>= 2); n_lon: segments around (>= 3).
    Returns:
        vertices (2 + (n_lat-1)*n_lon, 3) float; faces (2*n_lon*(n_lat-1), 3) int64,
        counter-clockwise seen from outside (outward normals). The poles are at +-y.
    """
    if n_lat < 2 or n_lon < 3:
        raise ValueError(f"n_lat, n_lon: expected >= 2 and >= 3, got {n_lat}, {n_lon}")
    theta = torch.arange(1, n_lat, dtype=torch.float64) * (math.pi / n_lat)  # polar angle from +y
    phi = torch.arange(n_lon, dtype=torch.float64) * (2 * math.pi / n_lon)
    th, ph = torch.meshgrid(theta, phi, indexing="ij")
    ring = torch.stack((torch.sin(th) * torch.sin(ph), torch.cos(th), torch.sin(th) * torch.cos(ph)), -1).reshape(-1, 3)
    verts = torch.cat((torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64), ring,
                       torch.tensor([[0.0, -1.0, 0.0]], dtype=torch.float64)))
    r = n_lat - 1
    idx = torch.arange(r * n_lon).reshape(r, n_lon) + 1
    nxt = torch.roll(idx, -1, dims=1)
    top = torch.stack((torch.zeros(n_lon, dtype=torch.long), idx[0], nxt[0]), -1)
    a, b, c, d = idx[:-1], nxt[:-1], idx[1:], nxt[1:]
    quads = torch.cat((torch.stack((a, c, b), -1).reshape(-1, 3), torch.stack((b, c, d), -1).reshape(-1, 3)))
    last = verts.shape[0] - 1
    bottom = torch.stack((idx[-1], torch.full((n_lon,), last), nxt[-1]), -1)
    faces = torch.cat((top, quads, bottom))
    return verts.to(dtype), faces


def head_proxy(n_lat: int = 24, n_lon: int = 32, dtype=torch.float32) -> tuple[Tensor, Tensor, Tensor]:
    """An ellipsoidal head (semi-axes 75 x 100 x 90 mm, centred at the origin, facing +z) with
    a nose bump and vertex colours that vary over the surface.

    Returns:
        vertices (V, 3) mm, faces (F, 3) int64, colors (V, 3) in [0, 1].
    """
    v, f = uv_sphere(n_lat, n_lon, torch.float64)
    nose = torch.exp(-((v[:, 0] / 0.25) ** 2 + ((v[:, 1] + 0.05) / 0.3) ** 2)) * (v[:, 2] > 0)
    radial = 1.0 + 0.25 * nose
    verts = v * radial[:, None] * torch.tensor([75.0, 100.0, 90.0], dtype=torch.float64)
    colors = torch.stack((0.55 + 0.35 * v[:, 0], 0.5 + 0.3 * torch.sin(3 * v[:, 1]),
                          0.5 + 0.35 * v[:, 2] * torch.cos(2 * v[:, 0])), -1).clamp(0, 1)
    return verts.to(dtype), f, colors.to(dtype)
