"""Rotation conversions: round trips (incl. near 0 and near pi) and gradients."""
from __future__ import annotations

import math

import pytest
import torch
from torch.autograd import gradcheck

from face3d.geometry.rotations import (
    axis_angle_to_matrix,
    axis_angle_to_quaternion,
    euler_to_matrix,
    matrix_to_axis_angle,
    matrix_to_quaternion,
    matrix_to_rotation_6d,
    quaternion_to_axis_angle,
    quaternion_to_matrix,
    rotation_6d_to_matrix,
    rotation_angle_deg,
    skew,
)


def _axis_angles(n: int = 64) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    axes = torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=torch.float64), dim=-1)
    # tiny, ordinary and just-below-pi angles
    angles = torch.cat([torch.tensor([0.0, 1e-9, 1e-5, 1e-3]), torch.rand(n - 8, generator=g) * math.pi,
                        torch.tensor([math.pi - 1e-3, math.pi - 1e-6, math.pi - 1e-9, math.pi])]).double()
    return axes * angles[:, None]


def _same_rotation_aa(a: torch.Tensor, b: torch.Tensor) -> None:
    """Axis-angles equal, allowing aa == -aa' at angle pi (the same rotation)."""
    d = torch.minimum((a - b).norm(dim=-1), torch.where(a.norm(dim=-1) > math.pi - 1e-5, (a + b).norm(dim=-1), (a - b).norm(dim=-1)))
    assert float(d.max()) < 1e-6


def test_matrix_is_rotation_and_matches_rodrigues_closed_form():
    R = axis_angle_to_matrix(torch.tensor([0.0, 0.0, math.pi / 2], dtype=torch.float64))
    expected = torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=torch.float64)
    assert torch.allclose(R, expected, atol=1e-12)
    Rs = axis_angle_to_matrix(_axis_angles())
    eye = torch.eye(3, dtype=torch.float64)
    assert torch.allclose(Rs @ Rs.transpose(-1, -2), eye.expand_as(Rs), atol=1e-12)
    assert torch.allclose(torch.det(Rs), torch.ones(len(Rs), dtype=torch.float64), atol=1e-12)


def test_axis_angle_matrix_round_trip_incl_near_zero_and_pi():
    aa = _axis_angles()
    back = matrix_to_axis_angle(axis_angle_to_matrix(aa))
    _same_rotation_aa(back, aa)
    assert torch.allclose(axis_angle_to_matrix(back), axis_angle_to_matrix(aa), atol=1e-9)


def test_quaternion_round_trips():
    aa = _axis_angles()
    q = axis_angle_to_quaternion(aa)
    assert torch.allclose(q.norm(dim=-1), torch.ones(len(q), dtype=torch.float64), atol=1e-12)
    R = axis_angle_to_matrix(aa)
    assert torch.allclose(quaternion_to_matrix(q), R, atol=1e-12)
    q2 = matrix_to_quaternion(R)
    # q and -q are the same rotation; matrix_to_quaternion picks w >= 0
    assert float(torch.minimum((q2 - q).norm(dim=-1), (q2 + q).norm(dim=-1)).max()) < 1e-9
    assert bool((q2[:, 0] >= 0).all())
    _same_rotation_aa(quaternion_to_axis_angle(q), aa)


def test_6d_round_trip_and_gram_schmidt():
    R = axis_angle_to_matrix(_axis_angles())
    assert torch.allclose(rotation_6d_to_matrix(matrix_to_rotation_6d(R)), R, atol=1e-12)
    # a scaled, non-orthogonal pair still gives a rotation whose first column is the first vector's direction
    d6 = torch.tensor([2.0, 0, 0, 1, 3, 0], dtype=torch.float64)
    assert torch.allclose(rotation_6d_to_matrix(d6), torch.eye(3, dtype=torch.float64), atol=1e-12)


def test_euler_order_and_angle_metric():
    a = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64)
    Rx, Ry, Rz = (axis_angle_to_matrix(torch.eye(3, dtype=torch.float64)[i] * a[i]) for i in range(3))
    assert torch.allclose(euler_to_matrix(a, "xyz"), Rz @ Ry @ Rx, atol=1e-12)
    assert torch.allclose(euler_to_matrix(a[[2, 0, 1]], "zxy"), Ry @ Rx @ Rz, atol=1e-12)
    assert float(rotation_angle_deg(Rx, torch.eye(3, dtype=torch.float64))) == pytest.approx(math.degrees(0.3), abs=1e-9)
    v = torch.tensor([1.0, 2, 3])
    w = torch.tensor([-0.5, 0.1, 2])
    assert torch.allclose(skew(v) @ w, torch.cross(v, w, dim=0))


@pytest.mark.parametrize("x0", [[0.0, 0.0, 0.0], [1e-6, -2e-6, 0.5e-6], [0.4, -1.1, 0.7], [0.0, 0.0, 3.0]])
def test_axis_angle_to_matrix_gradcheck(x0):
    x = torch.tensor([x0], dtype=torch.float64, requires_grad=True)
    assert gradcheck(axis_angle_to_matrix, (x,), eps=1e-7, atol=1e-6)


def test_inverse_conversions_gradcheck_and_finite_at_identity():
    x = torch.tensor([[0.4, -1.1, 0.7]], dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda a: matrix_to_axis_angle(axis_angle_to_matrix(a)), (x,), eps=1e-7, atol=1e-6)
    assert gradcheck(lambda a: rotation_6d_to_matrix(matrix_to_rotation_6d(axis_angle_to_matrix(a))), (x,), eps=1e-7, atol=1e-6)
    # d(matrix_to_axis_angle)/dR at the identity: the skew part, 0.5 * (R[2,1] - R[1,2]) etc.
    R = torch.eye(3, dtype=torch.float64, requires_grad=True)
    matrix_to_axis_angle(R)[0].backward()
    assert torch.allclose(R.grad, torch.tensor([[0, 0, 0], [0, 0, -0.5], [0, 0.5, 0]], dtype=torch.float64))


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        axis_angle_to_matrix(torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, 3\)"):
        matrix_to_quaternion(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="permutation"):
        euler_to_matrix(torch.zeros(3), "xxy")
