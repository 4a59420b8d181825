"""Tracking: one identity for the clip, batches tied together, temporal smoothing."""
from __future__ import annotations

import numpy as np
import torch

from face3d.reconstruct.camera import project
from face3d.reconstruct.fitter import FitConfig
from face3d.reconstruct.track import TrackConfig, _fill_missing, track
from face3d.models.toy import toy_model


def _clip(model, T=8, noise=1.0, seed=0):
    """A slow head turn, landmarks + pixel noise; returns landmarks (T, 68, 2) and true yaw (T,)."""
    g = torch.Generator().manual_seed(seed)
    yaw = torch.linspace(-0.2, 0.2, T)
    rot = torch.stack([torch.zeros(T), yaw, torch.zeros(T)], -1)
    ident = torch.randn(1, model.n_identity, generator=g).expand(T, -1)
    out = model(identity=ident, rotation=rot, translation=torch.tensor([0.0, 60.0, -600.0]).expand(T, 3))
    lm = project(model.landmark_positions(out.vertices), torch.full((T,), 400.0), 128, 128)
    return (lm + noise * torch.randn(lm.shape, generator=g)).numpy(), yaw


def test_fill_missing_interpolates_linearly():
    lm = np.zeros((3, 68, 2))
    lm[0] = 1.0
    lm[2] = 3.0
    out = _fill_missing(lm, np.array([True, False, True]))
    assert np.allclose(out[1], 2.0)


def test_track_smooths_and_shares_identity():
    model = toy_model()
    lms, yaw = _clip(model)
    frames = [np.zeros((128, 128, 3), np.uint8)] * len(lms)
    # The clip's landmarks are the toy's fixed landmark vertices: fit them with the fixed contour.
    fit_cfg = FitConfig(rigid_iters=30, landmark_steps=50, photo_steps=(), fov_deg=2 * np.degrees(np.arctan(64 / 400)),
                        contour="fixed")
    smooth = track(model, frames, TrackConfig(batch=4, temporal=0.02, fit=fit_cfg), landmarks=lms)
    rough = track(model, frames, TrackConfig(batch=4, temporal=0.0, fit=fit_cfg), landmarks=lms)
    assert smooth.identity.shape == (model.n_identity,)
    # Second difference of yaw (jerk): the temporal term reduces it (0.021 -> 0.011 rad).
    jerk = lambda r: np.abs(np.diff(r.rotation[:, 1], 2)).mean()
    assert jerk(smooth) < 0.7 * jerk(rough), (jerk(smooth), jerk(rough))
    # And the turn is still followed (yaw within 3 degrees of the truth up to a constant; 1.4 measured).
    err = smooth.rotation[:, 1] - yaw.numpy()
    assert np.degrees(np.abs(err - err.mean()).max()) < 3.0
