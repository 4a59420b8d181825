"""A few training steps of both sketch networks lower their losses (on the small character head,
so the test does not depend on the default model)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from avatars.sketch.fine import DEPTH_SCALE_MM, FineNet
from avatars.sketch.heads import HeadConfig
from avatars.sketch.train import TrainConfig, detail_examples, fine_examples, make_drawings, train_coarse, train_fine


@pytest.fixture(scope="module")
def drawings(character_model):
    # No character heads carried onto the character head itself (it has no ibug68 transfer anyway).
    return make_drawings(character_model, 32, 1, seed=11, style_seed=12, head_cfg=HeadConfig(character_p=0.0), log=None)


def test_coarse_and_fine_training_lower_their_losses(character_model, drawings):
    cfg = replace(TrainConfig(), coarse_steps=40, coarse_batch=16, fine_steps=40, fine_batch=4, detail_yaw=(40.0, 50.0))
    hist: list = []
    coarse = train_coarse(character_model, drawings, cfg, log=None, history=hist)
    assert np.mean(hist[-5:]) < 0.8 * np.mean(hist[:5]), (hist[:5], hist[-5:])
    x, y, m = fine_examples(character_model, coarse, drawings, 6, log=None)
    xd, yd, md = detail_examples(character_model, coarse, drawings, 6, cfg.detail_yaw, seed=3, log=None)
    assert x.shape == xd.shape == (6, 8, 128, 128) and y.shape == yd.shape == (6, 4, 128, 128)
    # A side view sees the head elsewhere on the page than the front does.
    assert not torch.equal(m, md) and bool(md.any())
    x, y, m = torch.cat((x, xd)), torch.cat((y, yd)), torch.cat((m, md))

    def depth_l1(net) -> float:  # mm, over every example's mask
        with torch.no_grad():
            return float(((net(x)[:, 0] - y[:, 0]).abs() * m).sum() / m.sum()) * DEPTH_SCALE_MM

    before = depth_l1(FineNet().eval())  # the untrained network predicts no change
    # 160 steps: 80 took the depth error 12 % lower on one machine and 20 %+ on another.
    net = train_fine(x, y, m, replace(cfg, fine_steps=160), log=None)
    assert depth_l1(net) < 0.8 * before, (before, depth_l1(net))
