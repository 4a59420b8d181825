"""`--ray` batch runs against the single-process run, and Ray staying optional.

One local Ray (2 CPUs, no dashboard, loopback only) serves every test in this module; the commands
find it running and reuse it.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
# Wall-clock timings are the only non-deterministic fields of the reconstruct outputs.
TIMING_KEYS = {"seconds", "timings_s"}


def _strip_timings(x):
    if isinstance(x, dict):
        return {k: _strip_timings(v) for k, v in x.items() if k not in TIMING_KEYS}
    if isinstance(x, list):
        return [_strip_timings(v) for v in x]
    return x


def _snapshot(out: Path) -> dict:
    """{relative path: bytes, or JSON without timings for the files that hold timings}."""
    snap = {}
    for p in sorted(out.rglob("*")):
        if p.is_file():
            rel = str(p.relative_to(out))
            snap[rel] = _strip_timings(json.loads(p.read_text())) if p.suffix == ".json" else p.read_bytes()
    return snap


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    # Workers must import this checkout's face3d (not another install) and use one thread each.
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), old or ""]).rstrip(os.pathsep)
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        yield ray
    finally:
        ray.shutdown()
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


@pytest.fixture(scope="module")
def photo_batch(tmp_path_factory):
    """Two astronaut variants (a flip, a crop) and one broken file, plus the toy model."""
    pytest.importorskip("dlib")
    skimage_data = pytest.importorskip("skimage.data")
    from PIL import Image

    from face3d.models.toy import toy_model

    d = tmp_path_factory.mktemp("photos")
    src = d / "in"
    src.mkdir()
    a = skimage_data.astronaut()
    Image.fromarray(a).save(src / "a.png")
    Image.fromarray(a[20:, ::-1].copy()).save(src / "b.png")
    (src / "c_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    toy_model().save_npz(d / "toy.npz")
    return src, d / "toy.npz"


def _reconstruct(src, model, out, *extra):
    from face3d.cli import build_parser, run

    parser = build_parser(modules=("face3d.reconstruct.cli",))
    return run(parser, ["reconstruct", str(src), "--out", str(out), "--model", f"npz:{model}", "--no-estimator",
                        "--fast", "--quiet", "--threads", "1", *extra])


def test_reconstruct_ray_matches_single_process_with_failure_and_resume(tmp_path, photo_batch, ray_local):
    src, model = photo_batch
    single, ray_out = tmp_path / "single", tmp_path / "ray"
    assert _reconstruct(src, model, single) == 1  # one broken input
    assert _reconstruct(src, model, ray_out, "--ray") == 1
    ref = _snapshot(single)
    assert set(ref) == set(_snapshot(ray_out))
    assert {"a.obj", "b.obj", "a_overlay.png", "b_params.npz", "report.json", "done/a.json"} <= set(ref)
    assert "done/c_broken.json" not in ref  # failures are not recorded as done: a rerun retries them
    assert _snapshot(ray_out) == ref
    report = json.loads((ray_out / "report.json").read_text())
    assert [r["output"] for r in report["succeeded"]] == ["a", "b"]  # input order, whichever worker finished first
    assert [Path(r["input"]).name for r in report["failed"]] == ["c_broken.jpg"]
    assert "could not read" in report["failed"][0]["error"]
    # The flipped crop is a different fit, so identical files mean each image really went through.
    assert ref["a.obj"] != ref["b.obj"]

    # An interrupted run: image b was mid-write (its record, written last, is missing; its mesh is
    # a stale partial file). Resuming with Ray redoes b (and retries the broken one) and skips a.
    (ray_out / "done" / "b.json").unlink()
    (ray_out / "b.obj").write_bytes(b"partial")
    (ray_out / "report.json").unlink()
    a_mtime = (ray_out / "a.obj").stat().st_mtime_ns
    assert _reconstruct(src, model, ray_out, "--ray") == 1
    assert (ray_out / "a.obj").stat().st_mtime_ns == a_mtime  # skipped, not recomputed
    assert _snapshot(ray_out) == ref
    # report.json of the resumed run is byte-identical to the one it replaced (timings come from the record).
    before = (ray_out / "report.json").read_bytes()
    assert _reconstruct(src, model, ray_out) == 1
    assert (ray_out / "report.json").read_bytes() == before
    assert (ray_out / "a.obj").stat().st_mtime_ns == a_mtime


def test_resume_redoes_when_the_settings_or_input_change(tmp_path, photo_batch):
    from face3d.reconstruct.cli import _load_record

    src, model = photo_batch
    out = tmp_path / "out"
    _reconstruct(src, model, out)
    rec = json.loads((out / "done" / "a.json").read_text())
    assert _load_record(out, "a", src / "a.png", rec["run"]) is not None
    assert _load_record(out, "a", src / "a.png", "another-run") is None
    assert _load_record(out, "a", src / "b.png", rec["run"]) is None  # another file (size / mtime)


def test_ray_map_order_and_worker_setup_once(ray_local):
    from face3d.scale import ray_map

    got = dict(ray_map(_add_pid, list(range(7)), _setup_pid, (10,), progress=False))
    assert sorted(got) == list(range(7))
    assert [got[i][0] for i in range(7)] == [10 + i for i in range(7)]
    # 2 workers, each built its context once: at most 2 distinct setup ids for 7 items.
    assert 1 <= len({g[1] for g in got.values()}) <= 2


def _setup_pid(offset):
    import uuid

    return offset, uuid.uuid4().hex


def _add_pid(ctx, item):
    return ctx[0] + item, ctx[1]


def _setup_fails(flag):
    raise ValueError(f"--detector-stages: expected hog or cnn, got {flag!r}")


def _ctx_offset(ctx):
    return ctx[0]


def test_ray_pool_probe_map_and_setup_error(ray_local):
    from face3d.scale import RayPool

    with RayPool(_setup_pid, (10,), workers=2, max_items=3) as pool:
        assert pool.probe(_ctx_offset) == 10  # computed on a worker from its context
        got = dict(pool.map(_add_pid, [5, 6, 7], progress=False))
    assert [got[i][0] for i in range(3)] == [15, 16, 17]
    # The actors are gone after close: the fixture's 2 CPUs are free for a new pool.
    with RayPool(_setup_fails, ("bogus",), workers=2, max_items=2) as pool:
        with pytest.raises(ValueError) as e:
            pool.probe()
        assert type(e.value) is ValueError  # the setup's own exception, not a Ray wrapper
        assert str(e.value) == "--detector-stages: expected hog or cnn, got 'bogus'"
        with pytest.raises(ValueError, match="expected hog or cnn"):
            list(pool.map(_add_pid, [1], progress=False))


def test_reconstruct_ray_bad_flag_same_error_as_single_process(tmp_path, photo_batch, ray_local, capsys):
    src, model = photo_batch
    assert _reconstruct(src, model, tmp_path / "single", "--detector-stages", "hog,bogus") == 2
    single_err = capsys.readouterr().err
    assert _reconstruct(src, model, tmp_path / "ray", "--detector-stages", "hog,bogus", "--ray") == 2
    ray_err = capsys.readouterr().err
    assert "face3d reconstruct: --detector-stages: expected a non-empty subset of" in single_err
    assert ray_err == single_err  # checked on a worker, reported by the driver, word for word
    assert not (tmp_path / "ray" / "report.json").exists()


def test_reconstruct_unjoinable_ray_address_is_a_clear_error(tmp_path, photo_batch, monkeypatch, capsys):
    """A cluster address Ray cannot join: what to do instead, exit code 2, no traceback, no output."""
    ray = pytest.importorskip("ray")
    src, model = photo_batch

    def refuse(*args, **kwargs):
        raise ConnectionError("Failed to connect to Ray cluster at 10.0.0.9:6379")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", refuse)
    assert _reconstruct(src, model, tmp_path / "o", "--ray", "10.0.0.9:6379") == 2
    err = capsys.readouterr().err
    assert err.startswith("face3d reconstruct: --ray 10.0.0.9:6379: could not join a Ray cluster there")
    assert "ray start --head" in err and "Traceback" not in err
    assert not (tmp_path / "o" / "report.json").exists()


def test_ray_pool_starts_a_local_ray_in_its_thread(tmp_path):
    """Ray started by the pool's thread (not the caller's) must outlive a pause of the caller:
    its processes die with the thread that spawned them, so the thread has to stay alive."""
    pytest.importorskip("ray")
    code = f"""
import time
import ray
from face3d.scale import RayPool
from tests.test_scale import _setup_pid, _add_pid, _ctx_offset
import signal
pool = RayPool(_setup_pid, (3,), workers=1, max_items=2)
assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL  # as ray.init sets in the main thread
time.sleep(1.0)  # the caller busy with its own work
assert pool.probe(_ctx_offset) == 3
got = dict(pool.map(_add_pid, [1, 2], progress=False))
assert [got[i][0] for i in (0, 1)] == [4, 5], got
pool.close()
assert not ray.is_initialized()
print("OK")
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "OK" in r.stdout
    assert "SIGTERM handler is not set" not in r.stderr  # Ray's warning when init runs off the main thread


_BLOCK_RAY = """
import sys
class _NoRay:
    def find_spec(self, name, path=None, target=None):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("ray blocked for this test")
sys.meta_path.insert(0, _NoRay())
"""


def test_face3d_works_without_ray(tmp_path):
    from face3d.models.toy import toy_model

    toy_model().save_npz(tmp_path / "toy.npz")
    code = _BLOCK_RAY + f"""
import face3d, face3d.scale, face3d.distributed
from face3d.cli import main
assert "ray" not in sys.modules
rc = main(["reconstruct", "{tmp_path / 'missing.png'}", "--out", "{tmp_path / 'o'}", "--model",
           "npz:{tmp_path / 'toy.npz'}", "--no-estimator", "--fast", "--quiet"])
assert rc == 1, rc  # ran (the missing file is a per-item failure), without Ray
rc = main(["reconstruct", "{tmp_path / 'missing.png'}", "--out", "{tmp_path / 'o2'}", "--model",
           "npz:{tmp_path / 'toy.npz'}", "--no-estimator", "--fast", "--quiet", "--ray"])
print("RC", rc)
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "RC 2" in r.stdout
    assert "face3d reconstruct: --ray needs Ray: pip install" in r.stderr


def _stabilize(*args):
    from face3d.cli import build_parser, run

    return run(build_parser(modules=("face3d.stabilize.cli",)), ["stabilize", *map(str, args), "--no-progress"])


def test_stabilize_ray_per_folder_matches_single_process_and_resumes(tmp_path, ray_local):
    from face3d.geometry.mesh_io import Mesh, save_mesh
    from face3d.models.toy import toy_head
    from face3d.stabilize.synth import SynthConfig, sample_performances

    m = toy_head()
    m.save_npz(tmp_path / "toy.npz")
    perf = sample_performances(m.double(), 3, 3, SynthConfig(jitter_mm=0.0, drift_mm=0.0), generator=5)
    folders = []
    for s in range(3):
        d = tmp_path / "in" / f"take{s}"
        for i in range(3):
            save_mesh(d / f"f{i}.obj", Mesh(perf.frames[s, i].numpy(), m.faces.numpy()))
        folders.append(d)
    (folders[1] / "f2.obj").write_text("v 0 0 0\nf 1 1 1\n")  # wrong vertex count: reported, the rest go on
    common = ["--model", f"npz:{tmp_path / 'toy.npz'}", "--method", "upper", "--per-folder"]
    assert _stabilize(*folders, "--out", tmp_path / "single", *common) == 1
    # With Ray: first an interrupted run (--limit 1 per folder), then the rerun finishes the job.
    assert _stabilize(*folders, "--out", tmp_path / "ray", *common, "--ray", "--limit", "1") == 3
    first = (tmp_path / "ray" / "take0" / "f0.obj").stat().st_mtime_ns
    assert not (tmp_path / "ray" / "take0" / "f1.obj").exists()
    assert _stabilize(*folders, "--out", tmp_path / "ray", *common, "--ray") == 1
    assert (tmp_path / "ray" / "take0" / "f0.obj").stat().st_mtime_ns == first  # not redone
    ref = {k: v for k, v in _snapshot(tmp_path / "single").items()}
    assert {"take0/f2.obj", "take2/transforms.json", "take1/transforms/f1.json"} <= set(ref)
    assert "take1/f2.obj" not in ref
    assert _snapshot(tmp_path / "ray") == ref
    man = json.loads((tmp_path / "ray" / "take1" / "transforms.json").read_text())
    assert list(man["failed"]) == ["f2.obj"] and len(man["frames"]) == 2
    assert ref["take0/f1.obj"] != ref["take2/f1.obj"]  # different takes, different outputs


def test_track_ray_several_videos_matches_single_process(tmp_path, photo_batch, ray_local):
    from PIL import Image

    from face3d.cli import build_parser, run

    src, model = photo_batch
    a = np.asarray(Image.open(src / "a.png"))
    videos = []
    for v in range(2):
        d = tmp_path / "videos" / f"clip{v}"
        d.mkdir(parents=True)
        for t in range(2):
            Image.fromarray(np.roll(a, 3 * t + 7 * v, axis=1)).save(d / f"{t:03d}.png")
        videos.append(d)
    videos.append(tmp_path / "videos" / "missing.mp4")

    def track(out, *extra):
        return run(build_parser(modules=("face3d.reconstruct.cli",)),
                   ["track", *map(str, videos), "--out", str(out), "--model", f"npz:{model}", "--batch", "2",
                    "--quiet", *extra])

    assert track(tmp_path / "single") == 1  # the missing video fails, the others are tracked
    assert track(tmp_path / "ray", "--ray") == 1
    ref = _snapshot(tmp_path / "single")
    assert set(ref) == {f"clip{v}/track.{e}" for v in range(2) for e in ("json", "npz")}
    assert _snapshot(tmp_path / "ray") == ref
    assert ref["clip0/track.json"] != ref["clip1/track.json"]
    # Resume: a finished video is skipped.
    stamp = (tmp_path / "ray" / "clip0" / "track.json").stat().st_mtime_ns
    (tmp_path / "ray" / "clip1" / "track.json").unlink()
    assert track(tmp_path / "ray", "--ray") == 1
    assert (tmp_path / "ray" / "clip0" / "track.json").stat().st_mtime_ns == stamp
    assert _snapshot(tmp_path / "ray") == ref
