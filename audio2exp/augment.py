"""Augmentation of synthetic speech toward real recordings, with phone timings kept exact.

Each transform takes and returns an :class:`~audio2exp.corpus.Utterance`. Only the speed change
moves time; it rescales every phone boundary by the same factor, so timings stay exact.
Transforms: additive noise at a signal-to-noise ratio (white, pink or babble-like), reverberation
(a synthetic exponentially decaying impulse response), band limiting (telephone-like or a random
low-pass), gain, speed change (resampling: tempo and pitch together) and pitch shift (tempo kept).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from audio2exp.corpus import Utterance


def add_noise(u: Utterance, snr_db: float, rng: np.random.Generator, kind: str = "white") -> Utterance:
    """Add noise at ``snr_db`` dB relative to the utterance's mean power. kind: white | pink | babble."""
    x = u.audio.astype(np.float64)
    n = rng.standard_normal(len(x))
    if kind == "pink":  # 1/f power: scale the spectrum by 1/sqrt(f)
        f = np.fft.rfft(n)
        f /= np.sqrt(np.maximum(np.arange(len(f)), 1))
        n = np.fft.irfft(f, len(x))
    elif kind == "babble":  # speech-shaped: amplitude-modulated band noise
        from scipy.signal import butter, sosfilt

        n = sosfilt(butter(2, [200, 3000], "bandpass", fs=u.sample_rate, output="sos"), n)
        n *= 1 + 0.8 * np.sin(2 * np.pi * rng.uniform(2, 6) * np.arange(len(x)) / u.sample_rate)
    elif kind != "white":
        raise ValueError(f"kind: expected 'white', 'pink' or 'babble', got {kind!r}")
    p_sig = np.mean(x ** 2) + 1e-12
    n *= np.sqrt(p_sig / (np.mean(n ** 2) + 1e-12) / 10 ** (snr_db / 10))
    return replace(u, audio=(x + n).astype(np.float32))


def reverb(u: Utterance, rt60: float, rng: np.random.Generator, wet: float = 0.5) -> Utterance:
    """Convolve with a synthetic room response: decaying noise with reverberation time ``rt60`` s."""
    from scipy.signal import fftconvolve

    sr = u.sample_rate
    t = np.arange(int(sr * rt60)) / sr
    ir = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
    ir[0] = 0
    ir *= wet / (np.sqrt(np.sum(ir ** 2)) + 1e-12)
    ir[0] = 1.0
    y = fftconvolve(u.audio.astype(np.float64), ir)[: len(u.audio)]  # causal: timings unchanged
    return replace(u, audio=(y / max(1.0, np.abs(y).max())).astype(np.float32))


def band_limit(u: Utterance, low: float, high: float) -> Utterance:
    """Band-pass ``low``-``high`` Hz (4th-order Butterworth, zero phase so timings stay put)."""
    from scipy.signal import butter, sosfiltfilt

    high = min(high, 0.45 * u.sample_rate)
    sos = butter(4, [low, high], "bandpass", fs=u.sample_rate, output="sos")
    return replace(u, audio=sosfiltfilt(sos, u.audio.astype(np.float64)).astype(np.float32))


def gain(u: Utterance, db: float) -> Utterance:
    """Scale by ``db`` decibels, clipping to [-1, 1] as a recorder would."""
    return replace(u, audio=np.clip(u.audio * 10 ** (db / 20), -1, 1).astype(np.float32))


def change_speed(u: Utterance, factor: float) -> Utterance:
    """Play ``factor`` times faster (resampling): every phone boundary is divided by ``factor``."""
    from scipy.signal import resample_poly

    up = 1000
    down = int(round(up * factor))
    y = resample_poly(u.audio.astype(np.float64), up, down)
    f = down / up  # the factor actually applied
    return replace(u, audio=y.astype(np.float32), start=u.start / f, end=u.end / f)


def pitch_shift(u: Utterance, semitones: float) -> Utterance:
    """Shift pitch by ``semitones`` keeping duration (librosa phase vocoder)."""
    import librosa

    y = librosa.effects.pitch_shift(u.audio.astype(np.float32), sr=u.sample_rate, n_steps=semitones)
    return replace(u, audio=y[: len(u.audio)].astype(np.float32))


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of the random augmentation chain (:func:`augment`)."""

    p_noise: float = 0.6
    snr_db: tuple[float, float] = (5.0, 35.0)
    p_reverb: float = 0.4
    rt60: tuple[float, float] = (0.15, 0.7)
    p_band: float = 0.4
    p_gain: float = 0.8
    gain_db: tuple[float, float] = (-20.0, 6.0)
    p_speed: float = 0.4
    speed: tuple[float, float] = (0.85, 1.2)
    p_pitch: float = 0.15
    semitones: tuple[float, float] = (-3.0, 3.0)


def retime(u: Utterance, rng: np.random.Generator, cfg: AugmentConfig = AugmentConfig()) -> Utterance:
    """The timing part of :func:`augment`: a random speed change (phone times follow exactly)."""
    if rng.random() < cfg.p_speed:
        u = change_speed(u, rng.uniform(*cfg.speed))
    return u


def degrade(u: Utterance, rng: np.random.Generator, cfg: AugmentConfig = AugmentConfig()) -> Utterance:
    """The channel part of :func:`augment`: pitch, reverb, band limit, noise, gain (timings untouched)."""
    if rng.random() < cfg.p_pitch:
        u = pitch_shift(u, rng.uniform(*cfg.semitones))
    if rng.random() < cfg.p_reverb:
        u = reverb(u, rng.uniform(*cfg.rt60), rng)
    if rng.random() < cfg.p_band:
        if rng.random() < 0.5:
            u = band_limit(u, 300, 3400)  # telephone
        else:
            u = band_limit(u, rng.uniform(60, 200), rng.uniform(3000, 8000))
    if rng.random() < cfg.p_noise:
        u = add_noise(u, rng.uniform(*cfg.snr_db), rng, ("white", "pink", "babble")[rng.integers(3)])
    if rng.random() < cfg.p_gain:
        u = gain(u, rng.uniform(*cfg.gain_db))
    return u


def augment(u: Utterance, rng: np.random.Generator, cfg: AugmentConfig = AugmentConfig()) -> Utterance:
    """A random chain: speed, then pitch, reverb, band limit, noise, gain (each with its probability).

    Training computes targets between the two halves (:func:`retime`, then :func:`degrade`) so
    loudness-driven targets come from the clean signal.
    """
    return degrade(retime(u, rng, cfg), rng, cfg)
