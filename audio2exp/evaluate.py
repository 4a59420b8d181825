"""Evaluation: held-out synthetic speech (exact targets) and real recordings (aligned phones).

Synthetic (unseen voices, variants and vocabulary; every utterance augmented):

- LVE, lip vertex error (mm): per frame the max L2 distance over the model's ``lips`` vertices
  between prediction and target (full model forward, jaw included), mean over all frames.
- Viseme frame accuracy: each frame's lip vertices are classified as the nearest of the 15 rig
  viseme poses (mean vertex distance) and compared with the viseme of the phone under the frame.
  The same classifier is applied to every method; on the targets themselves it gives the ceiling
  (``oracle``), below 100 % because coarticulation blends neighbours.

Real speech (recordings with transcripts, PocketSphinx forced alignment):

- Bilabial closure rate: fraction of /p b m/ phones during which (+-10 ms) the predicted inner-lip
  gap falls to <= ``closed_mm``.
- Open-vowel rate: fraction of stressed vowels (primary stress in espeak-ng's transcription of the
  word; when its vowel count differs from the alignment's, the longest vowel of the word) whose
  maximum gap reaches >= ``open_mm``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from audio2exp.phonemes import ARPABET_VOWELS, BILABIAL_ARPABET, VISEMES, strip_stress
from audio2exp.rig import ModelRig, lip_opening
from face3d.models import MorphableModel

METHODS = ("ours", "jaw-loudness", "rhubarb-style")


@dataclass(frozen=True)
class EvalConfig:
    n_utterances: int = 40
    seed: int = 1234
    fps: float = 25.0
    augment: bool = True
    real_fps: float = 100.0  # fine frames so short /p b m/ phones contain frames
    closed_mm: float = 1.0
    open_mm: float = 2.0


def heldout_set(model: MorphableModel, rig: ModelRig, cfg: EvalConfig = EvalConfig()) -> list[dict]:
    """Held-out examples: ``audio`` (N,) 16 kHz, targets ``expression`` (T, K), ``jaw`` (T, 3),
    ``labels`` (T,) at ``times`` k / fps, and ``text``/``voice``."""
    from audio2exp.augment import degrade, retime
    from audio2exp.corpus import CorpusConfig, generate_corpus
    from audio2exp.features import SAMPLE_RATE, resample
    from audio2exp.targets import expression_targets

    rng = np.random.default_rng([cfg.seed, 5])
    out = []
    for u in generate_corpus(CorpusConfig(n_utterances=cfg.n_utterances, seed=cfg.seed, split="heldout")):
        if cfg.augment:
            u = retime(u, rng)
        T = max(1, int(round(u.duration * cfg.fps)))
        times = np.arange(T) / cfg.fps
        tg = expression_targets(u, rig, times)
        if cfg.augment:
            u = degrade(u, rng)
        out.append({"audio": resample(u.audio, u.sample_rate, SAMPLE_RATE), "times": times, "text": u.text,
                    "voice": u.voice, **{k: tg[k] for k in ("expression", "jaw", "labels")}})
    return out


def lip_vertices(model: MorphableModel, expression: np.ndarray, jaw: np.ndarray, chunk: int = 256) -> torch.Tensor:
    """(T, L, 3) mm lip-region vertices of a sequence (chunked full forward)."""
    idx = model.region("lips")
    out = []
    with torch.no_grad():
        for s in range(0, len(expression), chunk):
            e = torch.as_tensor(expression[s:s + chunk], dtype=torch.float32)
            j = torch.as_tensor(jaw[s:s + chunk], dtype=torch.float32)
            out.append(model(expression=e, jaw=j).vertices[:, idx])
    return torch.cat(out)


def viseme_poses(model: MorphableModel, rig: ModelRig) -> torch.Tensor:
    """(15, L, 3) lip vertices of each pure viseme."""
    e, j = rig.apply(np.eye(len(VISEMES)))
    return lip_vertices(model, e, j)


def classify(lips: torch.Tensor, poses: torch.Tensor) -> np.ndarray:
    """(T,) nearest viseme pose (mean vertex distance) per frame of (T, L, 3) lip vertices."""
    d = (lips[:, None] - poses[None]).norm(dim=-1).mean(-1)
    return d.argmin(1).numpy()


def _pad(seq: dict, T: int) -> tuple[np.ndarray, np.ndarray]:
    e, j = seq["expression"], seq["jaw"]
    if len(e) < T:  # a method may give a frame less at the end: hold the last one
        e = np.concatenate([e, np.repeat(e[-1:], T - len(e), 0)])
        j = np.concatenate([j, np.repeat(j[-1:], T - len(j), 0)])
    return e[:T], j[:T]


def run_method(name: str, ex: dict, model: MorphableModel, rig: ModelRig, predictor, fps: float) -> dict:
    from audio2exp.baselines import jaw_from_loudness, rhubarb_style

    if name == "ours":
        from audio2exp.api import PredictConfig

        return predictor(ex["audio"], 16000, PredictConfig(fps=fps))
    if name == "jaw-loudness":
        return jaw_from_loudness(ex["audio"], model.n_expression, ex["times"])
    if name == "rhubarb-style":
        return rhubarb_style(ex["audio"], rig, ex["times"])
    raise ValueError(f"method: expected one of {METHODS}, got {name!r}")


def evaluate_synthetic(model: MorphableModel, rig: ModelRig, predictor, cfg: EvalConfig = EvalConfig(),
                       methods=METHODS, examples: list | None = None) -> dict:
    """{method: {"lve_mm", "viseme_acc", "seconds"}} plus "oracle" viseme accuracy and counts."""
    examples = examples if examples is not None else heldout_set(model, rig, cfg)
    poses = viseme_poses(model, rig)
    res: dict = {}
    labels = np.concatenate([ex["labels"] for ex in examples])
    tgt_lips = [lip_vertices(model, ex["expression"], ex["jaw"]) for ex in examples]
    res["oracle"] = {"viseme_acc": float((np.concatenate([classify(t, poses) for t in tgt_lips]) == labels).mean())}
    for m in methods:
        t0 = time.time()
        err, cls = [], []
        for ex, tl in zip(examples, tgt_lips):
            e, j = _pad(run_method(m, ex, model, rig, predictor, cfg.fps), len(ex["times"]))
            pl = lip_vertices(model, e, j)
            err.append((pl - tl).norm(dim=-1).max(dim=1).values.numpy())
            cls.append(classify(pl, poses))
        res[m] = {"lve_mm": float(np.concatenate(err).mean()), "viseme_acc": float((np.concatenate(cls) == labels).mean()),
                  "seconds": time.time() - t0}
    res["n_utterances"], res["n_frames"] = len(examples), int(len(labels))
    res["audio_seconds"] = float(sum(len(ex["audio"]) for ex in examples) / 16000)
    return res


# ---------------------------------------------------------------- real speech
def _espeak_vowel(sym: str) -> bool:
    s, _ = strip_stress(sym)
    return bool(s) and s[0] in "aAeEiIoOuUV03@" and s not in ("_", "_:")


def word_stress(word: str) -> list[int]:
    """Stress (1 primary, 2 secondary, 0 none) of each vowel of ``word`` as espeak-ng speaks it."""
    from audio2exp.corpus import synthesize

    u = synthesize(word, "en-us")
    return [strip_stress(p)[1] for p in u.phones if _espeak_vowel(p)]


def stressed_vowels(u, words) -> list[int]:
    """Indices of the stressed vowel phones in an aligned ARPAbet utterance (see module docstring)."""
    out = []
    for w, a, b in words:
        vow = [i for i in range(a, b) if u.phones[i] in ARPABET_VOWELS]
        if not vow:
            continue
        st = word_stress(w)
        if len(st) == len(vow):
            out += [i for i, s in zip(vow, st) if s == 1]
        elif any(s == 1 for s in st):
            out.append(max(vow, key=lambda i: u.end[i] - u.start[i]))
    return out


def real_speech_items(root: str | Path | None = None) -> list[tuple[str, Path, str]]:
    """(name, wav path, transcript) of the real recordings available here: the librivox clips of
    the pocketsphinx 5.1.1 sdist (downloaded with pip into ``root``, default ``~/.cache/face3d``),
    and Debian's alsa-utils sounds when installed."""
    import subprocess
    import sys
    import tarfile

    root = Path(root or Path.home() / ".cache" / "face3d" / "real_speech")
    lib = root / "pocketsphinx-5.1.1" / "test" / "data" / "librivox"
    if not lib.is_dir():
        root.mkdir(parents=True, exist_ok=True)
        sdist = root / "pocketsphinx-5.1.1.tar.gz"
        if not sdist.is_file():
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                            "pocketsphinx==5.1.1", "-d", str(root)], check=True)
        with tarfile.open(sdist) as t:
            t.extractall(root, members=[m for m in t.getmembers() if "/test/data/librivox/" in m.name], filter="data")
    items = [(p.stem[-4:], p, p.with_suffix(".txt").read_text().strip()) for p in sorted(lib.glob("*.wav"))]
    alsa = Path("/usr/share/sounds/alsa")
    words = {"Front_Center": "front center", "Front_Left": "front left", "Front_Right": "front right",
             "Rear_Center": "rear center", "Rear_Left": "rear left", "Rear_Right": "rear right",
             "Side_Left": "side left", "Side_Right": "side right"}
    for k, text in words.items():
        if (alsa / f"{k}.wav").is_file():
            items.append((f"alsa:{k}", alsa / f"{k}.wav", text))
    return items


def evaluate_real(model: MorphableModel, rig: ModelRig, predictor, cfg: EvalConfig = EvalConfig(), items=None,
                  methods=METHODS) -> dict:
    """{method: {"closure_rate", "open_vowel_rate", "n_bilabials", "n_vowels"}} over the recordings."""
    from audio2exp.baselines import forced_alignment
    from audio2exp.features import load_audio

    items = real_speech_items() if items is None else items
    aligned = []
    for name, path, text in items:
        a = load_audio(path)
        try:
            u, words = forced_alignment(a, text)
        except ValueError as e:
            print(f"skipping {name}: {e}")
            continue
        aligned.append((name, a, u, words))
    res = {"recordings": [n for n, *_ in aligned], "audio_seconds": float(sum(len(a) for _, a, _, _ in aligned) / 16000)}
    for m in methods:
        closed = opened = nb = nv = 0
        for name, a, u, words in aligned:
            T = max(1, int(round(len(a) / 16000 * cfg.real_fps)))
            times = np.arange(T) / cfg.real_fps
            ex = {"audio": a, "times": times}
            e, j = _pad(run_method(m, ex, model, rig, predictor, cfg.real_fps), T)
            gap = lip_opening(model, torch.as_tensor(e), torch.as_tensor(j))
            for i, p in enumerate(u.phones):
                if p in BILABIAL_ARPABET:
                    sel = (times >= u.start[i] - 0.01) & (times <= u.end[i] + 0.01)
                    nb += 1
                    closed += bool(sel.any() and gap[sel].min() <= cfg.closed_mm)
            for i in stressed_vowels(u, words):
                sel = (times >= u.start[i]) & (times <= u.end[i])
                nv += 1
                opened += bool(sel.any() and gap[sel].max() >= cfg.open_mm)
        res[m] = {"closure_rate": closed / max(nb, 1), "open_vowel_rate": opened / max(nv, 1), "n_bilabials": nb, "n_vowels": nv}
    return res


def format_table(syn: dict, real: dict | None = None) -> str:
    """Markdown table of the results."""
    rows = ["| method | LVE (mm) | viseme acc. | real: /p b m/ closed | real: stressed vowels open |",
            "| --- | ---: | ---: | ---: | ---: |"]
    for m in METHODS:
        if m not in syn:
            continue
        r = real.get(m, {}) if real else {}
        cr = f"{100 * r['closure_rate']:.1f} % ({r['n_bilabials']})" if r else "-"
        ov = f"{100 * r['open_vowel_rate']:.1f} % ({r['n_vowels']})" if r else "-"
        rows.append(f"| {m} | {syn[m]['lve_mm']:.2f} | {100 * syn[m]['viseme_acc']:.1f} % | {cr} | {ov} |")
    rows.append(f"| targets (ceiling) | 0 | {100 * syn['oracle']['viseme_acc']:.1f} % | | |")
    return "\n".join(rows)

