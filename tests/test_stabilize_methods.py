"""Every stabilizer behind one API: exact on pure rigid motion; the learned one is consistent."""

import pytest
import torch

from face3d.geometry.rotations import axis_angle_to_matrix, rotation_angle_deg
from face3d.stabilize.align import apply_transform, make_transform
from face3d.stabilize.api import LearnedStabilizer, Stabilizer, load_stabilizer, load_weights
from face3d.stabilize.network import NetworkConfig, StabilizerNet
from face3d.stabilize.synth import SynthConfig, sample_pairs
from face3d.models.toy import toy_head
from face3d.stabilize.train import save_checkpoint


@pytest.fixture(scope="module")
def toy():
    return toy_head()


@pytest.fixture(scope="module")
def net(toy):
    torch.manual_seed(1)
    n = StabilizerNet(toy, NetworkConfig(n_points=64, hidden=32))
    for p in n.encoder.parameters():  # a random (untrained) network: outputs far from identity
        torch.nn.init.normal_(p, std=0.3)
    return n.eval()


def _rigid(B, g):
    aa = torch.randn(B, 3, generator=g, dtype=torch.float64) * 0.4
    t = torch.randn(B, 3, generator=g, dtype=torch.float64) * 30
    return make_transform(axis_angle_to_matrix(aa), t)


@pytest.mark.parametrize("method", ["procrustes", "upper", "icp", "learned"])
def test_pure_rigid_motion_of_neutral_face_is_recovered(toy, net, method):
    st = LearnedStabilizer(net) if method == "learned" else load_stabilizer(method, toy)
    assert isinstance(st, Stabilizer)
    g = torch.Generator().manual_seed(2)
    neutral = toy.double()(batch_size=1).vertices.expand(4, -1, -1)
    G = _rigid(4, g)
    T = st.estimate(neutral, apply_transform(G, neutral))
    assert T.shape == (4, 4, 4) and T.dtype == torch.float64
    assert rotation_angle_deg(T[:, :3, :3], G[:, :3, :3]).max() < 1e-4
    assert (T[:, :3, 3] - G[:, :3, 3]).abs().max() < 1e-4  # mm


def test_learned_is_identity_on_itself_and_composes(toy, net):
    st = LearnedStabilizer(net)
    p = sample_pairs(toy.double(), 5, SynthConfig(), generator=3)
    a, b, c = p.source, p.target, p.source.flip(0)
    I = st.estimate(a, a)
    assert (I - torch.eye(4, dtype=I.dtype)).abs().max() < 1e-9
    T_ab, T_bc, T_ac = st.estimate(a, b), st.estimate(b, c), st.estimate(a, c)
    assert (T_bc @ T_ab - T_ac).abs().max() < 1e-6
    # The untrained network is far from a plain Procrustes fit, so the identities above are not trivial.
    proc = load_stabilizer("procrustes", toy).estimate(a, b)
    assert rotation_angle_deg(T_ab[:, :3, :3], proc[:, :3, :3]).min() > 1.0


def test_learned_input_invariant_to_global_motion(toy, net):
    p = sample_pairs(toy.double(), 4, SynthConfig(), generator=4)
    G = _rigid(4, torch.Generator().manual_seed(5))
    st = LearnedStabilizer(net)
    T = st.estimate(p.source, p.target)
    # Moving the target by G moves the estimate by G: T' = G T.
    T2 = st.estimate(p.source, apply_transform(G, p.target))
    assert (T2 - G @ T).abs().max() < 1e-6


def test_weights_for_another_model_raise(tmp_path, toy, net):
    save_checkpoint(net.checkpoint({"model_sha256": ""}), tmp_path / "w.pt")
    assert torch.equal(load_weights(tmp_path / "w.pt", toy).inputs, net.inputs)
    other = toy_head(n_lat=18, n_lon=28)
    with pytest.raises(ValueError, match=r"trained for model 'toy-stabilize' with 642 vertices.*has 450"):
        load_weights(tmp_path / "w.pt", other)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt"):
        load_weights(tmp_path / "junk.pt", toy)
    with pytest.raises(ValueError, match="needs weights trained for it"):
        load_stabilizer("learned", toy)


def test_stabilizers_reject_wrong_vertex_count(toy):
    st = load_stabilizer("upper", toy)
    bad = torch.zeros(2, 100, 3)
    with pytest.raises(ValueError, match="expected meshes with 642 vertices, got 100"):
        st.estimate(bad, bad)


def test_icp_slides_where_vertex_correspondence_cannot(toy):
    """Upper-face skin slid tangentially (no rigid motion): Procrustes on the same vertices is
    pulled by the slide, point-to-plane ICP is not (closest points on the surface)."""
    from face3d.geometry.normals import vertex_normals

    icp, upper = load_stabilizer("icp", toy), load_stabilizer("upper", toy)
    src = toy.double()(batch_size=1).vertices
    n = vertex_normals(src, toy.faces)
    idx = icp.indices
    # Slide each upper-face vertex 1.5 mm along the surface (tangential part of +y).
    up = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    tang = up - (n[0, idx] @ up)[:, None] * n[0, idx]
    tgt = src.clone()
    tgt[0, idx] += 1.5 * tang / tang.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    T_icp = icp.estimate(src, tgt)
    T_up = upper.estimate(src, tgt)
    # Measured on the coarse toy (vertices ~10 mm apart): 0.36 vs 0.80 mm.
    assert T_icp[0, :3, 3].norm() < 0.5 * T_up[0, :3, 3].norm(), (T_icp[0, :3, 3], T_up[0, :3, 3])
