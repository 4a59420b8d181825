"""Training targets for any model: phones -> viseme weights -> expression + jaw, with JALI jaw.

``expression(t) = W(t) @ rig.expression`` and ``jaw(t) = (W(t) @ rig.jaw) * g(t)``, where ``W`` are
the coarticulated viseme weights (:func:`audio2exp.phonemes.coarticulate`) and ``g`` the JALI jaw
gain (Edwards et al. 2016: the jaw axis follows vocal effort): louder frames open the jaw more,
``g = clip(1 + (L - L_ref) / 24 dB, 0.6, 1.4)`` with ``L`` the frame's RMS level and ``L_ref`` the
median level over the utterance's speech frames.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audio2exp.phonemes import VISEME_INDEX, coarticulate, frame_labels, phones_to_segments
from audio2exp.rig import JAW_AXIS, ModelRig


@dataclass(frozen=True)
class TargetConfig:
    tau: float = 0.04  # coarticulation time constant, seconds
    jali: bool = True
    jali_db: float = 24.0  # dB of level change that doubles (or zeroes) the jaw gain
    jali_range: tuple[float, float] = (0.6, 1.4)


def level_db(audio: np.ndarray, sample_rate: int, times: np.ndarray, window: float = 0.03) -> np.ndarray:
    """(T,) RMS level in dB of a ``window``-second span centred at each time (vectorised via a
    cumulative sum of squares)."""
    x = np.asarray(audio, np.float64)
    c = np.concatenate([[0.0], np.cumsum(x ** 2)])
    h = max(1, int(window * sample_rate / 2))
    i = np.clip(np.round(times * sample_rate).astype(np.int64), 0, len(x))
    a, b = np.clip(i - h, 0, len(x)), np.clip(i + h, 0, len(x))
    p = (c[b] - c[a]) / np.maximum(b - a, 1)
    return 10 * np.log10(p + 1e-10)


def jali_gain(audio, sample_rate: int, times: np.ndarray, speech: np.ndarray, cfg: TargetConfig = TargetConfig()) -> np.ndarray:
    """(T,) jaw gain from loudness (module docstring); 1 where there is no speech frame at all."""
    L = level_db(audio, sample_rate, times)
    if not speech.any():
        return np.ones(len(times))
    ref = np.median(L[speech])
    return np.clip(1 + (L - ref) / cfg.jali_db, *cfg.jali_range)


def viseme_targets(start, end, phones, times: np.ndarray, alphabet: str = "espeak",
                   tau: float = 0.04) -> tuple[np.ndarray, np.ndarray]:
    """Coarticulated viseme weights (T, 15) and per-frame labels (T,) int for phones at ``times``."""
    seg = phones_to_segments(start, end, phones, alphabet)
    return coarticulate(seg, times, tau), frame_labels(seg, times)


def expression_targets(utt, rig: ModelRig, times: np.ndarray, cfg: TargetConfig = TargetConfig()) -> dict[str, np.ndarray]:
    """Targets of one :class:`~audio2exp.corpus.Utterance` at ``times`` (T,) seconds.

    Returns ``expression`` (T, n_expression) float32, ``jaw`` (T, 3) float32 radians,
    ``weights`` (T, 15) viseme weights and ``labels`` (T,) int64 visemes.
    """
    W, labels = viseme_targets(utt.start, utt.end, utt.phones, times, utt.alphabet, cfg.tau)
    expr, jaw = rig.apply(W)
    if cfg.jali:
        jaw[:, JAW_AXIS] *= jali_gain(utt.audio, utt.sample_rate, times, labels != VISEME_INDEX["sil"], cfg)
    return {"expression": expr, "jaw": jaw.astype(np.float32), "weights": W.astype(np.float32), "labels": labels}
