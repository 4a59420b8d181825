"""The generic MorphableModel forward on a tiny hand-made model: shapes, LBS against a hand
computation of FLAME's kinematic chain, pose correctives, gradients, batch errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.autograd import gradcheck

from face3d.geometry.rotations import axis_angle_to_matrix
from face3d.models.base import HEAD_JOINT, LandmarkSet, MorphableModel

V = 7


def _model(pose_basis: bool = True) -> MorphableModel:
    rng = np.random.default_rng(0)
    template = rng.normal(0, 30, (V, 3))
    reg = np.zeros((5, V))
    reg[0, 0] = 1  # each joint at its own vertex, mixed a little with the centroid
    reg[1, 1] = reg[2, 2] = reg[3, 3] = reg[4, 4] = 1
    reg = 0.8 * reg + 0.2 / V
    sw = np.zeros((V, 5))
    sw[np.arange(5), np.arange(5)] = 1  # vertex j fully on joint j
    sw[5, [1, 2]] = 0.5
    sw[6, [0, 1, 3]] = [0.2, 0.3, 0.5]
    return MorphableModel(
        name="tiny", template=template, faces=[[0, 1, 2], [2, 3, 4], [4, 5, 6]],
        identity_basis=rng.normal(0, 5, (V, 3, 2)), expression_basis=rng.normal(0, 5, (V, 3, 3)),
        expression_names=["a", "b", "c"], joint_regressor=reg, skin_weights=sw,
        pose_basis=rng.normal(0, 2, (36, V * 3)) if pose_basis else None,
        landmarks={"ibug68": LandmarkSet.from_vertices([0, 1, 2])},
        regions={"face": [0, 1, 2]},
    )


def _inputs(B=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
    return dict(identity=r(B, 2), expression=r(B, 3), neck=0.3 * r(B, 3), jaw=0.3 * r(B, 3),
                eyes=0.3 * r(B, 6), rotation=0.3 * r(B, 3), translation=10 * r(B, 3))


def _hand_lbs(m: MorphableModel, x: dict) -> np.ndarray:
    """FLAME's LBS written out in numpy for batch item 0."""
    P = {k: v[0].numpy() for k, v in x.items()}
    t = m.template.double().numpy()
    shaped = t + m.identity_basis.double().numpy() @ P["identity"] + m.expression_basis.double().numpy() @ P["expression"]
    J = m.joint_regressor.double().numpy() @ shaped
    aa = [P["rotation"], P["neck"], P["jaw"], P["eyes"][:3], P["eyes"][3:]]
    R = [axis_angle_to_matrix(torch.tensor(a)).numpy() for a in aa]
    feat = np.concatenate([(R[j] - np.eye(3)).reshape(-1) for j in range(1, 5)])
    pb = m.pose_basis
    posed_rest = shaped + (0 if pb is None else (feat @ pb.double().numpy()).reshape(V, 3))
    G = []
    for j, p in enumerate((-1, 0, 1, 1, 1)):
        local = np.eye(4)
        local[:3, :3] = R[j]
        local[:3, 3] = J[j] - (J[p] if p >= 0 else 0)
        G.append(local if p < 0 else G[p] @ local)
    out = np.zeros((V, 3))
    W = m.skin_weights.double().numpy()
    for v in range(V):
        A = sum(W[v, j] * (G[j] @ np.block([[np.eye(3), -J[j][:, None]], [np.zeros((1, 3)), 1]])) for j in range(5))
        out[v] = A[:3, :3] @ posed_rest[v] + A[:3, 3] + P["translation"]
    return out


@pytest.mark.parametrize("with_pose_basis", [False, True])
def test_forward_matches_hand_lbs(with_pose_basis):
    m = _model(with_pose_basis)
    x = _inputs()
    out = m(**x)
    assert out.vertices.shape == (2, V, 3) and out.vertices.dtype == torch.float64
    assert out.joints.shape == (2, 5, 3) and out.joint_transforms.shape == (2, 5, 4, 4)
    np.testing.assert_allclose(out.vertices[0].numpy(), _hand_lbs(m, x), atol=1e-9)


def test_vertex_on_one_joint_moves_by_its_transform():
    m = _model(pose_basis=False)
    out = m(**_inputs())
    hom = torch.cat([out.shaped, torch.ones(2, V, 1, dtype=out.shaped.dtype)], -1)  # (B, V, 4)
    for j in range(5):
        moved = (out.joint_transforms[:, j] @ hom[:, j, :, None])[:, :3, 0]
        assert torch.allclose(out.vertices[:, j], moved, atol=1e-10)
    assert torch.equal(out.skull_transform, out.joint_transforms[:, HEAD_JOINT])
    # the posed joints are the rest joints carried by their own transforms
    J_rest = torch.einsum("jv,bvc->bjc", m.joint_regressor.double(), out.shaped)
    J_h = torch.cat([J_rest, torch.ones(2, 5, 1, dtype=J_rest.dtype)], -1)
    assert torch.allclose((out.joint_transforms @ J_h[..., None])[..., :3, 0], out.joints, atol=1e-10)
    # a 50/50 vertex moves by the average transform
    half = 0.5 * (out.joint_transforms[:, 1] + out.joint_transforms[:, 2])
    assert torch.allclose(out.vertices[:, 5], (half @ hom[:, 5, :, None])[:, :3, 0], atol=1e-10)


def test_rest_pose_and_defaults():
    m = _model()
    out = m()
    assert out.vertices.shape == (1, V, 3) and out.vertices.dtype == torch.float32
    assert torch.allclose(out.vertices[0], m.template, atol=1e-5)  # zero pose: no correctives, identity transforms
    assert torch.allclose(out.joint_transforms, torch.eye(4).expand(1, 5, 4, 4), atol=1e-4)  # float32, ~50 mm joints
    assert m(batch_size=3).vertices.shape == (3, V, 3)
    t = torch.tensor([[1.0, -2.0, 3.0]])
    assert torch.allclose(m(translation=t).vertices[0] - m.template, t.expand(V, 3), atol=1e-5)


def test_gradcheck_identity_and_pose():
    m = _model()
    x = _inputs(B=1, seed=1)
    keys = ["identity", "expression", "neck", "jaw", "rotation"]
    args = tuple(x[k].clone().requires_grad_(True) for k in keys)

    def f(*a):
        return m(**dict(zip(keys, a)), eyes=x["eyes"], translation=x["translation"]).vertices

    assert gradcheck(f, args, eps=1e-6, atol=1e-5)
    # also at the zero pose, where Rodrigues switches to its Taylor branch
    zero = tuple(torch.zeros_like(a).requires_grad_(True) for a in args)
    assert gradcheck(f, zero, eps=1e-6, atol=1e-5)


def test_batch_mismatch_errors():
    m = _model()
    with pytest.raises(ValueError, match=r"neck: batch size 3 does not match the others \(2\)"):
        m(identity=torch.zeros(2, 2), neck=torch.zeros(3, 3))
    with pytest.raises(ValueError, match=r"batch size 1 does not match the others \(4\)"):
        m(jaw=torch.zeros(1, 3), batch_size=4)
