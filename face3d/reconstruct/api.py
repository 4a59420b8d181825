"""``reconstruct(image)``: a metric 3D face from one photo.

Pipeline (data flows one way): image -> :class:`~face3d.reconstruct.detect.FaceDetector`
(box + 68 landmarks) -> :class:`~face3d.reconstruct.estimator.ShapeEstimator` (metric identity
from landmark ratios) -> :func:`~face3d.reconstruct.fitter.fit` (pose, expression, jaw, focal,
lighting, albedo; shape kept near the estimate) -> :class:`Reconstruction`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from face3d.reconstruct.detect import Detection, DlibDetector, FaceDetector, largest, select_face
from face3d.reconstruct.fitter import FitConfig, FitResult, fit
from face3d.reconstruct.images import check_image, load_image

__all__ = ["MissingEstimatorError", "NoFaceError", "ReconstructConfig", "Reconstruction", "fit_detections",
           "load_image", "reconstruct", "resolve_estimator", "write_reconstruction"]


OVERLAY_MAX_SIDE = 2048


class NoFaceError(RuntimeError):
    """The detector found no face in an image."""


class MissingEstimatorError(FileNotFoundError):
    """No estimator weights for the model (``model_name``): the library's message names
    :class:`ReconstructConfig` fields; the CLI catches it and names its flags instead."""

    def __init__(self, message: str, model_name: str = "") -> None:
        super().__init__(message)
        self.model_name = model_name


@dataclass(frozen=True)
class ReconstructConfig:
    """Settings of :func:`reconstruct`.

    - ``fit``: the fitter's :class:`FitConfig`.
    - ``use_estimator``: start from (and stay near) the learned estimator's metric shape; False
      starts from the mean head (the "landmark-only fitting" baseline).
    - ``all_faces``: reconstruct every detected face (default: the largest only).
    - ``face``: index of the face to reconstruct, in the detector's order (most confident
      first, as numbered in the report and the overlay); None = the largest.
    - ``estimator_path``: weights file; default the committed ones for the built-in model.
    """

    fit: FitConfig = FitConfig()
    use_estimator: bool = True
    all_faces: bool = False
    estimator_path: str | None = None
    face: int | None = None


@dataclass
class Reconstruction:
    """One reconstructed face (numpy, float32 unless noted).

    - ``vertices`` (V, 3) mm: the fitted mesh posed in the camera's world frame (camera at the
      origin looking down -z, +y up; see :mod:`face3d.reconstruct.camera`).
    - ``vertices_head`` (V, 3) mm: the same mesh in the model's head frame (pose removed).
    - ``neutral_vertices`` (V, 3) mm: identity only (no expression, jaw or pose).
    - ``faces`` (F, 3) int64.
    - ``landmarks2d`` (68, 2) px: the fitted model's landmarks projected into the image.
    - ``detected_landmarks`` (68, 2) px, ``box`` (4,) px, ``detection_score``,
      ``detection_stage`` (the detector stage that found the face).
    - ``measurements``: {name: mm} of the neutral face (:mod:`face3d.reconstruct.measure`).
    - ``params``: {name: array}: identity, expression, jaw, rotation (rad), translation (mm),
      focal (px), sh (9, 3), plus the image size.
    - ``albedo`` (V, 3) in [0, 1] or None; ``nme``: mean landmark error / outer-eye distance.
    """

    vertices: np.ndarray
    vertices_head: np.ndarray
    neutral_vertices: np.ndarray
    faces: np.ndarray
    landmarks2d: np.ndarray
    detected_landmarks: np.ndarray
    box: np.ndarray
    detection_score: float
    measurements: dict[str, float]
    params: dict[str, np.ndarray]
    albedo: np.ndarray | None
    nme: float
    model_name: str = ""
    estimator: str = ""
    detection_stage: str = ""
    timings: dict[str, float] = field(default_factory=dict)


def resolve_estimator(model, cfg: ReconstructConfig = ReconstructConfig()) -> tuple[object | None, str]:
    """``(network, name)`` of the shape estimator ``cfg`` asks for (``(None, "none (mean head)")``
    with ``use_estimator=False``). Load it once and pass it to :func:`fit_detections` for a batch.

    Raises:
        MissingEstimatorError: no weights for this model (default weights missing or trained for
            another model).
    """
    if not cfg.use_estimator:
        return None, "none (mean head)"
    from face3d.reconstruct.estimator import DEFAULT_WEIGHTS, default_estimator, load_estimator

    if cfg.estimator_path is not None:
        return load_estimator(cfg.estimator_path, model), str(cfg.estimator_path)
    net = default_estimator(model)
    if net is None:
        raise MissingEstimatorError(
            f"no estimator weights for model {model.name!r}: {DEFAULT_WEIGHTS} is missing or was trained for "
            "another model; train them with `face3d train-estimator --model SPEC --out FILE` and pass "
            "ReconstructConfig(estimator_path=FILE) (or use_estimator=False for the mean head)", model.name)
    return net, str(DEFAULT_WEIGHTS.name)


def fit_detections(model, image: np.ndarray, detections: list[Detection],
                   cfg: ReconstructConfig = ReconstructConfig(), renderer=None,
                   estimator: tuple[object | None, str] | None = None) -> list[Reconstruction]:
    """Estimate and fit every detection of one image (fitted together, as one batch).

    ``estimator``: ``(network, name)`` from :func:`resolve_estimator` (default: resolved here).
    """
    import time

    from face3d.reconstruct.measure import measure

    t0 = time.time()
    lms = torch.tensor(np.stack([d.landmarks68 for d in detections]), dtype=torch.float32)
    B = len(detections)
    net, est_name = estimator if estimator is not None else resolve_estimator(model, cfg)
    id_init = None
    if net is not None:
        with torch.no_grad():
            id_init = net.predict(lms)
    t1 = time.time()
    imgs = torch.tensor(np.asarray(image), dtype=torch.float32).div(255)[None].expand(B, -1, -1, -1)
    res: FitResult = fit(model, lms, imgs, identity_init=id_init, cfg=cfg.fit, renderer=renderer)
    t2 = time.time()
    meas = measure(model, res.identity)
    with torch.no_grad():
        head = model(identity=res.identity, expression=res.expression.clamp(0, 1) if float(model.expression_std.max()) <= 0.75 else res.expression,
                     jaw=res.jaw).vertices
        neutral = model(identity=res.identity).vertices
    nme = res.nme(lms)
    out = []
    for b, d in enumerate(detections):
        params = {
            "identity": res.identity[b].numpy(), "expression": res.expression[b].numpy(),
            "jaw": res.jaw[b].numpy(), "rotation": res.rotation[b].numpy(),
            "translation": res.translation[b].numpy(), "focal": np.float32(res.focal[b]),
            "sh": res.sh[b].numpy(), "width": np.int64(res.width), "height": np.int64(res.height),
        }
        out.append(Reconstruction(
            vertices=res.vertices[b].numpy(), vertices_head=head[b].numpy(), neutral_vertices=neutral[b].numpy(),
            faces=model.faces.numpy(), landmarks2d=res.landmarks2d[b].numpy(), detected_landmarks=d.landmarks68,
            box=d.box, detection_score=d.score, measurements={k: float(v[b]) for k, v in meas.items()},
            params=params, albedo=None if res.albedo is None else res.albedo[b].numpy(), nme=float(nme[b]),
            model_name=model.name, estimator=est_name, detection_stage=d.stage,
            timings={"estimate_s": t1 - t0, "fit_s": t2 - t1},
        ))
    return out


def reconstruct(image, model="builtin", detector: FaceDetector | None = None,
                config: ReconstructConfig = ReconstructConfig()) -> Reconstruction | list[Reconstruction]:
    """Reconstruct a metric 3D face from a photo.

    Args:
        image: (H, W, 3) uint8 RGB array, or a path to an image file.
        model: a model spec for :func:`face3d.load_model` (default ``"builtin"``) or a
            :class:`~face3d.models.MorphableModel`.
        detector: any :class:`FaceDetector` (default :class:`DlibDetector`).
        config: :class:`ReconstructConfig`.

    Returns:
        :class:`Reconstruction` of the largest face (or of face ``config.face``), or a list of
        them (one per face) with ``config.all_faces``.

    Raises:
        NoFaceError: no face found. ValueError / OSError: unreadable image.

    Example::

        >>> from skimage.data import astronaut                      # doctest: +SKIP
        >>> r = face3d.reconstruct(astronaut())                     # doctest: +SKIP
        >>> r.measurements["interpupillary_distance"]               # doctest: +SKIP
    """
    from face3d.models import load_model

    img = load_image(image) if isinstance(image, (str, Path)) else check_image(image)
    mdl = load_model(model)
    det = detector if detector is not None else DlibDetector()
    dets = det.detect(img)
    if not dets:
        raise NoFaceError(f"no face found in the image ({img.shape[1]}x{img.shape[0]} px)")
    chosen = dets if config.all_faces else [select_face(dets, config.face)[1]]
    recs = fit_detections(mdl, img, chosen, config)
    return recs if config.all_faces else recs[0]


def write_reconstruction(rec: Reconstruction, model, image: np.ndarray, out_dir: str | Path, stem: str,
                         detections: list[Detection] | None = None, detection_report: dict | None = None) -> list[Path]:
    """Write mesh (+texture), params (JSON + NPZ), overlay PNG and measurements for one face.

    ``detections``: every face found in the image; the overlay draws and numbers all their boxes
    (the reconstructed one in red), so a wrong choice among several faces is visible.
    ``detection_report``: :meth:`DetectionReport.as_dict`, stored in the params JSON.
    """
    from face3d.reconstruct.outputs import (
        atomic_write_bytes, png_bytes, render_overlay, write_json, write_mesh, write_npz,
    )

    out_dir = Path(out_dir)
    albedo = None if rec.albedo is None else torch.from_numpy(rec.albedo)
    files = write_mesh(out_dir / f"{stem}.obj", model, torch.from_numpy(rec.vertices_head), albedo)
    p = rec.params
    K = np.array([[p["focal"], 0, (p["width"] - 1) / 2], [0, p["focal"], (p["height"] - 1) / 2], [0, 0, 1]])
    meta = {
        "model": rec.model_name, "estimator": rec.estimator, "units": "mm, radians, pixels",
        "camera": {"K": K, "R_world_to_camera": np.diag([1.0, -1.0, -1.0]), "t": np.zeros(3),
                   "width": p["width"], "height": p["height"],
                   "convention": "camera at the origin looking down world -z; OpenCV pixels"},
        "params": p, "landmarks2d_fitted": rec.landmarks2d, "landmarks2d_detected": rec.detected_landmarks,
        "box": rec.box, "detection_score": rec.detection_score,
        "detection_stage": rec.detection_stage, "nme": rec.nme,
        "measurements_mm": rec.measurements, "timings_s": rec.timings,
    }
    if detection_report is not None:
        meta["detection"] = detection_report
    write_json(out_dir / f"{stem}_params.json", meta)
    write_npz(out_dir / f"{stem}_params.npz", {**p, "K": K, "landmarks2d_fitted": rec.landmarks2d,
                                                 "landmarks2d_detected": rec.detected_landmarks, "box": rec.box})
    write_json(out_dir / f"{stem}_measurements.json", rec.measurements)
    # The overlay of a very large photo is drawn on a copy of at most OVERLAY_MAX_SIDE px (the
    # fit itself used full-resolution face crops): same camera, focal and pixels scaled by k.
    from face3d.reconstruct.images import resize_longer_side

    small, k = resize_longer_side(np.asarray(image), OVERLAY_MAX_SIDE)
    ov = render_overlay(model, small, torch.from_numpy(rec.vertices), float(p["focal"]) * k, None, None,
                        (rec.detected_landmarks + 0.5) * k - 0.5, (rec.landmarks2d + 0.5) * k - 0.5)
    if detections:
        from face3d.reconstruct.outputs import draw_boxes

        chosen = [i for i, d in enumerate(detections) if np.array_equal(d.box, rec.box)]
        ov = draw_boxes(ov, [(d.box + 0.5) * k - 0.5 for d in detections], chosen[0] if chosen else None)
    atomic_write_bytes(out_dir / f"{stem}_overlay.png", png_bytes(ov))
    return files + [out_dir / f"{stem}_{s}" for s in ("params.json", "params.npz", "measurements.json", "overlay.png")]
