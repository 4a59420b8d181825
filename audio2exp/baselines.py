"""Baselines the network is measured against, and PocketSphinx phone timing for real speech.

- :func:`jaw_from_loudness`: the mouth only opens and closes with the signal level (no lip shapes).
- :func:`rhubarb_style`: phone recognition without a transcript (PocketSphinx allphone decoding),
  then exactly our viseme rules, coarticulation, rig and JALI jaw (the approach of Rhubarb Lip Sync).
- :func:`forced_alignment`: PocketSphinx alignment of a recording with its transcript (phones with
  times), used to score real speech.
"""
from __future__ import annotations

import os

import numpy as np

from audio2exp.corpus import Utterance
from audio2exp.features import SAMPLE_RATE
from audio2exp.rig import JAW_AXIS, ModelRig
from audio2exp.targets import TargetConfig, expression_targets, level_db


def _pcm16(audio16k: np.ndarray) -> bytes:
    return (np.clip(audio16k, -1, 1) * 32767).astype(np.int16).tobytes()


def _decoder(**kw):
    try:
        from pocketsphinx import Decoder
    except ImportError as e:
        raise ImportError("phone recognition and alignment need pocketsphinx: pip install 'face3d-toolkit[audio]'") from e
    return Decoder(samprate=SAMPLE_RATE, loglevel="FATAL", **kw)


def recognize_phones(audio16k: np.ndarray) -> Utterance:
    """PocketSphinx allphone recognition: an ARPAbet :class:`Utterance` (times in seconds)."""
    from pocketsphinx import get_model_path

    d = _decoder(allphone=os.path.join(get_model_path(), "en-us", "en-us-phone.lm.bin"), lw=2.0, beam=1e-20, pbeam=1e-20)
    d.start_utt()
    d.process_raw(_pcm16(audio16k), full_utt=True)
    d.end_utt()
    segs = [(s.start_frame / 100, (s.end_frame + 1) / 100, s.word) for s in d.seg()]
    return _utt(audio16k, segs)


def _utt(audio16k, segs) -> Utterance:
    st = np.array([s for s, _, _ in segs], np.float64)
    en = np.array([e for _, e, _ in segs], np.float64)
    return Utterance(audio16k, SAMPLE_RATE, st, en, tuple(p for _, _, p in segs), alphabet="arpabet")


def forced_alignment(audio16k: np.ndarray, text: str) -> tuple[Utterance, list[tuple[str, int, int]]]:
    """Align ``text`` to the audio. Returns the ARPAbet phone :class:`Utterance` and the words as
    (word, first phone index, end phone index). Raises ValueError when alignment fails."""
    import re

    d = _decoder()
    words = [w for w in re.sub(r"[^a-z' ]", " ", text.lower()).split() if w]
    missing = [w for w in words if d.lookup_word(w) is None]
    if missing:
        raise ValueError(f"forced alignment: words not in the PocketSphinx dictionary: {missing}")
    pcm = _pcm16(audio16k)
    d.set_align_text(" ".join(words))
    d.start_utt()
    d.process_raw(pcm, full_utt=True)
    d.end_utt()
    if d.hyp() is None:
        raise ValueError(f"forced alignment failed for {text!r}")
    d.set_alignment()  # second pass: phone-level alignment (d.hyp() crashes after it; do not call)
    d.start_utt()
    d.process_raw(pcm, full_utt=True)
    d.end_utt()
    alignment = d.get_alignment()
    if alignment is None:
        raise ValueError(f"forced alignment: no phone alignment for {text!r}")
    segs, word_spans = [], []
    for w in alignment:
        first = len(segs)
        for p in w:
            segs.append((p.start / 100, (p.start + p.duration) / 100, p.name))
        name = re.sub(r"\(\d+\)$", "", w.name)
        if not name.startswith(("<", "[")):
            word_spans.append((name, first, len(segs)))
    return _utt(audio16k, segs), word_spans


def rhubarb_style(audio16k: np.ndarray, rig: ModelRig, times: np.ndarray) -> dict[str, np.ndarray]:
    """Baseline: recognised phones -> our visemes/coarticulation/rig/JALI. Returns expression
    (T, K), jaw (T, 3) at ``times`` seconds."""
    u = recognize_phones(audio16k)
    tg = expression_targets(u, rig, times, TargetConfig())
    return {"expression": tg["expression"], "jaw": tg["jaw"]}


def jaw_from_loudness(audio16k: np.ndarray, n_expression: int, times: np.ndarray, max_jaw: float = 0.15) -> dict[str, np.ndarray]:
    """Baseline: jaw angle from the level alone, ``max_jaw * clip((L - floor) / (peak - floor))``
    with floor / peak the 10th / 95th percentile of the utterance's level; expression zero."""
    L = level_db(audio16k, SAMPLE_RATE, times, window=0.04)
    lo, hi = np.percentile(L, 10), np.percentile(L, 95)
    jaw = np.zeros((len(times), 3), np.float32)
    jaw[:, JAW_AXIS] = max_jaw * np.clip((L - lo) / max(hi - lo, 1e-6), 0, 1)
    return {"expression": np.zeros((len(times), n_expression), np.float32), "jaw": jaw}
