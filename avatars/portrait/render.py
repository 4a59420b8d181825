"""Re-animating a portrait: from an expression sequence, another track, speech, or a turntable.

A :class:`Drive` is per-frame expression, jaw, head rotation/translation (and optionally neck
rotation and per-frame cameras). Drivers:

- :func:`drive_from_sequence`: an ``.npz`` of ``expression`` (T, n_expression), ``jaw`` (T, 3)
  and optional ``neck``/``rotation``/``translation``/``fps`` (``audio2exp --sequence-out``
  writes these); the head stays in the portrait's rest pose unless the file moves it.
- :func:`drive_from_track`: reenactment from another ``face3d track`` (same model): its
  expression and jaw, and its head motion relative to its own median pose, applied to the
  portrait's rest pose.
- :func:`drive_from_audio`: speech -> ``audio2exp.predict_file`` (with blinks and slight head
  motion) -> a talking portrait; :func:`render_drive` output is muxed with the audio.
- :func:`turntable_drive`: the rest pose seen from cameras orbiting the head (novel views).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from avatars.portrait.model import Portrait


@dataclass
class Drive:
    """Per-frame driving parameters (numpy): ``expression`` (T, n_exp), ``jaw``/``rotation``/
    ``translation``/``neck`` (T, 3); ``fps``; ``audio`` a file to mux; ``yaw_deg`` (T,) camera
    orbit angles about the head (0 = the training camera)."""

    expression: np.ndarray
    jaw: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    neck: np.ndarray
    fps: float = 25.0
    audio: str | None = None
    yaw_deg: np.ndarray | None = None

    @property
    def n_frames(self) -> int:
        return int(self.expression.shape[0])


def rest_pose(p: Portrait) -> tuple[np.ndarray, np.ndarray]:
    """The portrait's rest head rotation and translation (median over its training frames)."""
    m = getattr(p, "meta", {}) or {}
    if "rest_rotation" not in m:
        raise ValueError("portrait: no rest pose stored (train it with avatars portrait-train)")
    return np.asarray(m["rest_rotation"], dtype=np.float32), np.asarray(m["rest_translation"], dtype=np.float32)


def _check_exp(p: Portrait, exp: np.ndarray, what: str) -> np.ndarray:
    exp = np.asarray(exp, dtype=np.float32)
    if exp.ndim != 2 or exp.shape[1] != p.model.n_expression:
        raise ValueError(f"{what}: expected expression of shape (T, {p.model.n_expression}) for the portrait's "
                         f"model {p.model.name!r}, got {exp.shape}")
    if exp.shape[0] < 1:
        raise ValueError(f"{what}: expected at least one frame")
    return exp


def drive_from_sequence(p: Portrait, path) -> Drive:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sequence file not found: {path}")
    s = np.load(path)
    if "expression" not in s:
        raise ValueError(f"{path}: expected an npz with 'expression' (T, n_expression) and 'jaw' (T, 3)")
    exp = _check_exp(p, s["expression"], str(path))
    T = exp.shape[0]
    r0, t0 = rest_pose(p)
    z = np.zeros((T, 3), np.float32)
    jaw = np.asarray(s["jaw"], np.float32) if "jaw" in s else z
    rot = np.asarray(s["rotation"], np.float32) if "rotation" in s else np.tile(r0, (T, 1))
    tr = np.asarray(s["translation"], np.float32) if "translation" in s else np.tile(t0, (T, 1))
    neck = np.asarray(s["neck"], np.float32) if "neck" in s else z
    for k, a in (("jaw", jaw), ("rotation", rot), ("translation", tr), ("neck", neck)):
        if a.shape != (T, 3):
            raise ValueError(f"{path}: expected {k} of shape ({T}, 3), got {a.shape}")
    fps = float(s["fps"]) if "fps" in s else getattr(p, "fps", 25.0)
    return Drive(exp, jaw, rot, tr, neck, fps)


def drive_from_track(p: Portrait, track_dir) -> Drive:
    from face3d.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle

    t = Path(track_dir)
    t = t / "track.npz" if t.is_dir() else t
    if not t.is_file():
        raise FileNotFoundError(f"track: expected a face3d track folder with track.npz, got {track_dir}")
    s = np.load(t)
    exp = _check_exp(p, s["expression"], str(t))
    r0, t0 = rest_pose(p)
    Rd = axis_angle_to_matrix(torch.tensor(s["rotation"], dtype=torch.float32))
    Rm = axis_angle_to_matrix(torch.tensor(np.median(s["rotation"], 0), dtype=torch.float32))
    R0 = axis_angle_to_matrix(torch.tensor(r0))
    rot = matrix_to_axis_angle(Rd @ Rm.T @ R0).numpy()  # the driver's motion about its median pose
    dt = s["translation"] - np.median(s["translation"], 0)
    scale = float(t0[2] / np.median(s["translation"][:, 2]))  # keep the portrait's framing
    tr = t0 + dt * scale
    fps = getattr(p, "fps", 25.0)
    return Drive(exp, np.asarray(s["jaw"], np.float32), rot.astype(np.float32), tr.astype(np.float32),
                 np.zeros_like(s["jaw"], dtype=np.float32), fps)


def drive_from_audio(p: Portrait, audio_path, fps: float | None = None, weights=None) -> Drive:
    from audio2exp.api import predict_file

    fps = fps or getattr(p, "fps", 25.0)
    seq = predict_file(audio_path, model=p.model, weights=weights, fps=fps, blinks=True, head_motion=True)
    exp = _check_exp(p, seq["expression"], str(audio_path))
    T = exp.shape[0]
    r0, t0 = rest_pose(p)
    neck = np.asarray(seq.get("neck", np.zeros((T, 3))), np.float32)
    return Drive(exp, np.asarray(seq["jaw"], np.float32), np.tile(r0, (T, 1)), np.tile(t0, (T, 1)), neck, fps,
                 audio=str(audio_path))


def turntable_drive(p: Portrait, frames: int = 36, sweep_deg: float = 60.0, fps: float = 12.0) -> Drive:
    """The rest pose with a neutral face seen from ``frames`` cameras swinging ``±sweep_deg / 2``."""
    r0, t0 = rest_pose(p)
    T = int(frames)
    yaw = (sweep_deg / 2) * np.sin(2 * np.pi * np.arange(T) / T)
    z = np.zeros((T, 3), np.float32)
    return Drive(np.zeros((T, p.model.n_expression), np.float32), z, np.tile(r0, (T, 1)), np.tile(t0, (T, 1)), z,
                 fps, yaw_deg=yaw.astype(np.float32))


def camera_for(p: Portrait, size: int, yaw_deg: float = 0.0, center=None):
    """The portrait's training camera at ``size`` px, orbited by ``yaw_deg`` about ``center``
    (world mm, a vertical axis through it)."""
    from face3d.reconstruct.camera import WORLD_TO_CAMERA
    from face3d.render import Camera
    from face3d.render.camera import scale_intrinsics

    s = size / p.background.shape[0]
    K = scale_intrinsics(p.K.cpu(), s, s)
    R = WORLD_TO_CAMERA.clone()
    t = torch.zeros(3)
    if yaw_deg:
        a = math.radians(yaw_deg)
        Ry = torch.tensor([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
        c = torch.as_tensor(center, dtype=torch.float32)
        R = WORLD_TO_CAMERA @ Ry
        t = WORLD_TO_CAMERA @ (c - Ry @ c)
    return Camera(K=K[None], R=R[None], t=t[None], width=size, height=size, near=10.0, far=5000.0)


def render_drive(p: Portrait, drive: Drive, size: int = 256, samples: int | None = None, progress: bool = True,
                 proxy: int | None = 64) -> np.ndarray:
    """(T, size, size, 3) uint8 frames of the portrait driven by ``drive``; ``proxy``: the fast
    path of :meth:`Portrait.render_frame` (None: exact)."""
    frames = []
    it = range(drive.n_frames)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="render", unit="frame", dynamic_ncols=True)
    center = None
    for i in it:
        prm = {k: torch.from_numpy(np.asarray(getattr(drive, k)[i], np.float32))
               for k in ("expression", "jaw", "rotation", "translation", "neck")}
        yaw = float(drive.yaw_deg[i]) if drive.yaw_deg is not None else 0.0
        if yaw and center is None:
            v = p.posed(prm["expression"][None], prm["jaw"][None], prm["rotation"][None], prm["translation"][None])
            center = v[0].mean(0).cpu()
        cam = camera_for(p, size, yaw, center)
        out = p.render_frame(prm["expression"], prm["jaw"], prm["rotation"], prm["translation"], cam,
                             samples=samples, neck=prm["neck"], proxy=proxy if size > (proxy or 0) else None)
        frames.append((out["rgb"].cpu().numpy() * 255).round().clip(0, 255).astype(np.uint8))
    return np.stack(frames)


def write_drive(p: Portrait, drive: Drive, out, size: int = 256, samples: int | None = None, progress: bool = True,
                proxy: int | None = 64):
    """Render and write an MP4 (with the drive's audio, if any) or GIF."""
    from audio2exp.video import write_video

    frames = render_drive(p, drive, size, samples, progress, proxy)
    return write_video(out, frames, fps=drive.fps, audio=drive.audio if str(out).lower().endswith(".mp4") else None)
