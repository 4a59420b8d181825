"""audio2exp: speech to expression sequences, rendered as talking-head animation.

Stages, one module each: ``corpus`` (espeak-ng speech with phoneme timings) and ``augment``,
``phonemes`` (visemes, coarticulation), ``rig`` (visemes -> any model's expressions),
``targets``, ``features`` (log-mel), ``network`` (banded-attention transformer), ``train``,
``baselines``, ``evaluate``, ``api`` (:func:`predict`, streaming), ``animate``/``video`` (rendering).
"""
from __future__ import annotations

__all__ = ["predict", "predict_file", "load_predictor"]


def __getattr__(name):  # lazy: importing audio2exp loads neither torch models nor librosa
    if name in __all__:
        from audio2exp import api

        return getattr(api, name)
    raise AttributeError(f"module 'audio2exp' has no attribute {name!r}")
