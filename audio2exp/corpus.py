"""A seeded speech corpus with exact phoneme timings.

Speech comes from espeak-ng's C library (the ``espeakng-loader`` wheel ships ``libespeak-ng.so``
and its data; GPL-3+, so it is called through ctypes, never vendored). Its phoneme events give
each phoneme's start in samples; a phoneme ends where the next event (or the audio) starts.
Texts are random sentences over the CMU pronouncing dictionary that ships in the
``pocketsphinx`` wheel. Texts, voices, rates and pitches are pure functions of the seed; the
audio itself is not bit-exact: espeak-ng 1.52 varies by a few samples (well under 1 % of the
duration, phones unchanged) from call to call, even after ``espeak_ng_SetRandSeed``.

Optional extra engines (flite, festival from apt) are not used: ``make test`` can rely only on
pip packages.
"""
from __future__ import annotations

import ctypes
import hashlib
import threading
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np

ESPEAK_SAMPLE_RATE = 22050
# Base voices that SetVoiceByName accepts (see /work/shared/ENVIRONMENT.md) and variants.
TRAIN_VOICES = ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029")
HELDOUT_VOICES = ("en-us-nyc", "en-gb-x-gbclan", "en-gb-x-gbcwmd")
TRAIN_VARIANTS = ("", "m1", "m3", "m5", "m7", "f1", "f3", "f5", "klatt", "klatt3", "Andy", "Annie", "john",
                  "linda", "max", "paul", "steph", "travis", "grandma", "whisper")
HELDOUT_VARIANTS = ("m2", "m6", "f2", "f4", "klatt2", "Alicia", "adam", "robert", "belinda", "whisperf")


@dataclass(frozen=True)
class Utterance:
    """One utterance: ``audio`` (N,) float32 in [-1, 1] at ``sample_rate`` Hz and its phones:
    ``start``, ``end`` (P,) float64 seconds, ``phones`` (P,) symbols in ``alphabet``
    ("espeak" mnemonics with stress marks, or "arpabet")."""

    audio: np.ndarray
    sample_rate: int
    start: np.ndarray
    end: np.ndarray
    phones: tuple[str, ...]
    text: str = ""
    voice: str = ""
    alphabet: str = "espeak"

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate


class _EspeakEvent(ctypes.Structure):
    # espeak_EVENT from speak_lib.h; the union id is read as its 8-byte string member.
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_EspeakEvent))
_EVENT_END, _EVENT_PHONEME = 0, 7
_lock = threading.Lock()  # the C library keeps one global synthesizer per process


class _Espeak:
    def __init__(self):
        try:
            import espeakng_loader
        except ImportError as e:
            raise ImportError("speech synthesis needs espeak-ng: pip install 'face3d-toolkit[audio]' "
                              "(or espeakng-loader==0.2.4)") from e
        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        sr = self.lib.espeak_Initialize(2, 0, espeakng_loader.get_data_path().encode(), 1)  # SYNCHRONOUS, PHONEME_EVENTS
        if sr != ESPEAK_SAMPLE_RATE:
            raise RuntimeError(f"espeak_Initialize: expected sample rate {ESPEAK_SAMPLE_RATE}, got {sr}")
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, str]] = []
        self._cb = _CALLBACK(self._on_synth)  # keep a reference: ctypes callbacks must outlive the call
        self.lib.espeak_SetSynthCallback(self._cb)

    def _on_synth(self, wav, n, events):
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, (n,)).copy())
        i = 0
        while events[i].type != _EVENT_END:
            if events[i].type == _EVENT_PHONEME:
                self._events.append((events[i].sample, bytes(events[i].id).split(b"\0")[0].decode()))
            i += 1
        return 0

    def synth(self, text: str, voice: str, rate: int, pitch: int, pitch_range: int) -> tuple[np.ndarray, list]:
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"voice: espeak-ng does not accept {voice!r} (expected e.g. 'en-us' or 'en-us+f3')")
        for par, val in ((1, rate), (3, pitch), (4, pitch_range)):  # espeakRATE, espeakPITCH, espeakRANGE
            self.lib.espeak_SetParameter(par, int(val), 0)
        self._chunks, self._events = [], []
        data = text.encode()
        err = self.lib.espeak_Synth(data, len(data) + 1, 0, 0, 0, 1, None, None)  # espeakCHARS_UTF8
        self.lib.espeak_Synchronize()
        if err != 0:
            raise RuntimeError(f"espeak_Synth failed with code {err} for {text!r}")
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return audio, list(self._events)


@lru_cache(maxsize=1)
def _espeak() -> _Espeak:
    return _Espeak()


def synthesize(text: str, voice: str = "en-us", rate: int = 175, pitch: int = 50, pitch_range: int = 50) -> Utterance:
    """Speak ``text`` with espeak-ng and return the audio with its phoneme timings.

    Args:
        voice: an espeak-ng voice, optionally with a variant (``"en-us+f3"``).
        rate: words per minute (80-450). pitch, pitch_range: 0-100.
    Returns:
        :class:`Utterance` at 22,050 Hz; phones cover the whole audio (pauses are ``_`` phones).
    """
    if not text.strip():
        raise ValueError("text: expected some words to speak, got an empty string")
    with _lock:
        pcm, events = _espeak().synth(text, voice, rate, pitch, pitch_range)
    audio = pcm.astype(np.float32) / 32768.0
    n = len(audio)
    events = [(s, p) for s, p in events if p and s < n]
    # Several events can share a sample (zero-length phones): keep their order, drop empties.
    starts = np.array([s for s, _ in events] + [n], np.float64) / ESPEAK_SAMPLE_RATE
    keep = np.diff(starts) > 0
    phones = tuple(p for (_, p), k in zip(events, keep) if k)
    return Utterance(audio, ESPEAK_SAMPLE_RATE, starts[:-1][keep], starts[1:][keep], phones, text, voice)


@lru_cache(maxsize=1)
def word_list() -> tuple[str, ...]:
    """Plain alphabetic words of the CMU dictionary in the pocketsphinx wheel (sorted, ~120k)."""
    try:
        import pocketsphinx
    except ImportError as e:
        raise ImportError("the text source needs pocketsphinx: pip install 'face3d-toolkit[audio]'") from e
    from pathlib import Path

    path = Path(pocketsphinx.get_model_path()) / "en-us" / "cmudict-en-us.dict"
    words = set()
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            w = line.split(" ", 1)[0]
            if w.isalpha() and w.isascii() and 2 <= len(w) <= 12:
                words.add(w.lower())
    return tuple(sorted(words))


def _word_split(word: str) -> int:
    """0 train or 1 held-out, by a hash of the word (stable across runs and machines)."""
    return int(hashlib.sha1(word.encode()).hexdigest()[:8], 16) % 10 == 0


@dataclass(frozen=True)
class CorpusConfig:
    """Corpus generation settings; texts, voices and parameters are pure functions of these."""

    n_utterances: int = 400
    seed: int = 0
    split: str = "train"  # "train" or "heldout": disjoint voices, variants and vocabulary
    words: tuple[int, int] = (3, 14)  # words per sentence (inclusive range)
    rate: tuple[int, int] = (120, 240)  # words per minute
    pitch: tuple[int, int] = (20, 80)
    pitch_range: tuple[int, int] = (20, 90)
    common_words: int = 3000  # sentences mix frequent short words with the rest of the dictionary
    voices: tuple[str, ...] = field(default=())  # override the split's voices


def _vocabulary(split: str) -> tuple[list[str], list[str]]:
    held = 1 if split == "heldout" else 0
    words = [w for w in word_list() if _word_split(w) == held]
    short = sorted(words, key=lambda w: (len(w), w))
    return short, words


def sentences(n: int, seed: int = 0, split: str = "train", words: tuple[int, int] = (3, 14), common_words: int = 3000) -> list[str]:
    """``n`` random sentences of the split's vocabulary (train and held-out share no word)."""
    short, allw = _vocabulary(split)
    short = short[:common_words]
    rng = np.random.default_rng([seed, 1 if split == "heldout" else 0, 7])
    out = []
    for _ in range(n):
        k = int(rng.integers(words[0], words[1] + 1))
        ws = [short[rng.integers(len(short))] if rng.random() < 0.6 else allw[rng.integers(len(allw))] for _ in range(k)]
        if k > 6 and rng.random() < 0.5:  # a pause inside some sentences
            ws[k // 2] += ","
        out.append(" ".join(ws).capitalize() + (". " if rng.random() < 0.8 else "? "))
    return out


def corpus_voices(split: str) -> list[str]:
    base, var = (HELDOUT_VOICES, HELDOUT_VARIANTS) if split == "heldout" else (TRAIN_VOICES, TRAIN_VARIANTS)
    return [b + (f"+{v}" if v else "") for b in base for v in var]


@dataclass(frozen=True)
class CorpusItem:
    """One utterance to speak: its text and espeak-ng settings (a pure function of the seed)."""

    text: str
    voice: str
    rate: int  # words per minute
    pitch: int
    pitch_range: int

    def speak(self) -> Utterance:
        """Synthesize it (not bit-exact from call to call: see the module docstring)."""
        u = synthesize(self.text, self.voice, self.rate, self.pitch, self.pitch_range)
        return replace(u, voice=f"{self.voice} rate={self.rate} pitch={self.pitch} range={self.pitch_range}")


def corpus_items(cfg: CorpusConfig = CorpusConfig()) -> list[CorpusItem]:
    """The ``cfg.n_utterances`` items of the corpus (texts, voices, rate, pitch drawn from the seed),
    without synthesizing them: what a worker needs to speak any one of them."""
    if cfg.split not in ("train", "heldout"):
        raise ValueError(f"split: expected 'train' or 'heldout', got {cfg.split!r}")
    texts = sentences(cfg.n_utterances, cfg.seed, cfg.split, cfg.words, cfg.common_words)
    voices = list(cfg.voices) or corpus_voices(cfg.split)
    rng = np.random.default_rng([cfg.seed, 11])
    out = []
    for text in texts:
        voice = voices[rng.integers(len(voices))]
        rate = int(rng.integers(cfg.rate[0], cfg.rate[1] + 1))
        pitch = int(rng.integers(cfg.pitch[0], cfg.pitch[1] + 1))
        prange = int(rng.integers(cfg.pitch_range[0], cfg.pitch_range[1] + 1))
        out.append(CorpusItem(text, voice, rate, pitch, prange))
    return out


def generate_corpus(cfg: CorpusConfig = CorpusConfig()):
    """Yield ``cfg.n_utterances`` :class:`Utterance` s (:func:`corpus_items`, spoken one by one)."""
    for item in corpus_items(cfg):
        yield item.speak()
