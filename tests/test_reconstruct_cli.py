"""The dlib detector and the `face3d reconstruct` batch command (one good image, two bad ones)."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("dlib")
skimage_data = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def astronaut():
    return skimage_data.astronaut()


def test_dlib_detector_on_astronaut(astronaut):
    from face3d.reconstruct.detect import DlibDetector, largest

    dets = DlibDetector().detect(astronaut)
    d = largest(dets)
    # The face box measured once with dlib: (175, 76)-(265, 166); the hand (score 0.12) is dropped.
    assert len(dets) == 1
    assert np.allclose(d.box, [175, 76, 265, 166], atol=3)
    assert d.landmarks68.shape == (68, 2)
    assert 40 < d.interocular < 80  # outer eye corners, px
    assert d.landmarks68[36, 0] < d.landmarks68[45, 0]  # subject's right eye on the image's left


def test_cli_batch_reports_failures(tmp_path, astronaut):
    import torch
    from PIL import Image

    from face3d.cli import build_parser, run
    from face3d.models.toy import toy_model

    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(astronaut).save(src / "astronaut.png")
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(src / "flat.png")  # no face
    (src / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    model_path = tmp_path / "toy.npz"
    toy_model().save_npz(model_path)
    out = tmp_path / "out"
    parser = build_parser(modules=("face3d.reconstruct.cli",))
    code = run(parser, ["reconstruct", str(src), "--out", str(out), "--model", f"npz:{model_path}",
                        "--no-estimator", "--fast", "--quiet", "--threads", str(torch.get_num_threads())])
    assert code == 1
    report = json.loads((out / "report.json").read_text())
    assert [r["output"] for r in report["succeeded"]] == ["astronaut"]
    errors = {r["input"].rsplit("/", 1)[-1]: r["error"] for r in report["failed"]}
    assert set(errors) == {"flat.png", "corrupt.jpg"}
    assert "no face found" in errors["flat.png"]
    assert "could not read" in errors["corrupt.jpg"]
    for suffix in (".obj", "_params.json", "_params.npz", "_overlay.png", "_measurements.json"):
        assert (out / f"astronaut{suffix}").is_file(), suffix
    params = json.loads((out / "astronaut_params.json").read_text())
    fitted = np.array(params["landmarks2d_fitted"])
    detected = np.array(params["landmarks2d_detected"])
    iod = np.linalg.norm(detected[36] - detected[45])
    assert fitted.shape == (68, 2)
    assert np.linalg.norm(fitted - detected, axis=1).mean() / iod < 0.05
    # No temporary files left behind by the atomic writers.
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_package_is_callable_and_does_not_import_dlib():
    import subprocess
    import sys

    code = ("import sys, face3d.reconstruct as r, face3d.reconstruct.cli; "
            "print(callable(r), 'dlib' in sys.modules, 'face3d.reconstruct.api' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "False", "False"]
