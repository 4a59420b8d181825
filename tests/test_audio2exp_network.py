"""audio2exp network and training: loss decreases, streaming = offline, bounded look-ahead."""
import numpy as np
import pytest
import torch

from audio2exp.api import Predictor, StreamingPredictor
from audio2exp.features import logmel
from audio2exp.network import Audio2Exp, NetworkConfig
from audio2exp.train import LipSpace, _batch, build_examples, lip_loss, quick_config, train


@pytest.fixture(scope="module")
def tiny_examples(character_model):
    from audio2exp.corpus import CorpusConfig, generate_corpus
    from audio2exp.rig import model_rig

    utts = list(generate_corpus(CorpusConfig(n_utterances=6, seed=5)))
    return build_examples(character_model, utts, model_rig(character_model), True, 1, 0)


def test_a_few_training_steps_lower_the_loss(character_model, tiny_examples):
    cfg = quick_config(steps=40, lr=3e-3, threads=1)
    net, log = train(cfg, model=character_model, examples=tiny_examples, progress=None)
    lips = LipSpace(character_model)
    batch = _batch(tiny_examples, np.random.default_rng(123), 8, 60)
    fresh = Audio2Exp(net.cfg).eval()  # untrained: zero head, predicts the neutral face
    fresh.load_state_dict({k: v for k, v in net.state_dict().items() if k.startswith("mel_")}, strict=False)
    with torch.no_grad():
        before, _ = lip_loss(lips, fresh(batch[0]), *batch[1:], 0.5, 0.05)
        after, _ = lip_loss(lips, net(batch[0]), *batch[1:], 0.5, 0.05)
    assert float(after) < 0.8 * float(before), (float(before), float(after))
    assert np.mean(log["history"][-10:]) < np.mean(log["history"][:5])


def _random_net(n_expression, **kw):
    net = Audio2Exp(NetworkConfig(n_expression=n_expression, d_model=32, n_layers=3, past=6, **kw))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return net.eval()


def test_streaming_equals_offline_with_bounded_lookahead(character_model):
    p = Predictor(_random_net(character_model.n_expression), character_model)
    assert p.net.lookahead_ms <= 200
    a = np.random.default_rng(0).standard_normal(16000 * 2 + 77).astype(np.float32) * 0.1
    off = p.raw(a)
    s = StreamingPredictor(p)
    outs, i, rng = [], 0, np.random.default_rng(1)
    while i < len(a):
        n = int(rng.integers(1, 2500))
        o = s.push(a[i:i + n])
        i += n
        if o:
            outs.append(o["jaw"])
    outs.append(s.flush()["jaw"])
    st = np.concatenate(outs)
    assert st.shape == off["jaw"].shape and np.abs(st - off["jaw"]).max() < 1e-4
    # Changing the audio after frame k's look-ahead leaves frames <= k untouched; inside it, not.
    k = 40
    t = 0.02 * k + 0.005 + p.net.lookahead_ms / 1000
    b = a.copy()
    b[int(np.ceil(t * 16000)) + 1:] = 0.5
    ob = p.raw(b)
    assert np.abs(ob["jaw"][: k + 1] - off["jaw"][: k + 1]).max() < 1e-5
    c = a.copy()
    c[int((0.02 * k + 0.005 + 0.05) * 16000):] = 0.5  # 50 ms after the frame: within the look-ahead
    assert np.abs(p.raw(c)["expression"][k] - off["expression"][k]).max() > 1e-4


def test_relative_positions_have_no_length_limit_and_chunks_match():
    net = _random_net(5)
    mel = torch.from_numpy(logmel(np.random.default_rng(2).standard_normal(16000 * 40).astype(np.float32) * 0.1))
    full = net(mel[None])["expression"][0].detach()
    chunked = net.infer(mel, chunk=97)["expression"]
    assert full.shape == (2000, 5) and torch.allclose(full, chunked, atol=1e-4)
