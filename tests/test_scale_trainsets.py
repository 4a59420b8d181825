"""Stored synthetic training sets (`face3d make-trainset`, `--data DIR`): the same bytes with and
without Ray, resume, manifest checks, per-chunk failures, and training on a stored set.

Toy models keep every set a few hundred kilobytes; the local Ray (2 CPUs, no dashboard) is the
one `tests/test_scale.py` starts for its module.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from face3d.models.toy import toy_head, toy_model
from face3d.reconstruct.synthetic import SyntheticConfig
from face3d.trainset import (
    EstimatorSetConfig, StabilizerSetConfig, TrainSetConfig, load_trainset, make_trainset,
)

from .test_scale import _BLOCK_RAY, ROOT, ray_local  # noqa: F401  (the module's one local Ray)


@pytest.fixture(scope="module")
def toys():
    return {"estimator": toy_model(), "stabilizer": toy_head()}


# 3 chunks, the last one short, for each part.
CFGS = {
    "estimator": TrainSetConfig("estimator", n=40, chunk=16, seed=5),
    "stabilizer": TrainSetConfig("stabilizer", n=7, chunk=3, seed=5, data=StabilizerSetConfig(per_identity=3)),
}


def _files(d) -> dict:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


@pytest.mark.parametrize("part", ["estimator", "stabilizer"])
def test_ray_set_is_the_single_process_set_byte_for_byte(part, toys, tmp_path, ray_local):
    single = make_trainset(toys[part], tmp_path / "single", CFGS[part], progress=False)
    ray = make_trainset(toys[part], tmp_path / "ray", CFGS[part], ray="local", progress=False)
    assert single.complete and ray.complete and single.written == ray.written == (0, 1, 2)
    a, b = _files(tmp_path / "single"), _files(tmp_path / "ray")
    assert list(a) == ["chunk_00000.pt", "chunk_00001.pt", "chunk_00002.pt", "manifest.json"]
    assert a == b
    ts = load_trainset(tmp_path / "ray", part, toys[part])
    first = next(iter(ts.tensors.values()))
    assert len(first) == CFGS[part].n
    # Chunks have streams of their own: chunk 1 does not repeat chunk 0.
    k = CFGS[part].chunk
    assert not torch.equal(first[:2], first[k:k + 2])


def test_interrupted_and_damaged_runs_resume_to_the_same_bytes(toys, tmp_path):
    cfg, m = CFGS["stabilizer"], toys["stabilizer"]
    ref = make_trainset(m, tmp_path / "ref", cfg, progress=False)
    part = make_trainset(m, tmp_path / "run", cfg, limit=1, progress=False)
    assert part.written == (0,) and part.stopped_early and not part.complete
    with pytest.raises(ValueError, match="incomplete: 2 of 3 chunks missing"):
        load_trainset(tmp_path / "run")
    rest = make_trainset(m, tmp_path / "run", cfg, progress=False)
    assert rest.skipped == (0,) and rest.written == (1, 2) and rest.complete
    (tmp_path / "run" / "chunk_00001.pt").unlink()
    (tmp_path / "run" / ".chunk_00001.pt.x1y2.tmp").write_bytes(b"half a chunk")  # a run killed mid-write
    again = make_trainset(m, tmp_path / "run", cfg, progress=False)
    assert again.skipped == (0, 2) and again.written == (1,)
    assert ref.written == (0, 1, 2) and _files(tmp_path / "ref") == _files(tmp_path / "run")


def test_a_failed_chunk_is_reported_and_retried(toys, tmp_path, monkeypatch):
    import face3d.reconstruct.synthetic as syn

    cfg, m = CFGS["estimator"], toys["estimator"]
    real = syn.sample_batch

    def flaky(sub, b, *a, **k):
        if b == 8:  # the short last chunk
            raise RuntimeError("disk on fire")
        return real(sub, b, *a, **k)

    monkeypatch.setattr(syn, "sample_batch", flaky)
    res = make_trainset(m, tmp_path / "s", cfg, progress=False)
    assert res.written == (0, 1) and res.failed == {2: "RuntimeError: disk on fire"} and not res.complete
    monkeypatch.setattr(syn, "sample_batch", real)
    res = make_trainset(m, tmp_path / "s", cfg, progress=False)
    assert res.written == (2,) and res.skipped == (0, 1)
    make_trainset(m, tmp_path / "ref", cfg, progress=False)
    assert _files(tmp_path / "s") == _files(tmp_path / "ref")


def test_resume_with_other_settings_is_refused(toys, tmp_path):
    cfg, m = CFGS["estimator"], toys["estimator"]
    make_trainset(m, tmp_path / "s", cfg, limit=1, progress=False)
    before = _files(tmp_path / "s")
    with pytest.raises(ValueError, match=r"other settings \(seed: the set has 5, this run 6\)"):
        make_trainset(m, tmp_path / "s", TrainSetConfig("estimator", n=40, chunk=16, seed=6), progress=False)
    with pytest.raises(ValueError, match="model_fingerprint: the set has"):
        make_trainset(toy_model(n_lat=12, n_lon=20), tmp_path / "s", cfg, progress=False)
    with pytest.raises(ValueError, match="config: the set has"):
        other = TrainSetConfig("estimator", n=40, chunk=16, seed=5, data=EstimatorSetConfig(SyntheticConfig(noise=0.0)))
        make_trainset(m, tmp_path / "s", other, progress=False)
    assert _files(tmp_path / "s") == before  # nothing written by the refused runs


def test_estimator_trains_on_a_stored_set(toys, tmp_path):
    from face3d.reconstruct.estimator import TrainConfig, shape_error_mm, train_estimator
    from face3d.reconstruct.synthetic import landmark_submodel, sample_batch

    m = toys["estimator"]
    syn = SyntheticConfig(noise=0.0, dropout=0.0, expression_prob=0.0, jaw_open=0.0)
    make_trainset(m, tmp_path / "s", TrainSetConfig("estimator", n=512, chunk=256, data=EstimatorSetConfig(syn)),
                  progress=False)
    ts = load_trainset(tmp_path / "s", "estimator", m)
    cfg = TrainConfig(steps=60, batch=128, lr=1e-2, hidden=64, layers=2, seed=0)
    net, stats = train_estimator(m, cfg, data=ts)
    assert stats["data_items"] == 512 and stats["data_epochs"] == 15.0  # 60 steps of 128 over 512 scenes
    b = sample_batch(landmark_submodel(m), 256, syn, torch.Generator().manual_seed(77))  # held out
    with torch.no_grad():
        err = shape_error_mm(m, net.predict(b.landmarks, b.visible), b.identity).mean()
        err0 = shape_error_mm(m, torch.zeros(256, m.n_identity), b.identity).mean()
    assert float(err) < 0.97 * float(err0), (float(err), float(err0))
    net2, _ = train_estimator(m, cfg, data=ts)  # seeded epochs: the same run again
    assert all(torch.equal(x, y) for x, y in zip(net.state_dict().values(), net2.state_dict().values()))


def test_stabilizer_trains_on_a_stored_set(toys, tmp_path):
    from face3d.stabilize.network import NetworkConfig, StabilizerNet
    from face3d.stabilize.synth import sample_groups
    from face3d.stabilize.train import TrainConfig, pair_loss, train

    m = toys["stabilizer"]
    make_trainset(m, tmp_path / "s", TrainSetConfig("stabilizer", n=60, chunk=32,
                                                    data=StabilizerSetConfig(per_identity=3, n_points=64)),
                  progress=False)
    ts = load_trainset(tmp_path / "s", "stabilizer", m)
    assert ts.tensors["noisy"].shape[:2] == (60, 3) and ts.tensors["skull"].shape == (60, 3, 4, 4)
    cfg = TrainConfig(steps=25, identities=6, per_identity=3, lr=3e-3, norm_samples=256, log_every=1000,
                      network=NetworkConfig(n_points=64, align_points=128, hidden=32))
    noisy, clean, skull, _ = sample_groups(m, 16, 3, cfg.synth, torch.Generator().manual_seed(123))  # held out

    def loss(net):
        with torch.no_grad():
            return float(pair_loss(net, noisy[:, net.align], noisy[:, net.inputs], clean[:, net.skull], skull, 3))

    before = loss(StabilizerNet(m, cfg.network))
    net, ckpt = train(m, cfg, progress=lambda s: None, data=ts)
    assert loss(net) < 0.8 * before, (before, loss(net))
    assert ckpt["data"]["groups"] == 60 and ckpt["data"]["epochs"] == 2.5  # 25 steps of 6 over 60 groups
    with pytest.raises(ValueError, match="holds groups of 3 meshes per identity; TrainConfig.per_identity is 2"):
        train(m, TrainConfig(steps=1, identities=2, per_identity=2, network=cfg.network), data=ts)
    with pytest.raises(ValueError, match="was made for model 'toy-stabilize'.*not for model"):
        train(toy_head(n_lat=26, n_lon=36), cfg, data=ts)


def test_stored_vertices_must_cover_the_network(toys, tmp_path):
    from face3d.stabilize.network import NetworkConfig
    from face3d.stabilize.train import TrainConfig, train

    m = toy_head(n_lat=30, n_lon=48)  # more visible vertices than 64 points need
    make_trainset(m, tmp_path / "s", TrainSetConfig("stabilizer", n=4, chunk=4,
                                                    data=StabilizerSetConfig(per_identity=2, n_points=16, align_points=24)),
                  progress=False)
    ts = load_trainset(tmp_path / "s")
    with pytest.raises(ValueError, match=r"stores 24 noisy vertices, which lack \d+ of the 64 this network reads"):
        train(m, TrainConfig(steps=1, identities=2, per_identity=2, network=NetworkConfig(n_points=64, align_points=64)),
              data=ts)


def _cli(args, cwd, block_ray: bool = False):
    code = (_BLOCK_RAY if block_ray else "import sys\n") + (
        "from face3d.cli import main\nimport torch\ntorch.set_num_threads(1)\nsys.exit(main(sys.argv[1:]))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=120)


def test_commands_make_resume_and_refuse_the_wrong_set(tmp_path):
    from face3d.cli import build_parser, run

    torch.set_num_threads(1)
    toy_head().save_npz(tmp_path / "head.npz")
    toy_model().save_npz(tmp_path / "toy.npz")
    head, toy = f"npz:{tmp_path / 'head.npz'}", f"npz:{tmp_path / 'toy.npz'}"
    stab = str(tmp_path / "stab")
    make = ["make-trainset", "stabilizer", "--n", "6", "--chunk", "2", "--per-identity", "2", "--points", "32",
            "--model", head, "--out", stab, "--quiet"]
    assert run(build_parser(), [*make, "--limit", "2"]) == 3
    assert run(build_parser(), make) == 0
    assert run(build_parser(), [*make[:3], "7", *make[4:]]) == 2  # another --n: refused

    # The stabilizer set trains the stabilizer (its --per-identity taken from the set) ...
    out = tmp_path / "w.pt"
    assert run(build_parser(), ["stabilize-train", "--model", head, "--data", stab, "--out", str(out), "--steps", "2",
                                "--identities", "2", "--points", "32", "--hidden", "8", "--log-every", "1"]) == 0
    ck = torch.load(out, map_location="cpu", weights_only=True)
    assert ck["train_config"]["per_identity"] == 2 and ck["data"]["groups"] == 6
    # ... and nothing else.
    r = _cli(["train-estimator", "--model", toy, "--data", stab, "--out", str(tmp_path / "e.pt"), "--quiet"], tmp_path)
    assert r.returncode == 2 and "is a training set for the stabilizer, not the estimator" in r.stderr, r.stderr[-2000:]
    r = _cli(["stabilize-train", "--model", toy, "--data", stab, "--out", str(tmp_path / "s.pt")], tmp_path)
    assert r.returncode == 2 and "was made for model" in r.stderr and "not for model" in r.stderr, r.stderr[-2000:]
    assert not (tmp_path / "e.pt").exists() and not (tmp_path / "s.pt").exists()


def test_make_trainset_ray_without_ray(tmp_path):
    r = _cli(["make-trainset", "estimator", "--n", "4", "--out", str(tmp_path / "s"), "--ray"], tmp_path, block_ray=True)
    assert r.returncode == 2 and "make-trainset: --ray needs Ray: pip install" in r.stderr, r.stderr[-2000:]
    assert not (tmp_path / "s").exists()


def test_stabilize_train_on_a_stored_set_under_torchrun_matches_single_process(tmp_path):
    from .test_distributed import _single, _torchrun

    toy_head().save_npz(tmp_path / "head.npz")
    head = f"npz:{tmp_path / 'head.npz'}"
    _single(["make-trainset", "stabilizer", "--n", "12", "--chunk", "4", "--per-identity", "3", "--points", "32",
             "--model", head, "--out", str(tmp_path / "set"), "--quiet"])
    args = ["stabilize-train", "--model", head, "--data", str(tmp_path / "set"), "--steps", "4", "--identities", "4",
            "--points", "32", "--hidden", "16", "--log-every", "1", "--lr", "3e-3"]
    _single([*args, "--out", str(tmp_path / "single.pt")])
    _torchrun([*args, "--out", str(tmp_path / "ddp.pt")], tmp_path)  # each rank reads its 2 groups of each step
    hs, hd = (torch.load(tmp_path / f, map_location="cpu", weights_only=True)["history"] for f in ("single.pt", "ddp.pt"))
    assert [s for s, _ in hs] == [s for s, _ in hd] == [1, 2, 3, 4]
    for (_, a), (_, b) in zip(hs, hd):  # history is rounded to 1e-4 mm
        assert abs(a - b) <= max(1e-4 * abs(a), 1e-4), (hs, hd)
    # The comparison can fail: half the groups per step (what one rank alone reads) give other losses.
    _single([*args[:8], "2", *args[9:], "--out", str(tmp_path / "half.pt")])
    hh = torch.load(tmp_path / "half.pt", map_location="cpu", weights_only=True)["history"]
    assert abs(hh[0][1] - hs[0][1]) > 1e-2, (hh, hs)
