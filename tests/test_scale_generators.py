"""`--ray` for the training-set generators against the single-process generation, and Ray staying optional.

The sketch drawings are deterministic per chunk, so the Ray set must be byte-for-byte the
single-process one. espeak-ng is not bit-exact from call to call (a few samples of audio), so the
speech corpus is compared for what is deterministic (texts, voices, phones, the examples built
from one given set of utterances) and within a tolerance for the rest.
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from .test_scale import _BLOCK_RAY, ROOT, ray_local  # noqa: F401  (the module's one local Ray)


def test_map_in_order_on_ray_keeps_item_order(ray_local):
    from face3d.scale import map_in_order

    from .test_scale import _add_pid, _setup_pid

    got = map_in_order(_add_pid, list(range(9)), _setup_pid, (5,), ray="local", progress=False)
    assert [g[0] for g in got] == [5 + i for i in range(9)]
    assert map_in_order(_add_pid, [], _setup_pid, (5,), ray="local") == []


def test_sketch_drawings_on_ray_are_the_single_process_ones(builtin_model, ray_local):
    from avatars.sketch.train import make_drawings

    # 3 chunks of 4 heads (the last one short), 2 styles each.
    args = (builtin_model, 10, 2, 7, 8)
    single = make_drawings(*args, batch=4, log=None)
    ray = make_drawings(*args, batch=4, log=None, ray="local")
    for k in ("ink", "head", "identity", "expression", "neck", "vertices", "character"):
        a, b = getattr(single, k), getattr(ray, k)
        assert a.dtype == b.dtype and torch.equal(a, b), k
    assert single.ink.shape == (20, 3, 128, 128)
    assert single.head.tolist() == [0, 1, 2, 3] * 2 + [4, 5, 6, 7] * 2 + [8, 9] * 2
    # Chunks draw different heads (a chunk seeded like another would repeat it).
    assert not torch.equal(single.identity[0], single.identity[4])
    assert not torch.equal(single.ink[0], single.ink[4])


def test_audio2exp_corpus_on_ray_matches_single_process(character_model, ray_local):
    pytest.importorskip("espeakng_loader")
    from audio2exp.corpus import CorpusConfig, corpus_items
    from audio2exp.train import corpus_examples, quick_config
    from face3d.scale import map_in_order

    cfg = quick_config(n_utterances=4, n_augmented=1)
    single = corpus_examples(character_model, cfg, progress=False)
    ray = corpus_examples(character_model, cfg, ray="local", progress=False)
    assert len(single) == len(ray) == 8  # clean + one degraded copy per utterance, in utterance order
    for a, b in zip(single, ray):
        # espeak-ng varies by a few samples from call to call: lengths within a frame, the same
        # visemes, near-equal targets (on two runs in one process: labels equal, targets within 2e-3).
        T = min(len(a["labels"]), len(b["labels"]))
        assert abs(len(a["labels"]) - len(b["labels"])) <= 1 and abs(len(a["mel"]) - len(b["mel"])) <= 2
        assert (a["labels"][:T] == b["labels"][:T]).mean() >= 0.97
        assert np.abs(a["expression"][:T] - b["expression"][:T]).max() < 0.05
        assert np.abs(a["jaw"][:T] - b["jaw"][:T]).max() < 0.01
    assert len({len(e["labels"]) for e in single[::2]}) == 4  # distinct lengths: the order is checked above

    # The rest is deterministic: the examples of given utterances, built on Ray workers, are the
    # single-process ones byte for byte (each utterance's speed changes and noise have their own seed).
    from audio2exp.rig import model_rig
    from audio2exp.train import _corpus_setup, build_examples

    utts = [it.speak() for it in corpus_items(CorpusConfig(n_utterances=3, seed=2))]
    ref = build_examples(character_model, utts, model_rig(character_model), True, 2, 9)
    got = [e for ex in map_in_order(_examples_of, list(enumerate(utts)), _corpus_setup, (character_model, True, 2, 9, 1),
                                    ray="local", progress=False) for e in ex]
    assert len(got) == len(ref) == 9
    for a, b in zip(ref, got):
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(ref[1]["mel"][:50], ref[2]["mel"][:50])  # the two degraded copies differ


def _examples_of(ctx, item):
    from audio2exp.train import _example_rng, utterance_examples

    rig, augment, n_augmented, seed = ctx
    i, u = item
    return utterance_examples(u, rig, augment, n_augmented, _example_rng(seed, i))


def test_generators_and_their_commands_without_ray(tmp_path):
    code = _BLOCK_RAY + """
import avatars.sketch.train, audio2exp.train, face3d
from avatars.sketch.train import make_drawings
from avatars.cli import main as avatars_main
from audio2exp.cli import main as audio2exp_main
d = make_drawings(face3d.load_model("builtin"), 2, 1, 0, 1, log=None)  # no Ray needed without --ray
assert d.ink.shape == (2, 3, 128, 128) and "ray" not in sys.modules
print("RC", avatars_main(["sketch-train", "--heads", "2", "--ray", "--out", "w.pt"]),
      audio2exp_main(["train", "--model", "character", "--n-utterances", "2", "--ray", "--out", "a.pt"]))
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "RC 2 2" in r.stdout  # refused before any work, with what to install
    assert "avatars sketch-train: --ray needs Ray: pip install" in r.stderr
    assert "audio2exp train: --ray needs Ray: pip install" in r.stderr
    assert not list(tmp_path.glob("*.pt"))
