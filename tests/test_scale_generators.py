"""`--ray` for the training-set generators against the single-process generation, and Ray staying optional.

The sketch drawings are deterministic per chunk, so the Ray set must be byte-for-byte the
single-process one. espeak-ng is not bit-exact from call to call (a few samples of audio), so the
speech corpus is compared for what is deterministic (texts, voices, phones, the examples built
from one given set of utterances) and within a tolerance for the rest.
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from .test_scale import _BLOCK_RAY, ROOT, ray_local  # noqa: F401  (the module's one local Ray)


def test_map_in_order_on_ray_keeps_item_order(ray_local):
    from face3d.scale import map_in_order

    from .test_scale import _add_pid, _setup_pid

    got = map_in_order(_add_pid, list(range(9)), _setup_pid, (5,), ray="local", progress=False)
    assert [g[0] for g in got] == [5 + i for i in range(9)]
    assert map_in_order(_add_pid, [], _setup_pid, (5,), ray="local") == []


def test_sketch_drawings_on_ray_are_the_single_process_ones(builtin_model, ray_local):
    from avatars.sketch.train import make_drawings

    # 3 chunks of 4 heads (the last one short), 2 styles each.
    args = (builtin_model, 10, 2, 7, 8)
    single = make_drawings(*args, batch=4, log=None)
    ray = make_drawings(*args, batch=4, log=None, ray="local")
    for k in ("ink", "head", "identity", "expression", "neck", "vertices"):
        a, b = getattr(single, k), getattr(ray, k)
        assert a.dtype == b.dtype and torch.equal(a, b), k
    assert single.ink.shape == (20, 3, 128, 128)
    assert single.head.tolist() == [0, 1, 2, 3] * 2 + [4, 5, 6, 7] * 2 + [8, 9] * 2
    # Chunks draw different heads (a chunk seeded like another would repeat it).
    assert not torch.equal(single.identity[0], single.identity[4])
    assert not torch.equal(single.ink[0], single.ink[4])
