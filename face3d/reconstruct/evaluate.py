"""Synthetic metric benchmark and held-out checks of the shape estimator.

``metric_benchmark``: held-out random heads of known metric shape (the morphable model's own
identities), posed and lit at random and rendered through :class:`face3d.render.Renderer`.
The "detector" is the model's projected ``ibug68`` landmarks plus Gaussian noise (dlib does not
fire reliably on untextured renders, so a real detector would measure dlib, not us). Each method's
neutral face is compared with the true neutral face by mean scan-to-mesh distance (mm) over the
face region, **without any alignment or scale** (metric error):

- ``mean_head``: the model's mean shape;
- ``landmark_fit``: landmark-only fitting from the mean head (no estimator, no image), standard
  N(0, 1) prior;
- ``estimator``: the learned estimator alone;
- ``estimator+fit`` (ours): the fitter started from the estimator's shape: landmark stage, then
  the photometric shape stage on the render (``photometric=False``: landmark stage only). The
  appearance stage (per-vertex albedo, identity fixed) is skipped: it cannot change the shape.

The renders give every head one skin colour (random per head) under random SH lighting: the
shape stage's uniform-albedo assumption holds exactly here, which is the favourable case for
shape from shading; real skin has freckles, make-up and brows.

Vertices are in correspondence, so "scan-to-mesh" uses the true mesh's face vertices as the scan
and the exact point-to-surface distance to the predicted mesh (:func:`face3d.reconstruct.now.point_mesh_distance`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch

from face3d.models.base import MorphableModel
from face3d.reconstruct.synthetic import SyntheticConfig, landmark_submodel, sample_batch


def estimator_holdout_error(model: MorphableModel, net, n: int = 512, seed: int = 999,
                            cfg: SyntheticConfig = SyntheticConfig()) -> dict:
    """Mean per-vertex neutral-face error (mm, face region, no alignment) of ``net`` and of the
    mean head on ``n`` held-out synthetic heads (seed disjoint from training's stream)."""
    from face3d.reconstruct.estimator import shape_error_mm

    g = torch.Generator().manual_seed(seed)
    b = sample_batch(landmark_submodel(model), n, cfg, g)
    with torch.no_grad():
        pred = net.predict(b.landmarks, b.visible)
        e = shape_error_mm(model, pred, b.identity)
        e0 = shape_error_mm(model, torch.zeros_like(pred), b.identity)
    return {"n": n, "seed": seed, "estimator_mm": float(e.mean()), "mean_head_mm": float(e0.mean())}


# MAP weight of the N(0, 1) identity prior against the fitter's landmark term (100 x mean squared
# error in outer-eye units) for landmark noise of sigma = 2 % of the outer-eye distance:
# 68 / (2 sigma^2) / 100 per unit of mean error vs 1/2 per squared std -> 0.5 / 850 ~ 6e-4.
BASELINE_IDENTITY_WEIGHT = 6e-4


@dataclass(frozen=True)
class MetricBenchConfig:
    """``n`` test heads (seed ``seed``), rendered at ``image_size`` px; ``noise`` landmark noise
    (fraction of the outer-eye distance); ``photometric``: run the fitter's photometric shape stage
    on the renders (default, as ``reconstruct`` does; False = landmarks only, faster);
    ``batch``: heads fitted together."""

    n: int = 20
    seed: int = 1234
    image_size: int = 256
    noise: float = 0.02
    photometric: bool = True
    batch: int = 5


def render_synthetic(model: MorphableModel, b, generator: torch.Generator, renderer=None) -> torch.Tensor:
    """Render the heads of a :class:`~face3d.reconstruct.synthetic.SyntheticBatch` with random skin
    colour and random SH lighting over a random flat background: (B, S, S, 3) float in [0, 1]."""
    from face3d.reconstruct.camera import make_camera
    from face3d.render import Renderer
    from face3d.render.lighting import SH_C0

    B, S = b.focal.shape[0], b.size
    g = generator
    out = model(identity=b.identity, expression=b.expression, jaw=b.jaw, rotation=b.rotation, translation=b.translation)
    skin = torch.tensor([0.75, 0.55, 0.45]) * (0.6 + 0.6 * torch.rand(B, 1, generator=g))
    skin = (skin + 0.05 * torch.randn(B, 3, generator=g)).clamp(0.05, 1)
    sh = torch.zeros(B, 9, 3)
    sh[:, 0] = (0.8 + 0.4 * torch.rand(B, 1, generator=g)) / SH_C0
    sh[:, 1:4] = (0.5 * torch.randn(B, 3, 1, generator=g)).expand(B, 3, 3)
    r = (renderer or Renderer())(out.vertices, model.faces, make_camera(b.focal, S, S),
                                 vertex_colors=skin[:, None].expand(B, model.n_vertices, 3), sh_coeffs=sh)
    bg = torch.rand(B, 1, 1, 3, generator=g)
    return (r.rgb + (1 - r.alpha) * bg).clamp(0, 1)


def neutral_face_error(model: MorphableModel, pred_identity: torch.Tensor, true_identity: torch.Tensor) -> torch.Tensor:
    """(B, n_id) predicted / true identities -> (B,) mean distance (mm) from the true neutral face
    region's vertices (the "scan") to the predicted neutral mesh's surface; no alignment, no scale."""
    from face3d.reconstruct.now import point_mesh_distance

    with torch.no_grad():
        vp = model(identity=pred_identity).vertices.double()
        vt = model(identity=true_identity).vertices.double()
    face = model.region("face")
    errs = [point_mesh_distance(vt[i, face], vp[i], model.faces)[0].mean() for i in range(vp.shape[0])]  # B meshes
    return torch.stack(errs).float()


def metric_benchmark(model: MorphableModel, cfg: MetricBenchConfig = MetricBenchConfig(),
                     estimator_path: str | None = None, progress: Callable[[str], None] | None = None) -> dict:
    """Run the synthetic metric benchmark (module docstring). Returns a dict with per-method
    ``mean_mm``/``median_mm``/``per_head_mm`` and timing."""
    from face3d.reconstruct.estimator import default_estimator, load_estimator
    from face3d.reconstruct.fitter import FitConfig, fit

    net = load_estimator(estimator_path, model) if estimator_path else default_estimator(model)
    if net is None:
        raise FileNotFoundError(f"no estimator weights for model {model.name!r}; pass estimator_path "
                                "(train with `face3d train-estimator`)")
    g = torch.Generator().manual_seed(cfg.seed)
    # Rendering draws from its own stream, so the heads are the same with and without images.
    g_render = torch.Generator().manual_seed(cfg.seed + 1)
    sub = landmark_submodel(model)
    syn = SyntheticConfig(image_size=cfg.image_size, noise=cfg.noise, dropout=0.0)
    fit_cfg = FitConfig(photo_steps=()) if cfg.photometric else FitConfig(photo_steps=(), shape_steps=())
    # The baseline fits shape to the landmarks alone, from the mean head under the standard
    # N(0, 1) prior weighted as a MAP estimate for the landmark noise (BASELINE_IDENTITY_WEIGHT).
    base_cfg = FitConfig(photo_steps=(), shape_steps=(), w_identity=BASELINE_IDENTITY_WEIGHT)
    errs: dict[str, list] = {"mean_head": [], "landmark_fit": [], "estimator": [], "estimator+fit": []}
    t0 = time.time()
    for s in range(0, cfg.n, cfg.batch):
        B = min(cfg.batch, cfg.n - s)
        b = sample_batch(sub, B, syn, g)
        imgs = render_synthetic(model, b, g_render) if cfg.photometric else None
        size = dict(width=cfg.image_size, height=cfg.image_size)
        with torch.no_grad():
            est = net.predict(b.landmarks)
        r_base = fit(model, b.landmarks, identity_init=None, cfg=base_cfg, **size)
        r_ours = fit(model, b.landmarks, imgs, identity_init=est, cfg=fit_cfg, **size)
        errs["mean_head"].append(neutral_face_error(model, torch.zeros_like(est), b.identity))
        errs["landmark_fit"].append(neutral_face_error(model, r_base.identity, b.identity))
        errs["estimator"].append(neutral_face_error(model, est, b.identity))
        errs["estimator+fit"].append(neutral_face_error(model, r_ours.identity, b.identity))
        if progress is not None:
            progress(f"{s + B}/{cfg.n} heads, " + ", ".join(f"{k} {torch.cat(v).mean():.2f} mm" for k, v in errs.items()))
    out = {}
    for k, v in errs.items():
        e = torch.cat(v)
        out[k] = {"mean_mm": float(e.mean()), "median_mm": float(e.median()), "per_head_mm": e.tolist()}
    base = out["mean_head"]["mean_mm"]
    return {
        "methods": out, "n": cfg.n, "seed": cfg.seed, "photometric": cfg.photometric, "noise": cfg.noise,
        "ours_vs_mean_head_reduction": 1 - out["estimator+fit"]["mean_mm"] / base,
        "seconds": time.time() - t0,
        "note": "landmarks = projected model landmarks + noise (not dlib); errors without alignment or scale",
    }
