"""audio2exp: sequence files, rendering and video writing."""
import subprocess

import numpy as np
import pytest
import torch

from audio2exp.animate import AnimationConfig, load_sequence, render_sequence
from audio2exp.video import write_video


def _frame_count(path) -> int:
    import imageio_ffmpeg

    n, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
    return n


def test_write_video_mp4_and_gif(tmp_path):
    frames = np.zeros((5, 33, 40, 3), np.uint8)
    for i in range(5):  # distinct frames: GIF writers merge identical ones
        frames[i, :, : 8 * (i + 1)] = 255
    mp4 = write_video(tmp_path / "a.mp4", frames, fps=10)
    assert _frame_count(mp4) == 5
    gif = write_video(tmp_path / "a.gif", frames, fps=10)
    from PIL import Image

    assert Image.open(gif).n_frames == 5
    assert not list(tmp_path.glob(".*tmp*")), "temporary files left behind"


def test_write_video_muxes_audio(tmp_path):
    import wave

    sr = 8000
    with wave.open(str(tmp_path / "a.wav"), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(sr)
        w.writeframes((np.sin(np.arange(sr) * 0.1) * 3000).astype(np.int16).tobytes())
    out = write_video(tmp_path / "v.mp4", np.zeros((10, 16, 16, 3), np.uint8), fps=10, audio=tmp_path / "a.wav")
    import imageio_ffmpeg

    probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-i", str(out)], capture_output=True, text=True).stderr
    assert "Audio:" in probe and "Video:" in probe


def test_write_video_rejects_bad_frames(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "a.mp4", np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match=".mp4 or .gif"):
        write_video(tmp_path / "a.avi", np.zeros((2, 8, 8, 3), np.uint8))


def test_load_sequence_validates_shapes(tmp_path, builtin_model):
    m = builtin_model
    np.savez(tmp_path / "ok.npz", expression=np.zeros((4, m.n_expression)), jaw=np.zeros((4, 3)))
    seq = load_sequence(tmp_path / "ok.npz", m)
    assert seq["expression"].shape == (4, m.n_expression) and seq["jaw"].dtype == torch.float32
    np.savez(tmp_path / "short.npz", expression=np.zeros((4, m.n_expression - 1)))
    with pytest.raises(ValueError, match=rf"'expression' expected shape \(T, {m.n_expression}\)"):
        load_sequence(tmp_path / "short.npz", m)
    np.savez(tmp_path / "mismatch.npz", expression=np.zeros((4, m.n_expression)), jaw=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="3 frames"):
        load_sequence(tmp_path / "mismatch.npz", m)
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="broken.npz"):
        load_sequence(tmp_path / "broken.npz", m)


def test_render_sequence_shows_the_mouth_opening(builtin_model):
    m = builtin_model
    expr = torch.zeros(2, m.n_expression)
    jaw = torch.tensor([[0.0, 0, 0], [0.35, 0, 0]])
    frames = render_sequence(m, {"expression": expr, "jaw": jaw}, cfg=AnimationConfig(size=96), progress=False)
    assert frames.shape == (2, 96, 96, 3) and frames.dtype == np.uint8
    diff = np.abs(frames[0].astype(int) - frames[1].astype(int)).sum(-1)
    rows = np.nonzero(diff > 30)[0]
    # Opening the jaw changes the lower half of the frontal image, not the forehead (a few
    # silhouette pixels may flip: the analytic antialiasing is not continuous everywhere).
    assert rows.size > 20
    assert (rows < 96 * 0.4).mean() < 0.05
