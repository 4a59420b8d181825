"""Audio loading and log-mel features.

Features are log-mel spectra of 16 kHz mono audio: 80 bands (40-7600 Hz), 25 ms windows
(n_fft 512), 10 ms hop, in dB. Frame ``k`` is centred on sample ``k * 160`` with zeros beyond
the signal's ends, so a stream can compute exactly the same frames from a growing buffer
(:func:`logmel` needs only samples up to ``k * 160 + 256`` for frame ``k``).
"""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000


@dataclass(frozen=True)
class FeatureConfig:
    sample_rate: int = SAMPLE_RATE
    n_fft: int = 512
    win: int = 400
    hop: int = 160  # 10 ms
    n_mels: int = 80
    fmin: float = 40.0
    fmax: float = 7600.0


def to_mono(audio, sample_rate: int, what: str = "audio") -> tuple[np.ndarray, int]:
    """Validate an array of samples: (N,), (N, C) or (C, N) with C <= 8 channels -> (N,) float32 mono."""
    a = np.asarray(audio)
    if not np.issubdtype(a.dtype, np.number):
        raise TypeError(f"{what}: expected numeric samples, got dtype {a.dtype}")
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ValueError(f"sample_rate: expected a positive integer in Hz, got {sample_rate!r}")
    if np.issubdtype(a.dtype, np.integer):
        a = a.astype(np.float32) / float(np.iinfo(a.dtype).max)
    a = a.astype(np.float32)
    if a.ndim == 2:
        a = a.mean(axis=1 if a.shape[1] <= 8 and a.shape[1] < a.shape[0] else 0)
    if a.ndim != 1:
        raise ValueError(f"{what}: expected shape (N,) or (N, channels), got {a.shape}")
    if a.size == 0:
        raise ValueError(f"{what}: expected at least one sample, got an empty signal")
    if not np.isfinite(a).all():
        raise ValueError(f"{what}: found NaN or infinite samples")
    return a, int(sample_rate)


def resample(audio: np.ndarray, sample_rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """(N,) float32 at ``sample_rate`` -> (M,) float32 at ``target`` (polyphase, exact ratio)."""
    if sample_rate == target:
        return audio.astype(np.float32)
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(int(sample_rate), int(target))
    return resample_poly(audio.astype(np.float64), target // g, sample_rate // g).astype(np.float32)


def load_audio(path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode any file ffmpeg reads (WAV, MP3, FLAC, M4A, a video's sound track, any rate, any
    channel count) to (N,) float32 mono at ``sample_rate``."""
    import imageio_ffmpeg

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"audio file not found: {path}")
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-i", str(path), "-vn",
           "-f", "f32le", "-acodec", "pcm_f32le", "-ac", "1", "-ar", str(sample_rate), "-"]
    proc = subprocess.run(cmd, capture_output=True)
    if proc.returncode != 0:
        msg = proc.stderr.decode(errors="replace").strip().splitlines()
        raise ValueError(f"{path}: expected an audio file ffmpeg can decode, ffmpeg says: {msg[-1] if msg else proc.returncode}")
    a = np.frombuffer(proc.stdout, np.float32).copy()
    if a.size == 0:
        raise ValueError(f"{path}: expected audio samples, found none (empty or zero-length audio stream)")
    return a


def n_frames(n_samples: int, cfg: FeatureConfig = FeatureConfig()) -> int:
    return -(-n_samples // cfg.hop)


def logmel(audio16k: np.ndarray, cfg: FeatureConfig = FeatureConfig(), n: int | None = None,
           left_padded: bool = False) -> np.ndarray:
    """(N,) float32 16 kHz -> (T, n_mels) float32 dB, ``T = ceil(N / hop)`` (or ``n``).

    With ``left_padded`` the signal already starts ``n_fft // 2`` samples before the first frame's
    centre (a stream's buffer computing frames ``m0 ..`` passes samples from ``m0 * hop - n_fft // 2``).
    """
    import librosa

    x = np.asarray(audio16k, np.float32)
    T = n_frames(len(x), cfg) if n is None else n
    if T <= 0:
        return np.zeros((0, cfg.n_mels), np.float32)
    half = cfg.n_fft // 2
    left = 0 if left_padded else half
    need = (T - 1) * cfg.hop + cfg.n_fft
    x = np.pad(x, (left, max(0, need - left - len(x))))[:need]
    S = np.abs(librosa.stft(x, n_fft=cfg.n_fft, hop_length=cfg.hop, win_length=cfg.win, center=False)) ** 2
    return (10 * np.log10(_mel_filters(cfg) @ S + 1e-10)).T.astype(np.float32)


@lru_cache(maxsize=4)
def _mel_filters(cfg: FeatureConfig) -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax)
