"""Reading photos in every format they come in; output permissions; CLI error messages."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from face3d.reconstruct.images import check_image, load_image


def test_exif_orientation_is_applied(tmp_path):
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = (255, 0, 0)  # left half red as stored
    im = Image.fromarray(stored)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display" (a phone held upright)
    im.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    img = load_image(tmp_path / "phone.jpg")
    assert img.shape == (40, 20, 3)  # upright: taller than wide
    # The stored left half is now the top half.
    assert img[:16, :, 0].mean() > 200 and img[24:, :, 0].mean() < 50


def test_16bit_grayscale_is_scaled_not_clipped(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 32).reshape(32, 64).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "scan16.png")
    with Image.open(tmp_path / "scan16.png") as im:
        assert im.mode.startswith("I")  # really a 16-bit file
    img = load_image(tmp_path / "scan16.png")
    assert img.shape == (32, 64, 3) and img.dtype == np.uint8
    expect = np.round(ramp / 257.0)
    assert np.abs(img[..., 0].astype(float) - expect).max() <= 1
    assert (img[..., 0] < 250).mean() > 0.9  # clipping 16-bit values to 255 would make it white


def test_16bit_array_input():
    a = np.full((8, 8, 3), 32768, np.uint16)
    assert int(check_image(a)[0, 0, 0]) == 128


def test_palette_and_alpha_are_composited_over_white(tmp_path):
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., :3] = (10, 20, 30)
    rgba[:, 8:, 3] = 255  # left half fully transparent (its colour is meaningless)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    img = load_image(tmp_path / "alpha.png")
    assert (img[:, :8] == 255).all() and (img[:, 8:] == (10, 20, 30)).all()

    pal = Image.new("P", (16, 16), 0)
    pal.putpalette([0, 0, 0, 200, 50, 50] + [0] * 762)
    pal.paste(1, (0, 0, 16, 8))  # top half: colour 1; bottom: colour 0, marked transparent
    pal.info["transparency"] = 0
    pal.save(tmp_path / "palette.png", transparency=0)
    img = load_image(tmp_path / "palette.png")
    assert (img[:8] == (200, 50, 50)).all() and (img[8:] == 255).all()

    gray_alpha = Image.fromarray(np.stack([np.full((4, 4), 90, np.uint8), np.zeros((4, 4), np.uint8)], -1), "LA")
    gray_alpha.save(tmp_path / "la.png")
    assert (load_image(tmp_path / "la.png") == 255).all()


def test_cmyk_jpeg_and_grayscale(tmp_path):
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(tmp_path / "print.jpg", quality=95)  # pure red ink-wise
    with Image.open(tmp_path / "print.jpg") as im:
        assert im.mode == "CMYK"
    img = load_image(tmp_path / "print.jpg")
    assert np.abs(img.reshape(-1, 3).mean(0) - [255, 0, 0]).max() < 12
    Image.fromarray(np.full((5, 7), 77, np.uint8)).save(tmp_path / "gray.png")
    g = load_image(tmp_path / "gray.png")
    assert g.shape == (5, 7, 3) and (g == 77).all()


def test_unreadable_files_name_the_file(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not a png at all")
    with pytest.raises(ValueError, match="bad.png"):
        load_image(tmp_path / "bad.png")
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        load_image(tmp_path / "missing.jpg")


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_honour_the_umask(tmp_path, umask, mode):
    from face3d.fileio import atomic_write_text

    old = os.umask(umask)
    try:
        p = atomic_write_text(tmp_path / "out.json", "{}")
    finally:
        os.umask(old)
    assert (os.stat(p).st_mode & 0o777) == mode


def test_missing_estimator_fails_once_with_cli_flags(tmp_path, capsys):
    """A model without estimator weights: one message naming the CLI's flags, before any image."""
    from face3d.cli import build_parser, run
    from face3d.models.toy import toy_model

    model_path = tmp_path / "toy.npz"
    toy_model().save_npz(model_path)
    imgs = []
    for i in range(3):
        imgs.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(np.full((32, 32, 3), 100, np.uint8)).save(imgs[-1])
    out = tmp_path / "out"
    code = run(build_parser(modules=("face3d.reconstruct.cli",)),
               ["reconstruct", *imgs, "--out", str(out), "--model", f"npz:{model_path}", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("no estimator weights") == 1 and "FAILED" not in err
    assert "--estimator FILE" in err and "--no-estimator" in err and "ReconstructConfig" not in err
    assert not (out / "report.json").exists()


def test_cli_and_track_import_without_a_cycle():
    """track and cli share their image helpers through images.py, which imports neither."""
    code = ("import sys; import face3d.reconstruct.track, face3d.reconstruct.images; "
            "print('face3d.reconstruct.cli' in sys.modules); import face3d.reconstruct.cli; "
            "print('face3d.reconstruct.track' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True"]
    src = open(__import__("face3d.reconstruct.images", fromlist=["x"]).__file__).read()
    assert "reconstruct.cli" not in src and "reconstruct.track" not in src


def test_detector_errors_name_cli_flags(tmp_path, capsys):
    from face3d.cli import build_parser, run

    pytest.importorskip("dlib")
    Image.fromarray(np.full((32, 32, 3), 100, np.uint8)).save(tmp_path / "a.png")
    parser = build_parser(modules=("face3d.reconstruct.cli",))
    base = ["reconstruct", str(tmp_path / "a.png"), "--out", str(tmp_path / "out"), "--no-estimator", "--quiet"]
    assert run(parser, base + ["--dlib-models", str(tmp_path / "nowhere")]) == 2
    assert run(parser, base + ["--detector-stages", "hog,sift"]) == 2
    err = capsys.readouterr().err
    assert "shape_predictor_68_face_landmarks.dat" in err and "--detector-stages" in err
    assert "DlibConfig" not in err
