"""Training lowers the loss; the committed built-in weights beat upper-face Procrustes."""

import pytest
import torch

from face3d.stabilize.network import NetworkConfig, StabilizerNet
from face3d.stabilize.synth import SynthConfig, sample_groups
from face3d.models.toy import toy_head
from face3d.stabilize.train import TrainConfig, pair_loss, train


def test_a_few_training_steps_lower_the_loss():
    m = toy_head()
    cfg = TrainConfig(steps=25, identities=6, per_identity=3, lr=3e-3, norm_samples=256, log_every=1000,
                      network=NetworkConfig(n_points=64, align_points=128, hidden=32))
    g = torch.Generator().manual_seed(123)  # held-out batch, not the training seed
    noisy, clean, skull, _ = sample_groups(m, 16, 3, cfg.synth, g)
    untrained = StabilizerNet(m, cfg.network)  # zero-initialised head: plain Procrustes to the template

    def loss(net):
        with torch.no_grad():
            return float(pair_loss(net, noisy[:, net.align], noisy[:, net.inputs], clean[:, net.skull], skull, 3))

    before = loss(untrained)
    net, ckpt = train(m, cfg, progress=lambda s: None)
    after = loss(net)
    assert before > 0.5  # mm: expressions bias the plain fit
    assert after < 0.8 * before, (before, after)
    assert ckpt["n_vertices"] == m.n_vertices and len(ckpt["history"]) == 1


def test_training_is_deterministic():
    m = toy_head()
    cfg = TrainConfig(steps=3, identities=4, per_identity=2, norm_samples=256, log_every=1000,
                      network=NetworkConfig(n_points=32, hidden=16))
    a, _ = train(m, cfg, progress=lambda s: None)
    b, _ = train(m, cfg, progress=lambda s: None)
    for (k, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), k


@pytest.fixture(scope="module")
def builtin_and_weights():
    from face3d.models import BUILTIN_PATH, load_model
    from face3d.stabilize.api import BUILTIN_WEIGHTS

    assert BUILTIN_PATH.is_file() and BUILTIN_WEIGHTS.is_file(), "the built-in model and stabilizer weights are committed assets"
    return load_model("builtin"), BUILTIN_WEIGHTS


def test_committed_weights_match_the_builtin_model(builtin_and_weights):
    from face3d.stabilize.synth import skull_points, visible_vertices

    model, path = builtin_and_weights
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert ckpt["n_vertices"] == model.n_vertices
    assert torch.equal(ckpt["state_dict"]["visible"], visible_vertices(model))
    assert torch.equal(ckpt["state_dict"]["skull"], skull_points(model))
    assert path.stat().st_size < 5e6
    # Trained on this very model file (retrain when assets/builtin_head.npz changes).
    from face3d.models import BUILTIN_PATH
    from face3d.fileio import file_sha256

    assert ckpt["model_sha256"] == file_sha256(BUILTIN_PATH)


def test_committed_weights_beat_upper_face_procrustes(builtin_and_weights):
    from face3d.stabilize.api import load_stabilizer
    from face3d.stabilize.evaluate import transform_errors
    from face3d.stabilize.synth import sample_pairs, skull_points

    model, path = builtin_and_weights
    pairs = sample_pairs(model, 64, SynthConfig(), generator=987_654)  # held out: training seeds are small
    sk = skull_points(model)
    med = {}
    for method in ("upper", "learned"):
        T = load_stabilizer(method, "builtin").estimate(pairs.source, pairs.target)
        e = transform_errors(T, pairs.transform, pairs.source_clean[:, sk], pairs.source_head)["skull_rmse_mm"]
        med[method] = float(e.median())
    assert med["learned"] < 0.6 * med["upper"], med
