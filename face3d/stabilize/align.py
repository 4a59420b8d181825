"""Rigid-transform helpers shared by the stabilizers (4×4 homogeneous, millimetres).

Every transform here maps column vectors: ``y = T[:3, :3] @ x + T[:3, 3]``; batch first.
"""
from __future__ import annotations

from torch import Tensor

from face3d.geometry.procrustes import procrustes, similarity_to_matrix


def make_transform(R: Tensor, t: Tensor) -> Tensor:
    """(B, 3, 3) rotations and (B, 3) translations (mm) -> (B, 4, 4) homogeneous transforms."""
    return similarity_to_matrix(R, t)


def apply_transform(T: Tensor, points: Tensor) -> Tensor:
    """Apply (B, 4, 4) transforms to (B, N, 3) points (mm) -> (B, N, 3)."""
    return points @ T[..., :3, :3].transpose(-1, -2) + T[..., None, :3, 3]


def invert_transform(T: Tensor) -> Tensor:
    """Inverse of (B, 4, 4) rigid transforms (rotation + translation only)."""
    Rt = T[..., :3, :3].transpose(-1, -2)
    return make_transform(Rt, -(Rt @ T[..., :3, 3:])[..., 0])


def rigid_fit(src: Tensor, dst: Tensor, weights: Tensor | None = None) -> Tensor:
    """Least-squares rigid transform (no scale) with ``dst ≈ T src``.

    Args:
        src, dst: (B, N, 3) corresponding points, mm.
        weights: optional (N,) or (B, N) non-negative weights.

    Returns:
        (B, 4, 4) transforms in the dtype of ``src``.
    """
    R, t, _ = procrustes(src, dst, weights=weights, scale=False)
    return make_transform(R.to(src.dtype), t.to(src.dtype))
