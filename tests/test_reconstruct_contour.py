"""Sliding jaw contour and the robust landmark loss on the default ("builtin") head, landmark stage only."""
from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from face3d.reconstruct.evaluate import contour_truth
from face3d.reconstruct.fitter import FitConfig, fit
from face3d.reconstruct.synthetic import _euler

S = 256
FOCAL = 500.0
FAST = FitConfig(photo_steps=(), shape_steps=(), fit_focal=False, landmark_steps=80, rigid_iters=40)


@pytest.fixture(scope="module")
def head():
    from face3d.models import load_model

    torch.manual_seed(0)
    model = load_model("builtin")
    ident = torch.randn(2, model.n_identity, generator=torch.Generator().manual_seed(0)) * 0.8
    return model, ident


def _scene(model, ident, yaw_deg, pitch_deg):
    rot = _euler(torch.tensor(yaw_deg) * math.pi / 180, torch.tensor(pitch_deg) * math.pi / 180, torch.zeros(2))
    out = model(identity=ident, rotation=rot, translation=torch.tensor([[0.0, 40.0, -700.0]] * 2))
    truth = contour_truth(model, out.vertices, torch.full((2,), FOCAL), rot, S, S)
    return truth, (truth[:, 36] - truth[:, 45]).norm(dim=-1)


def _errors(model, r, truth, iod):
    pred = contour_truth(model, r.vertices, r.focal, r.rotation, S, S)
    return (pred - truth).norm(dim=-1) / iod[:, None]  # (2, 68) in outer-eye units


def test_sliding_contour_keeps_the_jaw_of_a_turned_head(head):
    """Heads turned 45 degrees, landmarks as a detector places them (jaw on the silhouette) + 1 %
    noise, true identity given: the sliding contour fits the jaw within 1 % of the outer-eye
    distance; tying it to fixed vertices leaves it about twice as far off. Measured on the
    ICT-FaceKit default head: 0.58 / 0.40 % sliding, 1.16 / 0.98 % fixed (at 55 degrees:
    0.32 / 0.48 % vs 1.56 / 1.20 %)."""
    model, ident = head
    truth, iod = _scene(model, ident, [45.0, -45.0], [5.0, -5.0])
    noisy = truth + torch.randn(truth.shape, generator=torch.Generator().manual_seed(1)) * 0.01 * iod[:, None, None]
    jaw = {}
    for mode in ("sliding", "fixed"):
        r = fit(model, noisy, identity_init=ident, cfg=replace(FAST, contour=mode),
                width=S, height=S, focal_init=FOCAL)
        jaw[mode] = _errors(model, r, truth, iod)[:, :17].mean(-1)
    assert float(jaw["sliding"].max()) < 0.01, jaw
    assert float(jaw["fixed"].mean()) > 1.8 * float(jaw["sliding"].mean()), jaw


def test_robust_loss_ignores_one_bad_landmark(head):
    """One mouth corner misplaced by 0.8 outer-eye distances: with the Cauchy loss the other 67
    landmarks stay within 1 %; plain squared errors bend the face. Measured on the ICT-FaceKit
    default head: 0.27 / 0.47 % robust, 2.2 / 2.4 % squared."""
    model, ident = head
    truth, iod = _scene(model, ident, [10.0, -10.0], [0.0, 0.0])
    bad = truth.clone()
    bad[:, 48, 1] += 0.8 * iod
    keep = torch.ones(68, dtype=torch.bool)
    keep[48] = False
    err = {}
    for robust in (0.1, 0.0):
        r = fit(model, bad, identity_init=ident, cfg=replace(FAST, landmark_robust=robust),
                width=S, height=S, focal_init=FOCAL)
        err[robust] = _errors(model, r, truth, iod)[:, keep].mean(-1)
    assert float(err[0.1].max()) < 0.01, err
    assert float(err[0.0].min()) > 1.5 * float(err[0.1].max()), err


def test_sliding_contour_on_a_sub_model_matches_the_full_model(head):
    """The bands map onto restrict_model sub-models: the same posed head gives the same
    silhouette landmarks through the landmark sub-model as through the full mesh."""
    from face3d.reconstruct.camera import project
    from face3d.reconstruct.contour import SlidingContour
    from face3d.reconstruct.synthetic import restrict_model

    model, ident = head
    c = SlidingContour(model)
    sub = restrict_model(model, c.vertex_ids)[0]
    rot = _euler(torch.tensor([0.6, -0.3]), torch.tensor([0.1, 0.0]), torch.zeros(2))
    kw = dict(identity=ident, rotation=rot, translation=torch.tensor([[0.0, 0.0, -600.0]] * 2))
    f = torch.full((2,), FOCAL)
    pf = lambda x: project(x, f, S, S)  # noqa: E731
    full, part = model(**kw).vertices, sub(**kw).vertices
    iod = torch.full((2,), 60.0)
    a = c.slide(model, full, pf(model.landmark_positions(full)), pf, rot, iod)
    b = c.slide(sub, part, pf(sub.landmark_positions(part)), pf, rot, iod)
    assert torch.allclose(a, b, atol=1e-3)
    # The contour moved off the fixed vertices on the turned head (the far cheek's outline).
    assert float((a - pf(model.landmark_positions(full)))[0, :17].norm(dim=-1).max()) > 5.0
