"""Camera convention, crops, measurements and the analysis-by-synthesis fitter (toy head)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from face3d.geometry.rotations import axis_angle_to_matrix, rotation_angle_deg
from face3d.reconstruct.camera import project
from face3d.reconstruct.fitter import FitConfig, face_crops, fit
from face3d.reconstruct.measure import measure_landmarks
from face3d.reconstruct.synthetic import SyntheticConfig, landmark_submodel, sample_batch
from face3d.models.toy import toy_model


@pytest.fixture(scope="module")
def toy():
    return toy_model()


def test_camera_convention():
    # A point 10 mm right (+x) and 20 mm up (+y) of the axis, 500 mm in front of the camera.
    p = torch.tensor([[[10.0, 20.0, -500.0]]])
    uv = project(p, torch.tensor([1000.0]), 101, 51)
    assert torch.allclose(uv, torch.tensor([[[50 + 20.0, 25 - 40.0]]]), atol=1e-4)


def test_face_crops_map_pixels_consistently():
    H, W = 60, 80
    img = torch.zeros(1, H, W, 3)
    img[0, 30, 50] = 1.0  # one bright pixel at x=50, y=30
    lm = torch.tensor([40.0, 20.0]).repeat(1, 68, 1)
    lm[0, 1::2] = torch.tensor([60.0, 40.0])
    crops, valid, edge, k = face_crops(img, lm, size=32, margin=1.6)
    # Photo pixel x maps to (x - edge) k - 0.5 in the crop; the bright pixel's mass lands there.
    cx = (50 - edge[0, 0]) * k[0] - 0.5
    cy = (30 - edge[0, 1]) * k[0] - 0.5
    ys, xs = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    wgt = crops[0, ..., 0]
    assert abs(float((wgt * xs).sum() / wgt.sum()) - float(cx)) < 0.35
    assert abs(float((wgt * ys).sum() / wgt.sum()) - float(cy)) < 0.35
    assert float(valid.min()) == 1.0  # the crop stays inside the photo


def test_measure_landmarks_known_distances():
    lm = torch.zeros(1, 68, 3)
    lm[0, 36:42, 0] = -32.0
    lm[0, 42:48, 0] = 31.0
    lm[0, 48, 0], lm[0, 54, 0] = -25.0, 25.0
    lm[0, 27, 1], lm[0, 33, 1] = 0.0, -48.0
    m = measure_landmarks(lm)
    assert abs(float(m["interpupillary_distance"][0]) - 63.0) < 1e-4
    assert abs(float(m["mouth_width"][0]) - 50.0) < 1e-4
    assert abs(float(m["nose_length"][0]) - 48.0) < 1e-4


def test_landmark_fit_recovers_pose(toy):
    b = sample_batch(landmark_submodel(toy), 3, SyntheticConfig(noise=0.005, dropout=0.0, fov=(40.0, 40.0001)),
                     torch.Generator().manual_seed(1))
    # sample_batch's landmarks are the model's fixed landmark vertices (contour included), so
    # fit them with the fixed contour.
    r = fit(toy, b.landmarks, identity_init=b.identity, width=b.size, height=b.size,
            cfg=FitConfig(photo_steps=(), fit_focal=False, landmark_steps=100, contour="fixed"))
    ang = rotation_angle_deg(axis_angle_to_matrix(r.rotation), axis_angle_to_matrix(b.rotation))
    assert float(ang.max()) < 2.0, ang
    assert float(r.nme(b.clean).max()) < 0.02


def test_photometric_fit_of_rendered_head(toy):
    """A rendered toy head (random pose, lighting): pose within 3 degrees, landmarks within 2 %."""
    from face3d.reconstruct.evaluate import render_synthetic

    g = torch.Generator().manual_seed(5)
    cfg_s = SyntheticConfig(image_size=64, noise=0.01, dropout=0.0, fov=(30.0, 30.0001), face_frac=(0.5, 0.6))
    b = sample_batch(landmark_submodel(toy), 2, cfg_s, g)
    imgs = render_synthetic(toy, b, g)
    r = fit(toy, b.landmarks, imgs, identity_init=b.identity,
            cfg=FitConfig(photo_steps=(15,), photo_sizes=(48,), shape_steps=(), landmark_steps=80, fit_focal=False,
                          fov_deg=30.0, contour="fixed"))
    ang = rotation_angle_deg(axis_angle_to_matrix(r.rotation), axis_angle_to_matrix(b.rotation))
    assert float(ang.max()) < 3.0, ang
    assert float(r.nme(b.clean).max()) < 0.02
    # The photometric stage lowered the image error and fitted a skin-like albedo.
    h = r.history["photo_48"]
    assert h[-1] < h[0]
    assert r.albedo is not None and r.albedo.shape == (2, toy.n_vertices, 3)


class _FixedDetector:
    """A FaceDetector returning given landmarks (shows that any detector plugs in)."""

    def __init__(self, landmarks):
        self.landmarks = landmarks

    def detect(self, image):
        from face3d.reconstruct.detect import Detection

        if self.landmarks is None:
            return []
        lo, hi = self.landmarks.min(0), self.landmarks.max(0)
        return [Detection(box=np.concatenate([lo, hi]), score=1.0, landmarks68=self.landmarks)]


def test_reconstruct_with_a_plugged_in_detector(toy):
    from face3d.reconstruct.api import NoFaceError, ReconstructConfig, reconstruct
    from face3d.reconstruct.detect import FaceDetector

    b = sample_batch(landmark_submodel(toy), 1, SyntheticConfig(noise=0.0, dropout=0.0, image_size=96),
                     torch.Generator().manual_seed(2))
    det = _FixedDetector(b.clean[0].double().numpy())
    assert isinstance(det, FaceDetector)
    cfg = ReconstructConfig(use_estimator=False, fit=FitConfig(photo_steps=(), shape_steps=(), landmark_steps=60))
    img = np.zeros((96, 96, 3), np.uint8)
    r = reconstruct(img, model=toy, detector=det, config=cfg)
    iod = np.linalg.norm(b.clean[0, 36] - b.clean[0, 45])
    assert np.linalg.norm(r.landmarks2d - b.clean[0].numpy(), axis=1).mean() / iod < 0.03
    assert r.vertices.shape == (toy.n_vertices, 3) and r.faces.shape == (toy.n_faces, 3)
    assert 50 < r.measurements["interpupillary_distance"] < 90  # mm, the toy's eyes are ~65 mm apart
    with pytest.raises(NoFaceError):
        reconstruct(img, model=toy, detector=_FixedDetector(None), config=cfg)


def _render_scene(model, identity, size=96, focal=300.0, dist=700.0):
    """One head at ``identity``, slightly turned, lit from the upper left: (image, clean landmarks)."""
    from face3d.reconstruct.camera import make_camera
    from face3d.render import Renderer
    from face3d.render.lighting import SH_C0

    rot = torch.tensor([[0.05, 0.15, 0.0]])
    out = model(identity=identity, rotation=rot, translation=torch.tensor([[0.0, 30.0, -dist]]))
    sh = torch.zeros(1, 9, 3)
    sh[:, 0] = 0.9 / SH_C0
    sh[:, 1:4] = torch.tensor([0.5, 0.4, 0.3])[:, None]  # SH band 1 (y, z, x): light from above/left
    f = torch.tensor([focal])
    r = Renderer()(out.vertices, model.faces, make_camera(f, size, size),
                   vertex_colors=torch.tensor([0.8, 0.6, 0.5]).expand(1, model.n_vertices, 3), sh_coeffs=sh)
    img = r.rgb + (1 - r.alpha) * 0.2
    lm = project(model.landmark_positions(out.vertices), f, size, size)
    return img.clamp(0, 1), lm


def test_shape_stage_recovers_depth_from_shading(toy):
    """Near-frontal landmarks barely show depth; the photometric shape stage (uniform skin colour,
    SH lighting) recovers the toy's depth and nose modes from shading, landmarks alone do not."""
    from face3d.reconstruct.estimator import shape_error_mm

    true = torch.zeros(1, toy.n_identity)
    true[0, 3], true[0, 4] = -1.5, 1.5  # shallower head, longer nose
    img, lm = _render_scene(toy, true)
    # The scene's landmarks are the toy's fixed landmark vertices: fit them with the fixed contour.
    base = FitConfig(landmark_steps=60, photo_steps=(), fit_focal=False, fov_deg=2 * np.degrees(np.arctan(48 / 300)),
                     shape_sizes=(64,), shape_steps=(150,), shape_warmup=10, w_identity_shape=1e-3, contour="fixed")
    ids = torch.arange(toy.n_vertices)[toy.region("face")]
    start = torch.zeros(1, toy.n_identity)
    e0 = float(shape_error_mm(toy, start, true, ids))
    lm_only = fit(toy, lm, img, identity_init=start, cfg=replace(base, shape_steps=()))
    shaded = fit(toy, lm, img, identity_init=start, cfg=base)
    e_lm = float(shape_error_mm(toy, lm_only.identity, true, ids))
    e_sh = float(shape_error_mm(toy, shaded.identity, true, ids))
    assert e_lm > 0.8 * e0, (e0, e_lm)  # the strong prior keeps the landmark-only shape at the start
    assert e_sh < 0.5 * e0, (e0, e_sh)
    h = shaded.history["shape_64"]
    assert h[-1] < 0.7 * h[0]

