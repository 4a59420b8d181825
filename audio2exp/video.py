"""Writing frame sequences to MP4 (ffmpeg from imageio-ffmpeg) or GIF (Pillow), atomically."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np


def write_video(path, frames: np.ndarray, fps: float = 25.0, audio: str | os.PathLike | None = None) -> Path:
    """Write (T, H, W, 3) uint8 frames to ``path`` (.mp4 or .gif).

    For MP4, ``audio`` (any file ffmpeg reads, e.g. WAV) is muxed in and the video is cut to the
    shorter of the two. The file appears only when complete (temp file + rename).
    """
    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames: expected (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    if len(frames) == 0:
        raise ValueError("frames: expected at least one frame, got 0")
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    if suffix == ".gif":
        if audio is not None:
            raise ValueError(f"audio: a GIF cannot carry sound; write an .mp4 instead of {path}")
        from PIL import Image

        ims = [Image.fromarray(f) for f in frames]
        ims[0].save(tmp, save_all=True, append_images=ims[1:], duration=int(round(1000 / fps)), loop=0)
    elif suffix == ".mp4":
        import imageio_ffmpeg

        T, H, W, _ = frames.shape
        if H % 2 or W % 2:  # yuv420p needs even sizes
            frames = np.pad(frames, ((0, 0), (0, H % 2), (0, W % 2), (0, 0)), mode="edge")
            T, H, W, _ = frames.shape
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "-s", f"{W}x{H}", "-r", str(fps), "-i", "-"]
        if audio is not None:
            if not Path(audio).is_file():
                raise FileNotFoundError(f"audio file not found: {audio}")
            cmd += ["-i", str(audio), "-c:a", "aac", "-shortest"]
        cmd += ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(tmp)]
        proc = subprocess.run(cmd, input=frames.tobytes(), capture_output=True)
        if proc.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise RuntimeError(f"ffmpeg failed writing {path}: {proc.stderr.decode(errors='replace')[-2000:]}")
    else:
        raise ValueError(f"path: expected a .mp4 or .gif file name, got {path}")
    os.replace(tmp, path)
    return path
