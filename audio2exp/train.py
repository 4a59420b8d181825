"""Training the audio-to-expression network on the synthetic corpus, for any model.

Data: :func:`audio2exp.corpus.generate_corpus` (train split) -> random speed change -> targets
(:mod:`audio2exp.targets`) at the network's 50 Hz frame times -> channel degradation
(:func:`audio2exp.augment.degrade`) -> 16 kHz log-mel. Each utterance is used clean and in
``n_augmented`` degraded copies, built once before training.

Loss (vertex space on the lips): with ``D(c, j)`` the lip-vertex displacement of expression ``c``
and jaw angle ``j`` (linear in both: the expression basis of the lip vertices plus the secant of
the jaw rotation at 0.15 rad), ``|D(pred) - D(target)|^2`` averaged over lip vertices and frames,
plus ``w_velocity`` times the same on frame-to-frame differences, plus ``w_viseme`` times the
cross-entropy of the auxiliary viseme head.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from audio2exp.network import FRAME_OFFSET, FRAME_RATE, Audio2Exp, NetworkConfig
from face3d.models import MorphableModel


@dataclass(frozen=True)
class TrainConfig:
    model: str = "builtin"
    n_utterances: int = 400
    n_augmented: int = 2  # degraded copies per utterance (0: clean only)
    augment: bool = True
    steps: int = 1000
    batch: int = 12
    crop: int = 120  # network frames per training crop (2.4 s)
    lr: float = 2e-3
    weight_decay: float = 1e-4
    w_velocity: float = 0.5
    w_viseme: float = 0.05
    seed: int = 0
    threads: int = 2
    d_model: int = 96
    n_layers: int = 3
    log_every: int = 100
    checkpoint_every: int = 0  # steps between intermediate saves by train_and_save (0: only at the end)


class LipSpace:
    """Linear lip-vertex displacement of (expression, jaw angle) for one model.

    ``basis`` (L*3, K) mm per coefficient on the model's ``lips`` region, ``jaw`` (L*3,) mm per
    radian (secant at ``jaw_ref``). ``__call__``: expression (..., K), jaw (...) -> (..., L, 3) mm.
    """

    def __init__(self, model: MorphableModel, jaw_ref: float = 0.15):
        self.idx = model.region("lips")
        L = len(self.idx)
        self.basis = model.expression_basis[self.idx].reshape(L * 3, -1).float()
        with torch.no_grad():
            j = torch.zeros(2, 3)
            j[1, 0] = jaw_ref
            v = model(jaw=j).vertices[:, self.idx]
        self.jaw = ((v[1] - v[0]) / jaw_ref).reshape(-1).float()

    def __call__(self, expression: torch.Tensor, jaw: torch.Tensor) -> torch.Tensor:
        d = expression @ self.basis.T + jaw[..., None] * self.jaw
        return d.reshape(*d.shape[:-1], -1, 3)


def network_times(n_net_frames: int) -> np.ndarray:
    """(T,) seconds shown by network frames 0..T-1."""
    return FRAME_OFFSET + np.arange(n_net_frames) / FRAME_RATE


def model_fingerprint(model: MorphableModel) -> str:
    """sha256 over the model's expression names, template and lip expression basis (a retrained
    or regenerated model with other geometry gets another fingerprint)."""
    h = hashlib.sha256()
    h.update("|".join(model.expression_names).encode())
    h.update(model.template.detach().cpu().numpy().astype(np.float32).tobytes())
    h.update(model.expression_basis[model.region("lips")].detach().cpu().numpy().astype(np.float32).tobytes())
    return h.hexdigest()


def build_examples(model: MorphableModel, utterances, rig, augment: bool, n_augmented: int, seed: int,
                   target_cfg=None) -> list[dict]:
    """Examples ``mel`` (T_mel, 80), ``expression`` (T, K), ``jaw`` (T,), ``labels`` (T,) per
    utterance and copy (clean + ``n_augmented`` degraded ones when ``augment``)."""
    from audio2exp.augment import degrade, retime
    from audio2exp.features import SAMPLE_RATE, logmel, n_frames, resample
    from audio2exp.targets import TargetConfig, expression_targets

    target_cfg = target_cfg or TargetConfig()
    rng = np.random.default_rng([seed, 23])
    out = []
    for u in utterances:
        copies = [False] + [True] * (n_augmented if augment else 0)
        for aug in copies:
            v = retime(u, rng) if aug else u
            a16 = resample(v.audio, v.sample_rate, SAMPLE_RATE)
            T = -(-n_frames(len(a16)) // 2)
            tg = expression_targets(v, rig, network_times(T), target_cfg)
            if aug:
                v = degrade(v, rng)
                a16 = resample(v.audio, v.sample_rate, SAMPLE_RATE)
            mel = logmel(a16)
            out.append({"mel": mel, "expression": tg["expression"], "jaw": tg["jaw"][:, 0], "labels": tg["labels"]})
    return out


def _batch(examples, rng, B: int, crop: int, pad_db: float = -100.0):
    M = examples[0]["mel"].shape[1]
    K = examples[0]["expression"].shape[1]
    mel = np.full((B, 2 * crop, M), pad_db, np.float32)
    ex = np.zeros((B, crop, K), np.float32)
    jaw = np.zeros((B, crop), np.float32)
    lab = np.zeros((B, crop), np.int64)
    mask = np.zeros((B, crop), np.float32)
    for b in range(B):
        e = examples[rng.integers(len(examples))]
        T = len(e["labels"])
        s = int(rng.integers(0, max(1, T - crop + 1)))
        n = min(crop, T - s)
        m = e["mel"][2 * s: 2 * (s + n)]
        mel[b, : len(m)] = m
        ex[b, :n], jaw[b, :n], lab[b, :n], mask[b, :n] = e["expression"][s:s + n], e["jaw"][s:s + n], e["labels"][s:s + n], 1
    return tuple(map(torch.from_numpy, (mel, ex, jaw, lab, mask)))


def lip_loss(lips: LipSpace, out: dict, expression, jaw, labels, mask, w_velocity: float, w_viseme: float):
    """The training loss (module docstring) and its parts, on (B, T, ...) tensors with (B, T) mask."""
    d = lips(out["expression"], out["jaw"]) - lips(expression, jaw)  # (B, T, L, 3)
    n = mask.sum().clamp_min(1)
    pos = ((d ** 2).sum(-1).mean(-1) * mask).sum() / n
    vm = mask[:, 1:] * mask[:, :-1]
    vel = (((d[:, 1:] - d[:, :-1]) ** 2).sum(-1).mean(-1) * vm).sum() / vm.sum().clamp_min(1)
    ce = torch.nn.functional.cross_entropy(out["viseme"].transpose(1, 2), labels, reduction="none")
    ce = (ce * mask).sum() / n
    return pos + w_velocity * vel + w_viseme * ce, {"lip_mse": float(pos.detach()), "velocity": float(vel.detach()), "viseme_ce": float(ce.detach())}


def train(cfg: TrainConfig = TrainConfig(), model: MorphableModel | None = None, examples: list | None = None,
          progress=print, checkpoint=None) -> tuple[Audio2Exp, dict]:
    """Train from scratch. Returns the network (eval mode) and a log with the loss history.

    ``checkpoint(net, log)`` is called every ``cfg.checkpoint_every`` steps (network in eval mode).
    """
    import face3d

    from audio2exp.corpus import CorpusConfig, generate_corpus
    from audio2exp.rig import model_rig

    progress = progress or (lambda *_: None)
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    model = model or face3d.load_model(cfg.model)
    rig = model_rig(model)
    t0 = time.time()
    if examples is None:
        utts = list(generate_corpus(CorpusConfig(n_utterances=cfg.n_utterances, seed=cfg.seed)))
        examples = build_examples(model, utts, rig, cfg.augment, cfg.n_augmented, cfg.seed)
    t_data = time.time() - t0
    progress(f"data: {len(examples)} examples, {sum(len(e['labels']) for e in examples) / FRAME_RATE / 60:.1f} min "
             f"of audio, built in {t_data:.0f} s")
    net = Audio2Exp(NetworkConfig(n_expression=model.n_expression, d_model=cfg.d_model, n_layers=cfg.n_layers))
    allmel = np.concatenate([e["mel"] for e in examples])
    net.mel_mean.copy_(torch.from_numpy(allmel.mean(0)))
    net.mel_std.copy_(torch.from_numpy(allmel.std(0) + 1e-3))
    lips = LipSpace(model)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    warm = max(1, cfg.steps // 20)  # linear warm-up, then cosine decay to 5 %
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm) * (
        0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * min(1.0, s / max(1, cfg.steps))))))
    rng = np.random.default_rng([cfg.seed, 31])
    history = []
    net.train()
    for step in range(cfg.steps):
        mel, ex, jaw, lab, mask = _batch(examples, rng, cfg.batch, cfg.crop)
        loss, parts = lip_loss(lips, net(mel), ex, jaw, lab, mask, cfg.w_velocity, cfg.w_viseme)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        history.append(float(loss.detach()))
        if checkpoint and cfg.checkpoint_every and step and step % cfg.checkpoint_every == 0:
            net.eval()
            checkpoint(net, {"history": history, "data_seconds": t_data, "rig_method": rig.method, "steps_done": step,
                             "train_seconds": time.time() - t0 - t_data})
            net.train()
        if (step % cfg.log_every == 0 or step == cfg.steps - 1):
            progress(f"step {step:5d}  loss {np.mean(history[-cfg.log_every:]):.3f}  " +
                     "  ".join(f"{k} {v:.3f}" for k, v in parts.items()) + f"  ({time.time() - t0:.0f} s)")
    net.eval()
    log = {"history": history, "data_seconds": t_data, "train_seconds": time.time() - t0 - t_data,
           "rig_method": rig.method, "n_examples": len(examples)}
    return net, log


def save_weights(path, net: Audio2Exp, model: MorphableModel, cfg: TrainConfig, log: dict, extra: dict | None = None) -> None:
    """Write float16 weights with what they were trained for (model name, expression names,
    fingerprint, configs)."""
    blob = {"network": net.export(), "model_name": model.name, "expression_names": list(model.expression_names),
            "model_fingerprint": model_fingerprint(model), "train_config": asdict(cfg),
            "rig_method": log.get("rig_method"), "train_seconds": log.get("train_seconds"), **(extra or {})}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(blob, tmp)
    tmp.replace(path)


def train_and_save(cfg: TrainConfig, out, progress=print) -> dict:
    """Train for ``cfg.model`` and write the weights to ``out`` (what ``audio2exp train`` runs)."""
    import face3d

    model = face3d.load_model(cfg.model)
    net, log = train(cfg, model=model, progress=progress,
                     checkpoint=lambda n, lg: save_weights(out, n, model, cfg, lg, {"steps_done": lg["steps_done"]}))
    save_weights(out, net, model, cfg, log, {"steps_done": cfg.steps})
    small = record_small_heldout(out, model)
    progress(f"wrote {out}: data {log['data_seconds']:.0f} s, training {log['train_seconds']:.0f} s; "
             f"small held-out LVE {small['lve_mm']:.3f} mm (jaw-from-loudness {small['jaw_loudness_lve_mm']:.3f} mm)")
    return log


SMALL_HELDOUT = {"n_utterances": 4, "seed": 777}  # the set tests/test_audio2exp_api.py re-checks


def record_small_heldout(path, model: MorphableModel) -> dict:
    """Measure the LVE of the weights at ``path`` (and of the jaw-from-loudness baseline) on a
    small held-out set and store it in the file as ``small_heldout`` (the test suite re-checks it)."""
    from audio2exp.api import Predictor
    from audio2exp.evaluate import EvalConfig, evaluate_synthetic
    from audio2exp.rig import model_rig

    cfg = EvalConfig(**SMALL_HELDOUT)
    res = evaluate_synthetic(model, model_rig(model), Predictor.load(path, model), cfg, methods=("ours", "jaw-loudness"))
    small = {**SMALL_HELDOUT, "lve_mm": res["ours"]["lve_mm"], "jaw_loudness_lve_mm": res["jaw-loudness"]["lve_mm"]}
    blob = torch.load(path, map_location="cpu", weights_only=False)
    blob["small_heldout"] = small
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(blob, tmp)
    tmp.replace(path)
    return small


def quick_config(**kw) -> TrainConfig:
    """A tiny configuration for tests and smoke runs."""
    base = TrainConfig(n_utterances=8, n_augmented=1, steps=10, batch=4, crop=60, d_model=32, n_layers=2, log_every=1000)
    return replace(base, **kw)
