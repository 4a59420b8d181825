"""Synthetic stabilization data: exact ground truth, noise levels, what stabilizers may see."""
import copy

import pytest
import torch

from face3d.stabilize.align import apply_transform
from face3d.stabilize.api import load_stabilizer
from face3d.stabilize.synth import (
    SynthConfig, hidden_mask, registration_noise, sample_pairs, sample_performances, visible_vertices,
)
from face3d.models.toy import toy_head

CLEAN = SynthConfig(jitter_mm=0.0, drift_mm=0.0)


@pytest.fixture(scope="module")
def toy64():
    return toy_head().double()


def test_pair_ground_truth_aligns_skulls_exactly(toy64):
    p = sample_pairs(toy64, 32, CLEAN, generator=3)
    sk = toy64.region("scalp_back")
    err = (apply_transform(p.transform, p.source[:, sk]) - p.target[:, sk]).norm(dim=-1)
    assert p.source.dtype == torch.float64
    assert err.max() < 1e-4  # mm
    # The pairs are not trivial: the skulls really moved by tens of mm.
    assert (p.source[:, sk] - p.target[:, sk]).norm(dim=-1).mean() > 10


def test_performance_ground_truth_aligns_skulls_exactly(toy64):
    perf = sample_performances(toy64, 2, 12, CLEAN, generator=4)
    T = perf.relative_to(5)  # (S, T, 4, 4), reference frame 5
    sk = toy64.region("scalp_back")
    ref = perf.frames[:, 5:6, sk].expand(-1, 12, -1, -1)
    err = (apply_transform(T.flatten(0, 1), ref.flatten(0, 1)) - perf.frames[:, :, sk].flatten(0, 1)).norm(dim=-1)
    assert err.max() < 1e-4
    assert torch.allclose(T[:, 5], torch.eye(4, dtype=T.dtype).expand(2, 4, 4), atol=1e-12)


@pytest.mark.parametrize("name, tol", [
    ("character", 1e-4),  # its scalp_back is exactly rigid
    ("builtin", 0.03),  # ICT's expressions move its scalp_back by < 0.01 mm each (assets/README.md)
])
def test_bundled_ground_truth_is_exact(name, tol, builtin_model, character_model):
    model = builtin_model if name == "builtin" else character_model
    p = sample_pairs(copy.deepcopy(model).double(), 8, CLEAN, generator=5)
    sk = model.region("scalp_back")
    err = (apply_transform(p.transform, p.source[:, sk]) - p.target[:, sk]).norm(dim=-1)
    assert err.max() < tol


def test_noise_levels():
    tmpl = toy_head().template
    g = torch.Generator().manual_seed(0)
    jit = registration_noise(tmpl, 64, SynthConfig(jitter_mm=0.2, drift_mm=0.0), g)
    assert abs(float(jit.std()) - 0.2) < 0.005
    drift = registration_noise(tmpl, 64, SynthConfig(jitter_mm=0.0, drift_mm=0.5), g)
    rms = float(drift.pow(2).mean().sqrt())
    assert 0.2 < rms < 0.8
    # Low frequency: vertices 10 mm apart drift almost together (wavelength 150 mm).
    d = torch.cdist(tmpl, tmpl)
    i, j = torch.nonzero((d > 8) & (d < 12))[:200].T
    assert float((drift[:, i] - drift[:, j]).pow(2).mean().sqrt()) < 0.3 * rms


def test_hidden_regions_are_never_read():
    m = toy_head()
    vis = visible_vertices(m)
    hidden = hidden_mask(m)
    assert not hidden[vis].any()
    assert set(m.region("scalp_back").tolist()).isdisjoint(vis.tolist())
    p = sample_pairs(m, 6, SynthConfig(), generator=7)
    moved_s, moved_t = p.source.clone(), p.target.clone()
    moved_s[:, hidden] += 50.0
    moved_t[:, hidden] -= 30.0
    from face3d.stabilize.api import LearnedStabilizer
    from face3d.stabilize.network import NetworkConfig, StabilizerNet

    net = StabilizerNet(m, NetworkConfig(n_points=64, hidden=16))
    torch.nn.init.normal_(net.encoder[-1].weight, std=0.1)  # non-trivial output
    stabilizers = {k: load_stabilizer(k, m) for k in ("procrustes", "upper", "icp")}
    stabilizers["learned"] = LearnedStabilizer(net)
    for method, st in stabilizers.items():
        T = st.estimate(p.source, p.target)
        T_moved = st.estimate(moved_s, moved_t)
        assert torch.allclose(T, T_moved, atol=1e-5), method
        assert torch.equal(st.estimate(p.source, p.target), T), method  # deterministic, bit for bit
        # ... while moving a visible vertex does change the estimate.
        nudged = p.target.clone()
        nudged[:, visible_vertices(m)[::3]] += 2.0
        assert (st.estimate(p.source, nudged) - T).abs().max() > 1e-3, method


def test_restricted_model_matches_full_model():
    from face3d.stabilize.synth import restrict_model

    m = toy_head()
    keep = torch.tensor([3, 77, 300, 641, 120])
    sub = restrict_model(m, keep)
    g = torch.Generator().manual_seed(8)
    args = dict(identity=torch.randn(3, 6, generator=g), expression=torch.rand(3, 8, generator=g),
                neck=torch.randn(3, 3, generator=g) * 0.3, jaw=torch.randn(3, 3, generator=g) * 0.2,
                rotation=torch.randn(3, 3, generator=g), translation=torch.randn(3, 3, generator=g) * 20)
    full, part = m(**args), sub(**args)
    assert sub.n_vertices == 5 + 5
    assert (full.vertices[:, keep] - part.vertices[:, :5]).abs().max() < 1e-3  # float32 rounding only
    assert (full.skull_transform - part.skull_transform).abs().max() < 1e-3
    assert (full.vertices[:, keep] - full.vertices[:, keep[[1, 0, 2, 3, 4]]]).abs().max() > 10  # not trivial
