"""The before/after picture in the docs: one synthetic performance, raw and stabilized.

    python -m face3d.stabilize.figure --out docs/stabilization_before_after.png [--model builtin]

Top row: input frames (the head moves). Middle row: the same frames stabilized by the learned
method onto frame 0 (the head stays still, the expression changes); the back of the skull, never
seen by the stabilizer, is tinted blue. Bottom: per-frame skull RMSE (mm) after stabilization for
each method.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

_COLORS = {"procrustes": (200, 80, 60), "upper": (230, 160, 30), "icp": (140, 90, 200), "learned": (40, 130, 60)}


def _plot(curves: dict[str, np.ndarray], width: int, height: int = 220) -> np.ndarray:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(img)
    left, right, top, bottom = 60, width - 190, 15, height - 35
    # Scale to the second-worst method so the good ones are readable; the worst may go off scale.
    tops = sorted(float(np.percentile(c, 99)) for c in curves.values())
    ymax = (tops[-2] if len(tops) > 1 else tops[-1]) * 1.3
    n = len(next(iter(curves.values())))
    d.rectangle([left, top, right, bottom], outline=(0, 0, 0))
    for k in range(5):
        v = ymax * k / 4
        y = bottom - (bottom - top) * k / 4
        d.line([left - 4, y, left, y], fill=(0, 0, 0))
        d.text((5, y - 6), f"{v:.1f}", fill=(0, 0, 0))
    d.text((left, bottom + 8), f"frame (0 .. {n - 1})", fill=(0, 0, 0))
    d.text((5, bottom + 20), "skull RMSE after stabilization, mm", fill=(0, 0, 0))
    for i, (name, c) in enumerate(curves.items()):
        xs = left + (right - left) * np.arange(n) / max(n - 1, 1)
        ys = bottom - (bottom - top) * np.clip(c / ymax, 0, 1)
        d.line(list(zip(xs.tolist(), ys.tolist())), fill=_COLORS.get(name, (0, 0, 0)), width=2)
        off = " (off scale)" if np.percentile(c, 99) > ymax else ""
        d.text((right + 10, top + 16 * i), f"{name}: median {np.median(c):.2f}{off}", fill=_COLORS.get(name, (0, 0, 0)))
    return np.asarray(img)


def make_figure(model_spec: str = "builtin", weights: str | None = None, n_frames: int = 90, shown: int = 6,
                seed: int = 2024, size: int = 200) -> np.ndarray:
    """Render the figure; returns an (H, W, 3) uint8 image."""
    from face3d.models import load_model
    from face3d.stabilize.align import apply_transform, invert_transform
    from face3d.stabilize.api import load_stabilizer
    from face3d.stabilize.synth import SynthConfig, sample_performances, skull_points
    from face3d.viz import PreviewConfig, grid, head_framing, render_preview

    model = load_model(model_spec)
    perf = sample_performances(model, 1, n_frames, SynthConfig(), seed)
    frames, clean = perf.frames[0], perf.clean[0]
    true = perf.relative_to(0)[0]
    sk = skull_points(model)
    curves, T_learned = {}, None
    for m in ("procrustes", "upper", "icp", "learned"):
        st = load_stabilizer(m, model_spec if m == "learned" else model, weights)
        T = st.estimate(frames[:1].expand(n_frames, -1, -1), frames)
        x = clean[:1, sk].expand(n_frames, -1, -1)
        curves[m] = (apply_transform(T, x) - apply_transform(true, x)).pow(2).sum(-1).mean(-1).sqrt().numpy()
        if m == "learned":
            T_learned = T
    stab = apply_transform(invert_transform(T_learned), clean)
    idx = np.linspace(0, n_frames - 1, shown).round().astype(int)
    colors = torch.tensor((0.80, 0.66, 0.58)).repeat(model.n_vertices, 1) if model.albedo is None else model.albedo.clone()
    colors[sk] = torch.tensor((0.45, 0.6, 0.85))
    center, radius = head_framing(model, clean[0], fill=0.6)  # room for the head's motion
    cfg = PreviewConfig(size=size)
    imgs, labels = [], []
    for row, verts in (("input", clean), ("stabilized", stab)):
        for i in idx:
            imgs.append(render_preview(verts[i], model.faces, (55.0,), cfg, center=center, radius=radius,
                                       vertex_colors=colors)[0])
            labels.append(f"{row} {i}")
    top = grid(imgs, shown, labels)
    plot = _plot(curves, top.shape[1])
    return np.concatenate([top, plot], 0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Render the stabilization before/after figure.")
    ap.add_argument("--out", default="docs/stabilization_before_after.png")
    ap.add_argument("--model", default="builtin")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--frames", type=int, default=90)
    args = ap.parse_args(argv)
    from face3d.viz import save_png

    img = make_figure(args.model, args.weights, args.frames)
    save_png(args.out, img)
    print(f"wrote {args.out} {img.shape[1]}x{img.shape[0]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
