"""Video / multi-image tracking of one person: one identity, per-frame pose and expression.

1. Detect the face (largest) and its 68 landmarks in every frame; frames without a detection get
   landmarks interpolated from the nearest detected frames (flagged ``detected = False``).
2. One identity for the whole clip: the median of the estimator's per-frame predictions, refined
   together with the first batch of frames (shared identity and focal length), then frozen.
3. The remaining frames are fitted in batches of ``batch`` frames (the fitter and the renderer
   are batched), with a temporal smoothness term inside each batch and tying each batch's first
   frame to the previous batch's last.

Outputs (:func:`write_track`): ``track.npz`` / ``track.json`` with per-frame parameters, fitted
and detected landmarks, and the camera (intrinsics; camera convention of
:mod:`face3d.reconstruct.camera`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from face3d.reconstruct.fitter import FitConfig, fit


@dataclass(frozen=True)
class TrackConfig:
    """Tracking settings: ``batch`` frames per fit, ``temporal`` smoothness weight,
    ``photometric`` (add the fitter's photometric stages: shape on the first batch, which fits the
    shared identity, and appearance), ``estimator_path`` (default: committed
    weights for the built-in model), ``fit``: base :class:`FitConfig`, ``detector_stages``: the
    default detector's cascade (:data:`face3d.reconstruct.detect.STAGES`; without the CNN by
    default: it costs seconds per frame, and frames without a face are interpolated anyway)."""

    batch: int = 16
    temporal: float = 0.02
    photometric: bool = False
    estimator_path: str | None = None
    fit: FitConfig = FitConfig(rigid_iters=40, landmark_steps=80, photo_steps=(20,), photo_sizes=(96,))
    detector_stages: tuple[str, ...] = ("hog", "hog_upsampled", "hog_padded")


@dataclass
class TrackResult:
    """Per-frame results (numpy). ``identity`` (n_id,) shared; ``expression`` (T, n_exp);
    ``jaw``/``rotation`` (T, 3) rad; ``translation`` (T, 3) mm; ``focal`` px (shared);
    ``landmarks2d`` (T, 68, 2) fitted px; ``detected_landmarks`` (T, 68, 2) px;
    ``detected`` (T,) bool; ``width``/``height`` px; ``seconds``."""

    identity: np.ndarray
    expression: np.ndarray
    jaw: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    focal: float
    landmarks2d: np.ndarray
    detected_landmarks: np.ndarray
    detected: np.ndarray
    width: int
    height: int
    seconds: float

    @property
    def n_frames(self) -> int:
        return int(self.rotation.shape[0])

    @property
    def n_detected(self) -> int:
        return int(self.detected.sum())


def read_frames(source: str | Path, max_frames: int | None = None, size: int | None = None) -> list[np.ndarray]:
    """A video file (imageio / ffmpeg) or a folder of images (sorted) -> list of (H, W, 3) uint8.

    ``size``: resize so the longer side is ``size`` px.
    """
    from PIL import Image

    source = Path(source)
    frames: list[np.ndarray] = []
    if source.is_dir():
        from face3d.reconstruct.images import IMAGE_EXTS, load_image

        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_EXTS)
        for p in files[:max_frames]:
            frames.append(load_image(p))
    elif source.is_file():
        import imageio.v3 as iio

        for i, fr in enumerate(iio.imiter(source)):
            if max_frames is not None and i >= max_frames:
                break
            frames.append(np.asarray(fr)[..., :3])
    else:
        raise FileNotFoundError(f"track source not found: expected a video file or a folder of frames, got {source}")
    if not frames:
        raise ValueError(f"no frames read from {source}")
    if size is not None:
        out = []
        for f in frames:
            H, W = f.shape[:2]
            k = size / max(H, W)
            out.append(np.asarray(Image.fromarray(f).resize((round(W * k), round(H * k)), Image.BILINEAR)))
        frames = out
    return frames


def _fill_missing(lms: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Linear interpolation over time of frames without a detection (T, 68, 2)."""
    T = lms.shape[0]
    idx = np.nonzero(ok)[0]
    t = np.arange(T)
    flat = lms.reshape(T, -1)
    out = np.stack([np.interp(t, idx, flat[idx, j]) for j in range(flat.shape[1])], 1)  # 136 columns
    return out.reshape(lms.shape)


def track(model, frames: list[np.ndarray], cfg: TrackConfig = TrackConfig(), detector=None,
          landmarks: np.ndarray | None = None, progress: Callable[[str], None] | None = None) -> TrackResult:
    """Track one person through ``frames`` (list of (H, W, 3) uint8, one size).

    ``landmarks`` (T, 68, 2) px skips detection (e.g. from another detector); frames whose
    landmarks are NaN count as undetected.
    """
    from face3d.reconstruct.estimator import default_estimator, load_estimator

    t0 = time.time()
    T = len(frames)
    H, W = frames[0].shape[:2]
    if any(f.shape[:2] != (H, W) for f in frames):
        raise ValueError(f"track: expected frames of one size, got sizes {sorted({f.shape[:2] for f in frames})}")
    if landmarks is None:
        from face3d.reconstruct.detect import DlibConfig, DlibDetector, largest

        det = detector or DlibDetector(DlibConfig(stages=cfg.detector_stages))
        lms = np.full((T, 68, 2), np.nan)
        for i, f in enumerate(frames):  # the detector works per image
            d = det.detect(f)
            if d:
                lms[i] = largest(d).landmarks68
        if progress:
            progress(f"detected faces in {int(np.isfinite(lms[:, 0, 0]).sum())}/{T} frames ({time.time() - t0:.1f} s)")
    else:
        lms = np.asarray(landmarks, dtype=np.float64).reshape(T, 68, 2)
    ok = np.isfinite(lms).all((1, 2))
    if not ok.any():
        raise LookupError(f"track: no face detected in any of the {T} frames")
    lms = _fill_missing(lms, ok)
    L = torch.tensor(lms, dtype=torch.float32)

    net = load_estimator(cfg.estimator_path, model) if cfg.estimator_path else default_estimator(model)
    id_init = None
    if net is not None:
        with torch.no_grad():
            id_init = net.predict(L[torch.from_numpy(ok)]).median(0).values

    def images(sl):
        if not cfg.photometric:
            return None
        return torch.from_numpy(np.stack(frames[sl.start:sl.stop])).float().div(255)

    base = replace(cfg.fit, temporal=cfg.temporal, share_identity=True,
                   photo_steps=cfg.fit.photo_steps if cfg.photometric else ())
    out = {k: [] for k in ("expression", "jaw", "rotation", "translation", "landmarks2d")}
    identity, focal, prev = id_init, None, None
    for s in range(0, T, cfg.batch):
        sl = slice(s, min(T, s + cfg.batch))
        first = s == 0
        c = base if first else replace(base, fit_identity=False, fit_focal=False)
        r = fit(model, L[sl], images(sl), identity_init=identity, cfg=c, width=W, height=H,
                focal_init=focal, previous=prev)
        if first:
            identity, focal = r.identity[0], float(r.focal[0])
        for k in out:
            out[k].append(getattr(r, k))
        prev = {"rotation": r.rotation[-1], "translation": r.translation[-1], "expression": r.expression[-1], "jaw": r.jaw[-1]}
        if progress:
            progress(f"fitted frames {sl.start}-{sl.stop - 1} ({time.time() - t0:.1f} s)")
    cat = {k: torch.cat(v).numpy() for k, v in out.items()}
    return TrackResult(identity=identity.numpy(), focal=focal, detected_landmarks=lms, detected=ok,
                       width=W, height=H, seconds=time.time() - t0, **cat)


def write_track(res: TrackResult, out_dir: str | Path) -> None:
    """Write ``out_dir/track.npz`` and ``out_dir/track.json`` (atomic)."""
    from face3d.reconstruct.outputs import write_json, write_npz

    out_dir = Path(out_dir)
    K = np.array([[res.focal, 0, (res.width - 1) / 2], [0, res.focal, (res.height - 1) / 2], [0, 0, 1]])
    arrays = {
        "identity": res.identity, "expression": res.expression, "jaw": res.jaw, "rotation": res.rotation,
        "translation": res.translation, "focal": np.float64(res.focal), "K": K,
        "R_world_to_camera": np.diag([1.0, -1.0, -1.0]), "t_world_to_camera": np.zeros(3),
        "landmarks2d_fitted": res.landmarks2d, "landmarks2d_detected": res.detected_landmarks,
        "detected": res.detected, "width": np.int64(res.width), "height": np.int64(res.height),
    }
    write_npz(out_dir / "track.npz", arrays)
    write_json(out_dir / "track.json", {**arrays, "units": "mm, radians, pixels", "seconds": res.seconds,
                                        "camera_convention": "camera at the origin looking down world -z; OpenCV pixels"})
