"""Held-out evaluation: PSNR and SSIM of portraits and of the textured-3DMM baseline.

Frames ``[n_train, T)`` of a prepared clip are rendered at ``size`` px with their tracked
expression and pose (appearance code: the mean of the training codes) and compared with the
video frames: PSNR over the whole frame and over the head region (the foreground mask dilated
by 4 % of the image), SSIM over the whole frame (scikit-image, Gaussian window). The baseline
(and a portrait trained without a backdrop layer) is composited over the fixed median background
of the training frames; a portrait with a backdrop layer renders its own torso and background at
the frame's pose (what it would show when re-animated).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from avatars.portrait.baseline import render_baseline, texture_from_frames
from avatars.portrait.data import PortraitData, background_image


@dataclass
class ClipScores:
    """Mean scores over the held-out frames, per method: ``psnr``, ``psnr_head``, ``ssim``
    (dicts name -> float), ``frames`` evaluated, ``seconds_per_frame`` per method, and the
    per-frame renders of the first few frames (``examples``: name -> list of (S, S, 3) uint8)."""

    psnr: dict = field(default_factory=dict)
    psnr_head: dict = field(default_factory=dict)
    ssim: dict = field(default_factory=dict)
    frames: int = 0
    seconds_per_frame: dict = field(default_factory=dict)
    examples: dict = field(default_factory=dict)


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    d = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    if mask is not None:
        d = d[mask]
    mse = float(d.mean())
    return float("inf") if mse == 0 else -10 * math.log10(mse)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    return float(structural_similarity(a, b, channel_axis=2, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False))


def head_region(mask: np.ndarray, frac: float = 0.04) -> np.ndarray:
    from scipy import ndimage

    it = max(1, int(round(frac * mask.shape[0])))
    return ndimage.binary_dilation(mask > 0.5, iterations=it)


def evaluate_clip(data: PortraitData, portraits: dict, model=None, size: int = 128, frames=None,
                  n_examples: int = 4, baseline: bool = True) -> ClipScores:
    """Scores of ``portraits`` (name -> :class:`~avatars.portrait.model.Portrait`) and the
    textured-3DMM baseline on ``frames`` (default: the held-out ones)."""
    import face3d

    model = model or face3d.load_model(data.model)
    d = data.resized(size)
    ids = list(range(d.n_train, d.n_frames) if frames is None else frames)
    if not ids:
        raise ValueError("evaluate: no held-out frames (n_train equals the frame count)")
    bg = torch.from_numpy(background_image(d))
    res = ClipScores(frames=len(ids))
    renders: dict = {}
    if baseline:
        colors = texture_from_frames(model, d)
        renders["mesh"] = lambda i: render_baseline(model, d, colors, i, bg)
    cam = d.camera()
    for name, p in portraits.items():
        def f(i, p=p):
            prm = d.params(i)
            return p.render_frame(prm["expression"], prm["jaw"], prm["rotation"], prm["translation"], cam,
                                  background=None if p.backdrop is not None else bg)["rgb"]
        renders[name] = f
    for name, fn in renders.items():
        ps, ph, ss = [], [], []
        ex = []
        t0 = time.time()
        for k, i in enumerate(ids):
            img = fn(i).cpu().numpy().astype(np.float64)
            gt = d.frames[i].astype(np.float64) / 255
            ps.append(psnr(img, gt))
            ph.append(psnr(img, gt, head_region(d.masks[i])))
            ss.append(ssim(img, gt))
            if k < n_examples:
                ex.append((img * 255).round().clip(0, 255).astype(np.uint8))
        res.seconds_per_frame[name] = (time.time() - t0) / len(ids)
        res.psnr[name], res.psnr_head[name], res.ssim[name] = float(np.mean(ps)), float(np.mean(ph)), float(np.mean(ss))
        res.examples[name] = ex
    res.examples["truth"] = [d.frames[i] for i in ids[:n_examples]]
    return res


def comparison_figure(scores: ClipScores, path, names=("truth", "mesh", "ours"), labels=None, scale: int = 2):
    """A PNG grid: one row per example frame, columns ``names`` (ground truth, baseline, ours)."""
    from PIL import Image, ImageDraw

    from face3d.fileio import atomic_write_bytes
    from face3d.viz import png_bytes

    names = [n for n in names if n in scores.examples]
    labels = labels or {"truth": "video (held out)", "mesh": "textured 3DMM", "ours": "portrait",
                        "no_normals": "no normals"}
    rows = []
    for k in range(len(scores.examples["truth"])):
        rows.append(np.concatenate([scores.examples[n][k] for n in names], 1))
    grid = np.concatenate(rows, 0)
    im = Image.fromarray(grid).resize((grid.shape[1] * scale, grid.shape[0] * scale), Image.NEAREST)
    head = Image.new("RGB", (im.width, 22), (255, 255, 255))
    dr = ImageDraw.Draw(head)
    w = im.width // len(names)
    for j, n in enumerate(names):
        txt = labels.get(n, n)
        if n in scores.psnr:
            txt += f"  {scores.psnr[n]:.2f} dB"
        dr.text((j * w + 6, 5), txt, fill=(0, 0, 0))
    out = Image.new("RGB", (im.width, im.height + head.height), (255, 255, 255))
    out.paste(head, (0, 0))
    out.paste(im, (0, head.height))
    atomic_write_bytes(path, png_bytes(np.asarray(out)))
    return path
