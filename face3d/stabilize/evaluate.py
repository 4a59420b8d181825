"""Evaluation of stabilizers on held-out synthetic pairs and performances.

Errors, per pair or frame (the transform maps the source/reference skull onto the target's):

- rotation error: geodesic angle between predicted and true rotation, degrees;
- translation error: distance between where the two transforms send the source's head joint, mm
  (a translation error measured at the head, not at an arbitrary origin);
- skull RMSE: RMS distance between the source's ``scalp_back`` vertices mapped by the predicted and
  by the true transform, mm (those vertices are never an input to any method);
- jitter (performances): RMS over skull vertices of the frame-to-frame change of the residual
  skull displacement after stabilization, mm.

Tables report the median and the 95th percentile of each.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import Tensor

from face3d.geometry.rotations import rotation_angle_deg
from face3d.models.base import MorphableModel
from face3d.stabilize.align import apply_transform, invert_transform
from face3d.stabilize.api import Stabilizer
from face3d.stabilize.synth import SynthConfig, sample_pairs, sample_performances, skull_points


@dataclass(frozen=True)
class EvalConfig:
    """Held-out evaluation sizes. ``seed`` must differ from the training seed (training uses
    small seeds; the default here is far from them)."""

    n_pairs: int = 512
    n_sequences: int = 4
    n_frames: int = 100
    seed: int = 1_000_003
    synth: SynthConfig = field(default_factory=SynthConfig)


def transform_errors(pred: Tensor, true: Tensor, skull: Tensor, head: Tensor) -> dict[str, Tensor]:
    """Per-pair errors of predicted vs true (B, 4, 4) transforms.

    ``skull`` (B, N, 3) source skull vertices, ``head`` (B, 3) source head joint (mm).
    Returns ``rot_deg``, ``trans_mm``, ``skull_rmse_mm``, each (B,) float64.
    """
    pred, true = pred.double(), true.double()
    rot = rotation_angle_deg(pred[:, :3, :3], true[:, :3, :3])
    c = head.double()[:, None]
    trans = (apply_transform(pred, c) - apply_transform(true, c)).norm(dim=-1)[:, 0]
    d = apply_transform(pred, skull.double()) - apply_transform(true, skull.double())
    rmse = d.pow(2).sum(-1).mean(-1).sqrt()
    return {"rot_deg": rot, "trans_mm": trans, "skull_rmse_mm": rmse}


def sequence_jitter(pred: Tensor, true: Tensor, skull_ref: Tensor) -> Tensor:
    """(T, 4, 4) predicted and true reference-to-frame transforms and (N, 3) reference skull
    vertices -> (T-1,) frame-to-frame jitter in mm (see the module docstring)."""
    x = skull_ref.double()[None].expand(len(pred), -1, -1)
    resid = apply_transform(invert_transform(pred.double()) @ true.double(), x) - x  # (T, N, 3)
    return (resid[1:] - resid[:-1]).pow(2).sum(-1).mean(-1).sqrt()


def _stats(x: Tensor) -> tuple[float, float]:
    x = x.double()
    return float(x.median()), float(torch.quantile(x, 0.95))


def evaluate(model: MorphableModel, stabilizers: dict[str, Stabilizer], cfg: EvalConfig = EvalConfig()) -> list[dict]:
    """Run every stabilizer on the same held-out pairs and performances.

    Returns one row per (set, method): ``set`` ("pairs" or "performances"), ``method``, and
    ``(median, p95)`` tuples for ``rot_deg``, ``trans_mm``, ``skull_rmse_mm``, ``jitter_mm``
    (performances only), plus ``ms_per_pair``.
    """
    model = model.float().eval()
    sk = skull_points(model)
    pairs = sample_pairs(model, cfg.n_pairs, cfg.synth, cfg.seed)
    perf = sample_performances(model, cfg.n_sequences, cfg.n_frames, cfg.synth, cfg.seed + 1)
    T_true_seq = perf.relative_to(0)  # (S, T, 4, 4)
    rows = []
    for name, st in stabilizers.items():
        t0 = time.perf_counter()
        pred = st.estimate(pairs.source, pairs.target)
        dt = time.perf_counter() - t0
        e = transform_errors(pred, pairs.transform, pairs.source_clean[:, sk], pairs.source_head)
        rows.append({"set": "pairs", "method": name, **{k: _stats(v) for k, v in e.items()},
                     "jitter_mm": None, "ms_per_pair": 1000 * dt / cfg.n_pairs})
        S, T = perf.frames.shape[:2]
        ref = perf.frames[:, :1].expand(-1, T, -1, -1).reshape(S * T, *perf.frames.shape[2:])
        t0 = time.perf_counter()
        pred = st.estimate(ref, perf.frames.reshape(S * T, *perf.frames.shape[2:])).reshape(S, T, 4, 4)
        dt = time.perf_counter() - t0
        skull_ref = perf.clean[:, 0][:, sk]
        e = transform_errors(pred[:, 1:].flatten(0, 1), T_true_seq[:, 1:].flatten(0, 1),
                             skull_ref[:, None].expand(-1, T - 1, -1, -1).flatten(0, 1),
                             perf.head[:, :1].expand(-1, T - 1, -1).flatten(0, 1))
        jit = torch.cat([sequence_jitter(pred[s], T_true_seq[s], skull_ref[s]) for s in range(S)])
        rows.append({"set": "performances", "method": name, **{k: _stats(v) for k, v in e.items()},
                     "jitter_mm": _stats(jit), "ms_per_pair": 1000 * dt / (S * T)})
    return rows


def markdown_table(rows: list[dict]) -> str:
    """Rows from :func:`evaluate` -> a Markdown table (median / p95 in each cell)."""
    head = ("| set | method | rotation error (deg) | translation error (mm) | skull RMSE (mm) | "
            "jitter (mm) | ms / pair |\n|---|---|---|---|---|---|---|")
    f = lambda v, p=3: "–" if v is None else f"{v[0]:.{p}f} / {v[1]:.{p}f}"  # noqa: E731
    lines = [head]
    for r in rows:
        lines.append(f"| {r['set']} | {r['method']} | {f(r['rot_deg'])} | {f(r['trans_mm'])} | "
                     f"{f(r['skull_rmse_mm'])} | {f(r['jitter_mm'])} | {r['ms_per_pair']:.3f} |")
    return "\n".join(lines)
