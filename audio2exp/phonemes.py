"""Phonemes -> visemes with coarticulation.

Two phoneme alphabets come in: espeak-ng mnemonics (the synthetic corpus, e.g. ``'oU``, ``tS``,
``a#``) and ARPAbet (PocketSphinx alignment and recognition, e.g. ``OW``, ``CH``). Both map onto
the 15 visemes of the MPEG-4 / Oculus set (:data:`VISEMES`); diphthongs split into two visemes
that share the phone's time.

Coarticulation follows Cohen & Massaro (1993): every viseme segment has a dominance function
that decays exponentially from its centre, and a frame's viseme weights are the dominance-
normalised blend of its neighbours. On top of that, lips close before a bilabial release: during
the core of every /p b m/ segment the weights are forced onto ``PP`` (at least one frame per
segment, however short), so the blend can never leave a bilabial open.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

VISEMES = ("sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "ih", "oh", "ou")
VISEME_INDEX = {v: i for i, v in enumerate(VISEMES)}
VOWEL_VISEMES = frozenset({"aa", "E", "ih", "oh", "ou"})

# espeak-ng English phoneme mnemonics (stress marks removed) -> viseme(s). Diphthongs list two
# (or three) visemes. Unknown symbols fall back through _espeak_fallback.
_ESPEAK = {
    "_": ("sil",), "_:": ("sil",), "_!": ("sil",), "_|": ("sil",), "_^_": ("sil",), "||": ("sil",),
    "p": ("PP",), "b": ("PP",), "m": ("PP",),
    "f": ("FF",), "v": ("FF",),
    "T": ("TH",), "D": ("TH",),
    "t": ("DD",), "d": ("DD",), "t#": ("DD",), "d#": ("DD",), "?": ("DD",),
    "k": ("kk",), "g": ("kk",), "N": ("kk",), "h": ("kk",), "x": ("kk",),
    "tS": ("CH",), "dZ": ("CH",), "S": ("CH",), "Z": ("CH",),
    "s": ("SS",), "z": ("SS",),
    "n": ("nn",), "l": ("nn",), "L": ("nn",), "n-": ("nn",), "l/": ("nn",), "l/2": ("nn",), "@L": ("E", "nn"),
    "r": ("RR",), "r-": ("RR",), "R": ("RR",), "3": ("RR",), "3:": ("RR",), "@r": ("RR",),
    "w": ("ou",), "j": ("ih",), "W": ("ou",), ";": ("ih",),  # ";" palatalises the previous consonant
    "a": ("aa",), "A:": ("aa",), "A": ("aa",), "aa": ("aa",), "a#": ("aa",), "V": ("aa",), "A@": ("aa", "RR"),
    "E": ("E",), "e": ("E",), "@": ("E",), "@2": ("E",), "@5": ("E",), "e@": ("E", "E"), "eI": ("E", "ih"),
    "I": ("ih",), "i": ("ih",), "i:": ("ih",), "I2": ("ih",), "I#": ("ih",), "i@": ("ih", "E"), "i@3": ("ih", "RR"),
    "0": ("oh",), "O": ("oh",), "O:": ("oh",), "o": ("oh",), "oU": ("oh", "ou"), "@U": ("E", "ou"),
    "OI": ("oh", "ih"), "O@": ("oh", "RR"), "o@": ("oh", "RR"),
    "U": ("ou",), "u:": ("ou",), "u": ("ou",), "U@": ("ou", "RR"),
    "aI": ("aa", "ih"), "aU": ("aa", "ou"), "aI@": ("aa", "ih", "E"), "aI3": ("aa", "ih", "RR"), "aU@": ("aa", "ou", "E"),
}

# ARPAbet (CMU dictionary, PocketSphinx) -> viseme(s); stress digits are stripped first.
_ARPABET = {
    "AA": ("aa",), "AE": ("aa",), "AH": ("E",), "AO": ("oh",), "AW": ("aa", "ou"), "AY": ("aa", "ih"),
    "B": ("PP",), "CH": ("CH",), "D": ("DD",), "DH": ("TH",), "EH": ("E",), "ER": ("RR",), "EY": ("E", "ih"),
    "F": ("FF",), "G": ("kk",), "HH": ("kk",), "IH": ("ih",), "IY": ("ih",), "JH": ("CH",), "K": ("kk",),
    "L": ("nn",), "M": ("PP",), "N": ("nn",), "NG": ("kk",), "OW": ("oh", "ou"), "OY": ("oh", "ih"),
    "P": ("PP",), "R": ("RR",), "S": ("SS",), "SH": ("CH",), "T": ("DD",), "TH": ("TH",), "UH": ("ou",),
    "UW": ("ou",), "V": ("FF",), "W": ("ou",), "Y": ("ih",), "Z": ("SS",), "ZH": ("CH",), "SIL": ("sil",),
}
ARPABET_VOWELS = frozenset({"AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"})
BILABIAL_ARPABET = frozenset({"P", "B", "M"})

# Dominance (how strongly a segment holds its shape against neighbours) and its time constant.
# Bilabials and labiodentals must reach their target; /h/ and schwa take the shape of neighbours.
_DOMINANCE = {"sil": 0.6, "PP": 3.0, "FF": 2.0, "TH": 1.0, "DD": 0.6, "kk": 0.4, "CH": 1.2, "SS": 0.9,
              "nn": 0.6, "RR": 1.0, "aa": 1.3, "E": 1.0, "ih": 1.0, "oh": 1.4, "ou": 1.5}
_SPLIT = {2: (0.6, 0.4), 3: (0.45, 0.3, 0.25)}  # time shares of diphthong / triphthong parts


def strip_stress(symbol: str) -> tuple[str, int]:
    """Remove espeak stress marks (``'`` primary, ``,`` secondary) or ARPAbet digits.

    Returns (bare symbol, stress) with stress 1 primary, 2 secondary, 0 none.
    """
    stress = 1 if "'" in symbol else 2 if "," in symbol else 0
    s = symbol.replace("'", "").replace(",", "").replace("=", "")
    if s[-1:].isdigit() and s[:-1].isupper() and s[:-1].isalpha():  # ARPAbet AH0 / AH1 / AH2
        stress = {"1": 1, "2": 2}.get(s[-1], 0)
        s = s[:-1]
    return s, stress


def _espeak_fallback(s: str) -> tuple[str, ...]:
    # Longest known prefix: variants such as "I2#" or "aI@3" reduce to a listed phoneme.
    for n in range(len(s) - 1, 0, -1):
        if s[:n] in _ESPEAK:
            return _ESPEAK[s[:n]]
    return ("sil",) if s.startswith("_") else ("E",)


def phone_visemes(symbol: str, alphabet: str = "espeak") -> tuple[str, ...]:
    """The viseme(s) of one phone (stress marks allowed). ``alphabet``: "espeak" or "arpabet"."""
    s, _ = strip_stress(symbol)
    if alphabet == "arpabet":
        s = s.upper()
        if s not in _ARPABET:  # +NSN+, +SPN+, <sil>, noise: treat as silence
            return ("sil",)
        return _ARPABET[s]
    if alphabet != "espeak":
        raise ValueError(f"alphabet: expected 'espeak' or 'arpabet', got {alphabet!r}")
    return _ESPEAK.get(s) or _espeak_fallback(s)


@dataclass(frozen=True)
class Segments:
    """Viseme segments on a time line: ``start``, ``end`` (S,) float seconds, ``viseme`` (S,) int
    indices into :data:`VISEMES`."""

    start: np.ndarray
    end: np.ndarray
    viseme: np.ndarray


def phones_to_segments(start, end, symbols, alphabet: str = "espeak") -> Segments:
    """Split phones (start, end seconds, symbol) into viseme segments; diphthongs split their time."""
    st, en, vi = [], [], []
    for s, e, sym in zip(start, end, symbols):
        vs = phone_visemes(sym, alphabet)
        shares = _SPLIT.get(len(vs), (1.0,))
        t = float(s)
        for v, share in zip(vs, shares):
            d = (float(e) - float(s)) * share
            st.append(t), en.append(t + d), vi.append(VISEME_INDEX[v])
            t += d
    return Segments(np.asarray(st, np.float64), np.asarray(en, np.float64), np.asarray(vi, np.int64))


def frame_times(n_frames: int, fps: float, offset: float = 0.0) -> np.ndarray:
    """(n_frames,) seconds: the time each output frame shows (frame k at ``offset + k / fps``)."""
    return offset + np.arange(n_frames, dtype=np.float64) / fps


def frame_labels(seg: Segments, times: np.ndarray) -> np.ndarray:
    """(T,) int: the viseme of the segment under each time (``sil`` outside all segments)."""
    lab = np.full(len(times), VISEME_INDEX["sil"], np.int64)
    if len(seg.start):
        i = np.searchsorted(seg.start, times, side="right") - 1
        ok = (i >= 0) & (times < seg.end[np.clip(i, 0, None)])
        lab[ok] = seg.viseme[i[ok]]
    return lab


def coarticulate(seg: Segments, times: np.ndarray, tau: float = 0.04) -> np.ndarray:
    """Viseme weights (T, 15) per frame, rows summing to 1 (Cohen-Massaro dominance blend).

    Args:
        seg: viseme segments (seconds). times: (T,) frame times in seconds.
        tau: dominance time constant in seconds beyond a segment's half duration.
    """
    T, V = len(times), len(VISEMES)
    if len(seg.start) == 0:
        w = np.zeros((T, V))
        w[:, VISEME_INDEX["sil"]] = 1
        return w
    centre = (seg.start + seg.end) / 2
    half = np.maximum((seg.end - seg.start) / 2, 1e-3)
    alpha = np.array([_DOMINANCE[VISEMES[v]] for v in seg.viseme])
    # Distance outside the segment's own span, in units of tau (0 inside): a segment fully owns
    # its interior and fades over ~2 tau, so long silences settle to rest.
    dist = np.maximum(np.abs(times[:, None] - centre[None]) - half[None] * 0.5, 0) / tau  # (T, S)
    dom = alpha[None] * np.exp(-dist)
    onehot = np.eye(V)[seg.viseme]  # (S, V)
    w = dom @ onehot
    w /= np.maximum(w.sum(1, keepdims=True), 1e-12)
    # Outside the utterance (before the first / after the last segment) blend toward rest.
    far = dom.max(1) < 1e-4
    w[far] = np.eye(V)[VISEME_INDEX["sil"]]
    # Bilabial closure: force PP during the core of each /p b m/ segment (the lips must meet
    # before the release), and at the frame nearest the centre if the segment is shorter than a frame.
    pp = VISEME_INDEX["PP"]
    force = np.zeros(T)
    for s, e in zip(seg.start[seg.viseme == pp], seg.end[seg.viseme == pp]):
        d = e - s
        core = (times >= s + 0.15 * d) & (times <= e - 0.1 * d)
        if not core.any() and T:
            k = int(np.argmin(np.abs(times - (s + e) / 2)))
            if abs(times[k] - (s + e) / 2) <= max(d, 1 / 50):
                core[k] = True
        force[core] = 1.0
    w = w * (1 - force[:, None])
    w[:, pp] += force
    return w
