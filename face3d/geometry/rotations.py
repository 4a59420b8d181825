"""Rotation conversions in torch, batched over any leading dimensions.

Conventions: rotation matrices act on column vectors (``x' = R @ x``); axis-angle vectors are
``(..., 3)`` with the angle in radians as their norm; quaternions are ``(..., 4)`` in
``(w, x, y, z)`` order, unit norm; the 6D representation (Zhou et al. 2019, "On the Continuity of
Rotation Representations") is the first two *columns* of the matrix, concatenated, ``(..., 6)``.
All functions are differentiable, including at the zero rotation.
"""
from __future__ import annotations

import torch
from torch import Tensor


def _check_last(x: Tensor, n: int, name: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.shape[-1:] != (n,):
        raise ValueError(f"{name}: expected shape (..., {n}), got {tuple(x.shape)}")


def skew(v: Tensor) -> Tensor:
    """(..., 3) vectors -> (..., 3, 3) cross-product matrices ``[v]_x``."""
    _check_last(v, 3, "v")
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).reshape(*v.shape[:-1], 3, 3)


def axis_angle_to_matrix(aa: Tensor) -> Tensor:
    """Rodrigues' formula. ``aa`` (..., 3) radians -> (..., 3, 3).

    Uses Taylor expansions of sin(t)/t and (1-cos t)/t^2 near zero so gradients stay finite at
    the identity (where every model's default pose sits).
    """
    _check_last(aa, 3, "aa")
    theta2 = (aa * aa).sum(-1, keepdim=True).unsqueeze(-1)  # (..., 1, 1)
    small = theta2 < 1e-8
    safe2 = torch.where(small, torch.ones_like(theta2), theta2)
    theta = safe2.sqrt()
    a = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / safe2)
    K = skew(aa)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand(K.shape)
    return eye + a * K + b * (K @ K)


def matrix_to_axis_angle(R: Tensor) -> Tensor:
    """(..., 3, 3) rotation matrices -> (..., 3) axis-angle, angle in [0, pi].

    Goes through the quaternion, which is stable near 0 and near pi.
    """
    return quaternion_to_axis_angle(matrix_to_quaternion(R))


def quaternion_to_matrix(q: Tensor) -> Tensor:
    """(..., 4) quaternions (w, x, y, z), normalised here -> (..., 3, 3)."""
    _check_last(q, 4, "q")
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    R = torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    )
    return R.reshape(*q.shape[:-1], 3, 3)


def matrix_to_quaternion(R: Tensor) -> Tensor:
    """(..., 3, 3) rotation matrices -> (..., 4) unit quaternions (w, x, y, z) with w >= 0.

    Picks, per matrix, the best-conditioned of the four standard formulas (largest diagonal
    term), so it is accurate for every rotation angle.
    """
    if R.shape[-2:] != (3, 3):
        raise ValueError(f"R: expected shape (..., 3, 3), got {tuple(R.shape)}")
    m = R
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    # 4*q_i^2 for each component; the largest one gives a safe divisor.
    t = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    t = t.clamp_min(1e-12)
    r = t.sqrt()  # 2*|q_i|
    d10, d01 = m[..., 1, 0], m[..., 0, 1]
    d20, d02 = m[..., 2, 0], m[..., 0, 2]
    d21, d12 = m[..., 2, 1], m[..., 1, 2]
    cands = torch.stack(
        [
            torch.stack([r[..., 0] ** 2, d21 - d12, d02 - d20, d10 - d01], -1) / (2 * r[..., 0:1]),
            torch.stack([d21 - d12, r[..., 1] ** 2, d10 + d01, d02 + d20], -1) / (2 * r[..., 1:2]),
            torch.stack([d02 - d20, d10 + d01, r[..., 2] ** 2, d21 + d12], -1) / (2 * r[..., 2:3]),
            torch.stack([d10 - d01, d20 + d02, d21 + d12, r[..., 3] ** 2], -1) / (2 * r[..., 3:4]),
        ],
        dim=-2,
    )  # (..., 4 candidates, 4)
    best = t.argmax(-1)
    q = torch.gather(cands, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    q = q / q.norm(dim=-1, keepdim=True)
    return torch.where(q[..., :1] < 0, -q, q)


def quaternion_to_axis_angle(q: Tensor) -> Tensor:
    """(..., 4) quaternions (w, x, y, z) -> (..., 3) axis-angle with angle in [0, pi]."""
    _check_last(q, 4, "q")
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    q = torch.where(q[..., :1] < 0, -q, q)
    v = q[..., 1:]
    s = v.norm(dim=-1, keepdim=True)
    angle = 2 * torch.atan2(s, q[..., :1])
    small = s < 1e-6
    # angle/sin(angle/2) -> 2 + angle^2/12 as angle -> 0
    factor = torch.where(small, 2 + angle**2 / 12, angle / torch.where(small, torch.ones_like(s), s))
    return v * factor


def axis_angle_to_quaternion(aa: Tensor) -> Tensor:
    """(..., 3) axis-angle -> (..., 4) unit quaternion (w, x, y, z)."""
    _check_last(aa, 3, "aa")
    angle = aa.norm(dim=-1, keepdim=True)
    small = angle < 1e-6
    half = angle / 2
    k = torch.where(small, 0.5 - angle**2 / 48, torch.sin(half) / torch.where(small, torch.ones_like(angle), angle))
    return torch.cat([torch.cos(half), aa * k], dim=-1)


def rotation_6d_to_matrix(d6: Tensor) -> Tensor:
    """(..., 6) -> (..., 3, 3) by Gram-Schmidt on the two given columns (Zhou et al. 2019)."""
    _check_last(d6, 6, "d6")
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = torch.nn.functional.normalize(a1, dim=-1)
    b2 = torch.nn.functional.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_rotation_6d(R: Tensor) -> Tensor:
    """(..., 3, 3) -> (..., 6): the first two columns."""
    if R.shape[-2:] != (3, 3):
        raise ValueError(f"R: expected shape (..., 3, 3), got {tuple(R.shape)}")
    return torch.cat([R[..., :, 0], R[..., :, 1]], dim=-1)


def euler_to_matrix(angles: Tensor, order: str = "xyz") -> Tensor:
    """(..., 3) angles -> (..., 3, 3): rotations about fixed (extrinsic) axes, applied in ``order``.

    ``angles[..., i]`` is the angle (radians) about axis ``order[i]``; the result is
    ``R_order[2] @ R_order[1] @ R_order[0]`` (the first axis is applied first).
    """
    _check_last(angles, 3, "angles")
    if sorted(order) != ["x", "y", "z"]:
        raise ValueError(f"order: expected a permutation of 'xyz', got {order!r}")
    R = None
    for i, ax in enumerate(order):
        aa = torch.zeros_like(angles)
        aa[..., "xyz".index(ax)] = angles[..., i]
        Ri = axis_angle_to_matrix(aa)
        R = Ri if R is None else Ri @ R
    return R


def rotation_angle_deg(R_a: Tensor, R_b: Tensor) -> Tensor:
    """Geodesic angle in degrees between two batches of rotation matrices (..., 3, 3) -> (...)."""
    rel = R_a.transpose(-1, -2) @ R_b
    cos = ((rel.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1.0, 1.0)
    return torch.rad2deg(torch.arccos(cos))
