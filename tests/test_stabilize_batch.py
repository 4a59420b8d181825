"""The folder tool: correct output, resumes without redoing frames, reports bad meshes."""
import json

import numpy as np
import pytest
import torch

from face3d.geometry.mesh_io import Mesh, load_mesh, save_mesh
from face3d.stabilize.align import apply_transform
from face3d.stabilize.batch import BatchConfig, stabilize_files, stabilize_meshes
from face3d.stabilize.synth import SynthConfig, sample_performances
from face3d.models.toy import toy_head


@pytest.fixture()
def perf_dir(tmp_path):
    m = toy_head()
    m.save_npz(tmp_path / "toy.npz")
    perf = sample_performances(m.double(), 1, 7, SynthConfig(jitter_mm=0.0, drift_mm=0.0), generator=11)
    uvs = np.random.default_rng(0).random((m.n_faces * 3, 2))  # UV seams: every corner its own UV
    uv_faces = np.arange(m.n_faces * 3).reshape(-1, 3)
    for i in range(7):
        save_mesh(tmp_path / "in" / f"f{i}.obj", Mesh(perf.frames[0, i].numpy(), m.faces.numpy(), uvs, uv_faces))
    return tmp_path, m, perf, uvs, uv_faces


def test_output_keeps_topology_and_undoes_head_motion(perf_dir):
    tmp, m, perf, uvs, uv_faces = perf_dir
    cfg = BatchConfig(method="upper", model=f"npz:{tmp / 'toy.npz'}", reference="f2", progress=False)
    res = stabilize_files(tmp / "in", tmp / "out", cfg)
    assert len(res.done) == 7 and not res.failed and not res.stopped_early
    out = load_mesh(tmp / "out" / "f5.obj")
    assert np.array_equal(out.faces, m.faces.numpy()) and np.allclose(out.uvs, uvs) and np.array_equal(out.uv_faces, uv_faces)
    rec = json.loads((tmp / "out" / "transforms" / "f5.json").read_text())
    T = torch.tensor(rec["stabilize"], dtype=torch.float64)
    src = torch.as_tensor(load_mesh(tmp / "in" / "f5.obj").vertices)
    assert np.allclose(out.vertices, apply_transform(T[None], src[None])[0].numpy(), atol=1e-9)
    # Undoing the estimated motion brings the skull close to the reference's (upper-face fit: ~mm).
    sk = m.region("scalp_back")
    err = np.linalg.norm(out.vertices[sk] - perf.frames[0, 2, sk].numpy(), axis=1).mean()
    raw = np.linalg.norm(src[sk].numpy() - perf.frames[0, 2, sk].numpy(), axis=1).mean()
    assert err < 3.0 and raw > 10 * err
    # The Python API gives the same transforms.
    v = torch.stack([torch.as_tensor(load_mesh(tmp / "in" / f"f{i}.obj").vertices) for i in range(7)])
    from face3d.stabilize.api import load_stabilizer

    _, Ts = stabilize_meshes(v, 2, load_stabilizer("upper", m))
    assert torch.allclose(Ts[5], T, atol=1e-9)
    man = json.loads((tmp / "out" / "transforms.json").read_text())
    assert man["complete"] and [f["file"] for f in man["frames"]] == [f"f{i}.obj" for i in range(7)]


def test_interrupted_run_resumes_without_redoing_frames(perf_dir):
    tmp, m, *_ = perf_dir
    cfg = BatchConfig(method="procrustes", model=f"npz:{tmp / 'toy.npz'}", progress=False, batch_size=2)
    first = stabilize_files(tmp / "in", tmp / "out", BatchConfig(**{**cfg.__dict__, "limit": 3}))
    assert first.stopped_early and first.done == ["f0.obj", "f1.obj", "f2.obj"]
    assert not (tmp / "out" / "f3.obj").exists()
    stamps = {n: (tmp / "out" / n).stat().st_mtime_ns for n in first.done}
    second = stabilize_files(tmp / "in", tmp / "out", cfg)
    assert second.skipped == first.done and second.done == [f"f{i}.obj" for i in range(3, 7)]
    assert all((tmp / "out" / n).stat().st_mtime_ns == t for n, t in stamps.items())
    # A damaged record (e.g. killed mid-way before rename would not leave one; corrupt it anyway)
    # and a changed input are redone; another method is a different run.
    (tmp / "out" / "transforms" / "f4.json").write_text("{")
    third = stabilize_files(tmp / "in", tmp / "out", cfg)
    assert third.done == ["f4.obj"]
    other = stabilize_files(tmp / "in", tmp / "out", BatchConfig(**{**cfg.__dict__, "method": "upper"}))
    assert len(other.done) == 7


def test_bad_meshes_are_reported_and_skipped(perf_dir, capsys):
    tmp, m, *_ = perf_dir
    save_mesh(tmp / "in" / "f3.obj", Mesh(np.zeros((500, 3)), np.array([[0, 1, 2]])))
    (tmp / "in" / "f4.obj").unlink()
    (tmp / "in" / "f4.ply").write_text("ply\nformat ascii 1.0\nelement vertex 3\n")
    from face3d.cli import build_parser, run

    parser = build_parser(modules=("face3d.stabilize.cli",))
    rc = run(parser, ["stabilize", str(tmp / "in"), "--out", str(tmp / "out"), "--method", "upper",
                      "--model", f"npz:{tmp / 'toy.npz'}", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "f3.obj: expected a mesh with 642 vertices (the toy-stabilize topology), got 500" in err
    assert "f4.ply" in err
    done = sorted(p.name for p in (tmp / "out").glob("*.obj"))
    assert done == ["f0.obj", "f1.obj", "f2.obj", "f5.obj", "f6.obj"]
    # An unusable reference is fatal (exit 2), not a per-frame failure.
    rc = run(parser, ["stabilize", str(tmp / "in"), "--out", str(tmp / "out2"), "--method", "upper",
                      "--model", f"npz:{tmp / 'toy.npz'}", "--reference", "f3", "--no-progress"])
    assert rc == 2 and "reference mesh unusable" in capsys.readouterr().err
