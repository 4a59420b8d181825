"""Face and vertex normals of triangle meshes, batched and differentiable (torch).

Counter-clockwise triangles (seen from outside) give outward normals: ``n = (v1 - v0) x (v2 - v0)``.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["face_normals", "vertex_normals"]


def _prepare(vertices: Tensor, faces: Tensor) -> tuple[Tensor, Tensor, bool]:
    if not isinstance(vertices, Tensor) or not isinstance(faces, Tensor):
        raise TypeError("vertices and faces: expected torch.Tensors")
    if vertices.shape[-1:] != (3,) or vertices.dim() not in (2, 3):
        raise ValueError(f"vertices: expected shape (B, V, 3) or (V, 3), got {tuple(vertices.shape)}")
    if faces.dim() != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces: expected shape (F, 3), got {tuple(faces.shape)}")
    if faces.is_floating_point():
        raise TypeError(f"faces: expected an integer tensor, got {faces.dtype}")
    V = vertices.shape[-2]
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= V):
        raise ValueError(f"faces: expected indices in [0, {V}), found [{int(faces.min())}, {int(faces.max())}]")
    unbatched = vertices.dim() == 2
    return (vertices[None] if unbatched else vertices), faces.to(vertices.device, torch.int64), unbatched


def _cross(vertices: Tensor, faces: Tensor) -> Tensor:
    v0, v1, v2 = (vertices[:, faces[:, i]] for i in range(3))
    return torch.cross(v1 - v0, v2 - v0, dim=-1)  # (B, F, 3), length = 2 * area


def face_normals(vertices: Tensor, faces: Tensor, normalize: bool = True, eps: float = 1e-12) -> Tensor:
    """Per-triangle normals.

    Args:
        vertices: (B, V, 3) or (V, 3) float positions (any length unit).
        faces: (F, 3) integer vertex indices, counter-clockwise seen from outside.
        normalize: unit normals (True) or cross products whose length is twice the area.
        eps: floor on the length when normalising (degenerate triangles get a zero normal).

    Returns:
        (B, F, 3) (or (F, 3) for unbatched input), same dtype as ``vertices``.
    """
    v, f, unbatched = _prepare(vertices, faces)
    n = _cross(v, f)
    if normalize:
        n = n / n.norm(dim=-1, keepdim=True).clamp_min(eps)
    return n[0] if unbatched else n


def vertex_normals(vertices: Tensor, faces: Tensor, eps: float = 1e-12) -> Tensor:
    """Area-weighted unit vertex normals.

    Each vertex gets the sum of the (unnormalised, so area-weighted) normals of the triangles
    around it, normalised. Vertices used by no triangle get a zero vector.

    Args:
        vertices: (B, V, 3) or (V, 3) float positions.
        faces: (F, 3) integer vertex indices, counter-clockwise seen from outside.

    Returns:
        (B, V, 3) (or (V, 3)) unit normals, same dtype as ``vertices``; differentiable.
    """
    v, f, unbatched = _prepare(vertices, faces)
    fn = _cross(v, f)  # (B, F, 3)
    B, V = v.shape[0], v.shape[1]
    acc = torch.zeros(B, V, 3, dtype=v.dtype, device=v.device)
    idx = f.reshape(-1)  # corner order: face-major, three corners per face
    acc = acc.index_add(1, idx, fn.repeat_interleave(3, dim=1))
    n = acc / acc.norm(dim=-1, keepdim=True).clamp_min(eps)
    return n[0] if unbatched else n
