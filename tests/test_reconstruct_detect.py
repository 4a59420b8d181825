"""The detection cascade on hard versions of real photos (skimage's astronaut and camera)."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("dlib")
skimage_data = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def astronaut():
    return skimage_data.astronaut()


@pytest.fixture(scope="module")
def detector():
    from face3d.reconstruct.detect import DlibDetector

    return DlibDetector()


@pytest.fixture(scope="module")
def reference(astronaut, detector):
    """dlib's landmarks on the full astronaut photo (found by the first stage)."""
    r = detector.detect_report(astronaut)
    assert [d.stage for d in r.detections] == ["hog"] and [s.stage for s in r.stages] == ["hog"]
    return r.detections[0].landmarks68


def _resize(img, side):
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize((side, side), Image.BOX))


def _no_face_without(detector_stages, image):
    from face3d.reconstruct.detect import DlibConfig, DlibDetector

    return DlibDetector(DlibConfig(stages=detector_stages)).detect(image) == []


def test_tight_crop_is_found_by_the_padded_stage(astronaut, detector, reference):
    # The crop cuts through the forehead and chin: HOG's window has no outline to see.
    crop = astronaut[90:165, 185:258]
    r = detector.detect_report(crop)
    assert [d.stage for d in r.detections] == ["hog_padded"]
    assert _no_face_without(("hog", "hog_upsampled"), crop)
    lm = r.detections[0].landmarks68 + [185, 90]  # back into the photo's pixels
    iod = np.linalg.norm(reference[36] - reference[45])
    eyes = list(range(36, 48))
    assert np.linalg.norm(lm[eyes] - reference[eyes], axis=1).mean() < 0.1 * iod


def test_small_face_is_found_by_upsampling(astronaut, detector, reference):
    small = _resize(astronaut, 96)  # the face's box is ~17 px wide
    r = detector.detect_report(small)
    assert [d.stage for d in r.detections] == ["hog_upsampled"]
    assert _no_face_without(("hog",), small)
    k = 96 / 512
    iod = np.linalg.norm(reference[36] - reference[45]) * k
    err = np.linalg.norm((r.detections[0].landmarks68 + 0.5) / k - 0.5 - reference, axis=1).mean() * k
    assert err < 0.25 * iod  # a 17 px face: landmarks within a quarter of the eye distance


def test_profile_is_found_by_the_cnn(detector):
    camera = skimage_data.camera()  # grayscale, a man in profile (CC0)
    r = detector.detect_report(camera)
    assert [s.stage for s in r.stages] == ["hog", "hog_upsampled", "hog_padded", "cnn"]
    assert [d.stage for d in r.detections] == ["cnn"]
    x0, y0, x1, y1 = r.detections[0].box
    # The head is at about x 190-290, y 60-170 (looked up once on the image).
    assert 150 < (x0 + x1) / 2 < 300 and 50 < (y0 + y1) / 2 < 180, r.detections[0].box
    assert r.stages[-1].seconds > 0 and r.as_dict()["faces"][0]["stage"] == "cnn"


def test_grayscale_photo(astronaut, detector, reference):
    from PIL import Image

    gray = np.asarray(Image.fromarray(astronaut).convert("L"))  # (H, W) uint8
    dets = detector.detect(gray)
    assert len(dets) == 1 and dets[0].stage == "hog"
    iod = np.linalg.norm(reference[36] - reference[45])
    assert np.linalg.norm(dets[0].landmarks68 - reference, axis=1).mean() < 0.05 * iod


def test_large_photo_is_downscaled_for_detection(astronaut, detector, reference):
    big = _resize(astronaut, 2600)  # 6.8 Mpx
    r = detector.detect_report(big)
    assert r.scale == pytest.approx(1024 / 2600, rel=1e-3)
    k = 2600 / 512
    # Landmarks come from the full-resolution image: within 4 % of the eye distance of the
    # small photo's, scaled.
    iod = np.linalg.norm(reference[36] - reference[45]) * k
    ref = (reference + 0.5) * k - 0.5
    assert np.linalg.norm(r.detections[0].landmarks68 - ref, axis=1).mean() < 0.04 * iod


def test_select_face_and_out_of_range_index():
    from face3d.reconstruct.detect import Detection, select_face

    def det(x0, size, score):
        return Detection(box=np.array([x0, 0, x0 + size, size], float), score=score, landmarks68=np.zeros((68, 2)))

    dets = [det(0, 50, 2.0), det(100, 80, 1.0)]
    assert select_face(dets)[0] == 1  # largest by default
    assert select_face(dets, 0)[0] == 0
    with pytest.raises(IndexError, match="2 face"):
        select_face(dets, 2)


def test_cli_reports_every_face_and_face_flag_picks_one(tmp_path, astronaut):
    """Two faces (the astronaut and a half-size copy): the JSON lists both with stage and score,
    the default reconstructs the largest, --face 1 the other."""
    import torch
    from PIL import Image

    from face3d.cli import build_parser, run
    from face3d.models.toy import toy_model

    two = np.full((512, 768, 3), 255, np.uint8)
    two[:, :512] = astronaut
    two[100:356, 512:768] = _resize(astronaut, 256)
    Image.fromarray(two).save(tmp_path / "two.png")
    model_path = tmp_path / "toy.npz"
    toy_model().save_npz(model_path)
    parser = build_parser(modules=("face3d.reconstruct.cli",))
    def reconstruct(flag, name):
        out = tmp_path / name
        code = run(parser, ["reconstruct", str(tmp_path / "two.png"), "--out", str(out), "--model", f"npz:{model_path}",
                            "--no-estimator", "--fast", "--quiet", "--threads", str(torch.get_num_threads())] + flag)
        assert code == 0
        rep = json.loads((out / "report.json").read_text())["succeeded"][0]
        faces = rep["detection"]["faces"]
        assert len(faces) == 2 and {f["stage"] for f in faces} == {"hog"} and all(f["score"] > 0.3 for f in faces)
        params = json.loads((out / "two_params.json").read_text())
        assert len(params["detection"]["faces"]) == 2 and (out / "two_overlay.png").is_file()
        return rep["face"], params["box"][2] - params["box"][0]

    i_default, w_default = reconstruct([], "default")
    other = 1 - i_default
    i_other, w_other = reconstruct(["--face", str(other)], "other")
    assert i_other == other
    assert w_default > 1.5 * w_other  # default: the large face; --face: the half-size one
