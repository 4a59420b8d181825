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

import math
import time
from dataclasses import dataclass, replace
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
    # The synthetic landmarks here are the model's fixed landmark vertices (contour included), not
    # silhouette points as a detector's, so fit them with the fixed contour.
    fit_cfg = FitConfig(photo_steps=(), contour="fixed")
    if not cfg.photometric:
        fit_cfg = replace(fit_cfg, shape_steps=())
    # The baseline fits shape to the landmarks alone, from the mean head under the standard
    # N(0, 1) prior weighted as a MAP estimate for the landmark noise (BASELINE_IDENTITY_WEIGHT).
    base_cfg = FitConfig(photo_steps=(), shape_steps=(), w_identity=BASELINE_IDENTITY_WEIGHT, contour="fixed")
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


# ----------------------------------------------------------------------------- landmark accuracy
LANDMARK_SUBSETS = ("frontal", "turned", "small", "tight_crop")


@dataclass(frozen=True)
class LandmarkBenchConfig:
    """Synthetic landmark-accuracy benchmark (:func:`landmark_benchmark`).

    ``n`` heads per subset (seed ``seed``); ``noise``: detector-like landmark noise std, fraction
    of the outer-eye distance, plus ``noise_px`` px (a detector's pixel quantisation, which
    dominates on small faces). Subsets (yaw ranges in degrees, both directions; pitch
    ``±pitch``, roll ``±roll``):

    - ``frontal``: yaw 0-15, face 40-60 % of a ``image_size`` image;
    - ``turned``: yaw 30-60, same sizes;
    - ``small``: yaw 0-30, eye-to-chin ~``small_px`` px;
    - ``tight_crop``: yaw 0-30, the head anywhere in a 2x larger photo, then the image cropped to
      ``crop`` x the landmarks' box (so the principal point is not the crop's centre, which the
      fitter assumes).

    ``use_estimator``: start the fit from the model's default estimator (as ``reconstruct`` does)
    when it has one; else, or False, from the mean head.
    """

    n: int = 12
    seed: int = 77
    image_size: int = 256
    noise: float = 0.02
    noise_px: float = 0.5
    pitch: float = 10.0
    roll: float = 5.0
    small_px: float = 45.0
    crop: float = 1.25
    use_estimator: bool = True


def contour_truth(model: MorphableModel, vertices: torch.Tensor, focal: torch.Tensor, rotation: torch.Tensor,
                  width: int, height: int, contour=None) -> torch.Tensor:
    """(B, V, 3) posed full-model vertices -> (B, 68, 2) px iBUG landmarks as an annotator places
    them: the model's landmark points, the jaw contour (0-16 but the chin) on the silhouette
    (:class:`~face3d.reconstruct.contour.SlidingContour` with a hard maximum)."""
    from face3d.reconstruct.camera import project
    from face3d.reconstruct.contour import SlidingContour

    c = contour or SlidingContour(model, tau=1e-4)
    pf = lambda x: project(x, focal, width, height)  # noqa: E731
    lm = pf(model.landmark_positions(vertices))
    iod = (lm[:, 36] - lm[:, 45]).norm(dim=-1)
    return c.slide(model, vertices, lm, pf, rotation, iod)


def _subset_batch(model, sub, subset: str, cfg: LandmarkBenchConfig, g: torch.Generator):
    """Scenes of one subset: (SyntheticBatch, width, height, per-image (2,) crop offset px)."""
    import math

    from face3d.reconstruct.synthetic import SyntheticConfig, _euler, sample_batch

    n = cfg.n
    lo, hi = {"frontal": (0, 15), "turned": (30, 60)}.get(subset, (0, 30))
    S = cfg.image_size * (2 if subset == "tight_crop" else 1)
    frac = (0.4, 0.6) if subset != "small" else (0.2, 0.2)
    b = sample_batch(sub, n, SyntheticConfig(image_size=S, yaw=0, pitch=0, roll=0, noise=0.0, dropout=0.0,
                                             fov=(25.0, 50.0), face_frac=frac), g)
    U = lambda a, c: a + (c - a) * torch.rand(n, generator=g)  # noqa: E731
    sign = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    d2r = math.pi / 180
    rot = _euler(sign * U(lo, hi) * d2r, U(-cfg.pitch, cfg.pitch) * d2r, U(-cfg.roll, cfg.roll) * d2r)
    b = replace(b, rotation=rot)
    target = b.clean.mean(1)  # where sample_batch put the frontal face's centre (px)

    def posed(b):
        out = model(identity=b.identity, expression=b.expression, jaw=b.jaw, rotation=b.rotation,
                    translation=b.translation)
        return contour_truth(model, out.vertices, b.focal, b.rotation, S, S)

    if subset == "small":  # move the head away until its eye-to-chin distance is ~small_px
        lm = posed(b)
        k = (lm[:, 36:48].mean(1) - lm[:, 8]).norm(dim=-1) / cfg.small_px
        b = replace(b, translation=b.translation * k[:, None])
    for _ in range(3):  # rotating about the neck moved the face: shift it back (x, y only)
        lm = posed(b)
        dpx = target - lm.mean(1)
        z = -b.translation[:, 2]
        shift = torch.stack([dpx[:, 0] * z / b.focal, -dpx[:, 1] * z / b.focal, torch.zeros_like(z)], -1)
        b = replace(b, translation=b.translation + shift)
    return b, S


def landmark_benchmark(model: MorphableModel, cfg: LandmarkBenchConfig = LandmarkBenchConfig(),
                       contours: tuple[str, ...] = ("sliding", "fixed"), subsets: tuple[str, ...] = LANDMARK_SUBSETS,
                       fit_cfg=None, progress: Callable[[str], None] | None = None) -> dict:
    """Landmark accuracy of the landmark fit on synthetic heads of ``model``, per subset and contour mode.

    Truth: :func:`contour_truth` of the true posed mesh; input: truth + noise (module
    docstring of :class:`LandmarkBenchConfig`); the fit starts from the default estimator's
    shape when the model has one (``estimator`` in the result says), landmark stage only. Error: the fitted mesh's landmarks under the same definition as the truth (so both
    contour modes are scored alike), mean over the 68 points / true outer-eye distance (NME),
    and over the 17 contour points alone (``jaw_nme``).

    Returns ``{subset: {contour: {"nme": mean, "nme_median", "jaw_nme", "per_head"}}}`` plus ``seconds``.
    """
    from face3d.reconstruct.contour import SlidingContour
    from face3d.reconstruct.fitter import FitConfig, fit

    from face3d.reconstruct.estimator import default_estimator

    fit_cfg = fit_cfg or FitConfig(photo_steps=(), shape_steps=())
    net = default_estimator(model) if cfg.use_estimator else None
    truth_contour = SlidingContour(model, tau=1e-4)
    sub = landmark_submodel(model)
    g = torch.Generator().manual_seed(cfg.seed)
    t0 = time.time()
    res: dict = {}
    for subset in subsets:
        b, S = _subset_batch(model, sub, subset, cfg, g)
        with torch.no_grad():
            out = model(identity=b.identity, expression=b.expression, jaw=b.jaw, rotation=b.rotation,
                        translation=b.translation)
            truth = contour_truth(model, out.vertices, b.focal, b.rotation, S, S, truth_contour)
        W = H = S
        offset = torch.zeros(b.focal.shape[0], 2)
        if subset == "tight_crop":
            # Crop each image to crop x the landmarks' box; a batch shares one size, so crop the
            # largest box's side for all (centred on each face).
            lo, hi = truth.min(1).values, truth.max(1).values
            side = int(math.ceil(float((hi - lo).max()) * cfg.crop))
            offset = ((lo + hi) / 2 - side / 2).round()
            W = H = side
        iod = (truth[:, 36] - truth[:, 45]).norm(dim=-1)
        sigma = torch.sqrt((cfg.noise * iod) ** 2 + cfg.noise_px ** 2)
        noisy = truth + torch.randn(truth.shape, generator=g) * sigma[:, None, None]
        seen = noisy - offset[:, None]
        res[subset] = {}
        id0 = None
        if net is not None:
            with torch.no_grad():
                id0 = net.predict(seen)
        for mode in contours:
            r = fit(model, seen, identity_init=id0, cfg=replace(fit_cfg, contour=mode), width=W, height=H)
            # Score in the crop's pixels: the fitted camera is the crop's (centred principal point).
            pred = contour_truth(model, r.vertices, r.focal, r.rotation, W, H, truth_contour)
            err = (pred - (truth - offset[:, None])).norm(dim=-1) / iod[:, None]
            nme = err.mean(-1)
            res[subset][mode] = {"nme": float(nme.mean()), "nme_median": float(nme.median()),
                                 "jaw_nme": float(err[:, :17].mean()), "per_head": nme.tolist()}
            if progress is not None:
                progress(f"{subset:10s} {mode:8s} NME {100 * float(nme.mean()):5.2f} %  "
                         f"jaw {100 * float(err[:, :17].mean()):5.2f} %  ({time.time() - t0:.0f} s)")
    res["seconds"] = time.time() - t0
    res["estimator"] = "default" if net is not None else "none (mean head)"
    res["model"] = model.name
    return res
