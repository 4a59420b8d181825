"""Training the audio-to-expression network on the synthetic corpus, for any model.

Data: :func:`corpus_examples`: the corpus (:func:`audio2exp.corpus.corpus_items`, train split) spoken
utterance by utterance (on Ray workers with ``--ray``) -> random speed change -> targets
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
    dropout: float = 0.1
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
    from face3d.fileio import content_sha256

    return content_sha256("|".join(model.expression_names), model.template,
                          model.expression_basis[model.region("lips")])


def utterance_examples(u, rig, augment: bool, n_augmented: int, rng: np.random.Generator,
                       target_cfg=None) -> list[dict]:
    """The examples of one utterance (see :func:`build_examples`), random choices from ``rng``."""
    from audio2exp.augment import degrade, retime
    from audio2exp.features import SAMPLE_RATE, logmel, n_frames, resample
    from audio2exp.targets import TargetConfig, expression_targets

    target_cfg = target_cfg or TargetConfig()
    out = []
    for aug in [False] + [True] * (n_augmented if augment else 0):
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


def _example_rng(seed: int, i: int) -> np.random.Generator:
    # One stream per utterance, so utterance i gets the same copies whichever worker builds it.
    return np.random.default_rng([seed, 23, i])


def build_examples(model: MorphableModel, utterances, rig, augment: bool, n_augmented: int, seed: int,
                   target_cfg=None) -> list[dict]:
    """Examples ``mel`` (T_mel, 80), ``expression`` (T, K), ``jaw`` (T,), ``labels`` (T,) per
    utterance and copy (clean + ``n_augmented`` degraded ones when ``augment``); utterance ``i``'s
    random speed changes and degradations come from its own seed ``(seed, i)``."""
    out = []
    for i, u in enumerate(utterances):
        out += utterance_examples(u, rig, augment, n_augmented, _example_rng(seed, i), target_cfg)
    return out


def _corpus_setup(model: MorphableModel, augment: bool, n_augmented: int, seed: int, threads: int | None = None):
    """A worker's context for :func:`_corpus_item`: the rig, built once per worker."""
    from audio2exp.rig import model_rig

    if threads is not None:
        torch.set_num_threads(threads)
    return model_rig(model), augment, n_augmented, seed


def _corpus_item(ctx, item) -> list[dict]:
    """``(i, CorpusItem)`` -> the examples of utterance ``i`` (spoken here)."""
    rig, augment, n_augmented, seed = ctx
    i, it = item
    return utterance_examples(it.speak(), rig, augment, n_augmented, _example_rng(seed, i))


def corpus_examples(model: MorphableModel, cfg: "TrainConfig", ray: str | None = None, workers: int | None = None,
                    progress: bool = True, dist=None) -> list[dict]:
    """The training examples of ``cfg``: its corpus (:func:`audio2exp.corpus.corpus_items`) spoken and
    turned into examples utterance by utterance (:func:`build_examples`).

    ``ray``: a Ray address (``"local"``: a local Ray; :mod:`face3d.scale`) to make the utterances
    on Ray workers, one CPU and one torch thread each. ``dist``: under ``torchrun`` the ranks split
    the utterances and share the examples (with ``ray``, rank 0 makes them all and shares them).
    Texts, voices, speed changes and degradations are the single-process ones; espeak-ng's audio
    varies by a few samples from call to call, so the examples are equal up to that.
    """
    from audio2exp.corpus import CorpusConfig, corpus_items
    from face3d.scale import map_shared

    items = list(enumerate(corpus_items(CorpusConfig(n_utterances=cfg.n_utterances, seed=cfg.seed))))
    setup_args = (model, cfg.augment, cfg.n_augmented, cfg.seed, 1 if ray is not None else None)
    per_utt = map_shared(_corpus_item, items, _corpus_setup, setup_args, ray=ray, workers=workers, progress=progress,
                         desc="corpus", unit="utt", dist=dist)
    return [e for ex in per_utt for e in ex]


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


def loss_norms(mask) -> tuple:
    """The denominators of :func:`lip_loss` for a (B, T) mask: valid frames, valid frame pairs."""
    return mask.sum().clamp_min(1), (mask[:, 1:] * mask[:, :-1]).sum().clamp_min(1)


def lip_loss(lips: LipSpace, out: dict, expression, jaw, labels, mask, w_velocity: float, w_viseme: float,
             norms: tuple | None = None):
    """The training loss (module docstring) and its parts, on (B, T, ...) tensors with (B, T) mask.

    ``norms``: the denominators (:func:`loss_norms`) to divide by instead of this batch's own, so a
    slice of a batch contributes its share of the whole batch's loss (the shares add up to it).
    """
    d = lips(out["expression"], out["jaw"]) - lips(expression, jaw)  # (B, T, L, 3)
    n, nv = loss_norms(mask) if norms is None else norms
    pos = ((d ** 2).sum(-1).mean(-1) * mask).sum() / n
    vm = mask[:, 1:] * mask[:, :-1]
    vel = (((d[:, 1:] - d[:, :-1]) ** 2).sum(-1).mean(-1) * vm).sum() / nv
    ce = torch.nn.functional.cross_entropy(out["viseme"].transpose(1, 2), labels, reduction="none")
    ce = (ce * mask).sum() / n
    return pos + w_velocity * vel + w_viseme * ce, {"lip_mse": float(pos.detach()), "velocity": float(vel.detach()), "viseme_ce": float(ce.detach())}


def train(cfg: TrainConfig = TrainConfig(), model: MorphableModel | None = None, examples: list | None = None,
          progress=print, checkpoint=None, ray: str | None = None, workers: int | None = None,
          dist=None) -> tuple[Audio2Exp, dict]:
    """Train from scratch. Returns the network (eval mode) and a log with the loss history.

    ``checkpoint(net, log)`` is called every ``cfg.checkpoint_every`` steps (network in eval mode).
    ``ray``, ``workers``: make the corpus on Ray workers (:func:`corpus_examples`).
    ``dist``: this process's rank under ``torchrun`` (default: the running process group, if any):
    the ranks share one set of examples, every rank draws the same global batch of ``cfg.batch``
    crops and trains on its slice, with the loss's denominators taken over the whole batch and the
    gradients averaged (:mod:`face3d.distributed`), so N processes follow the single-process run
    (step for step with ``cfg.dropout`` 0; dropout masks are drawn per rank). Only rank 0 calls
    ``progress`` and ``checkpoint``; the logged losses are the global batch's.
    """
    import face3d
    from face3d import distributed

    from audio2exp.rig import model_rig

    info = distributed.current() if dist is None else dist
    part = distributed.shard(cfg.batch, info, "TrainConfig.batch")
    show = progress is not None and info.is_main
    progress = progress if show else (lambda *_: None)
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    model = model or face3d.load_model(cfg.model)
    rig = model_rig(model)
    t0 = time.time()
    if examples is None:
        examples = corpus_examples(model, cfg, ray=ray, workers=workers, progress=show, dist=info)
    t_data = time.time() - t0
    progress(f"data: {len(examples)} examples, {sum(len(e['labels']) for e in examples) / FRAME_RATE / 60:.1f} min "
             f"of audio, built in {t_data:.0f} s")
    torch.manual_seed(cfg.seed)  # the same initial weights whether or not the corpus was made here
    net = Audio2Exp(NetworkConfig(n_expression=model.n_expression, d_model=cfg.d_model, n_layers=cfg.n_layers,
                                  dropout=cfg.dropout))
    allmel = np.concatenate([e["mel"] for e in examples])
    net.mel_mean.copy_(torch.from_numpy(allmel.mean(0)))
    net.mel_std.copy_(torch.from_numpy(allmel.std(0) + 1e-3))
    distributed.broadcast_parameters(net, info)
    if info.rank:
        torch.manual_seed(cfg.seed + 7919 * info.rank)  # dropout masks of its own on each rank
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
        norms = loss_norms(mask)  # of the global batch: each rank's slice adds its share
        loss, parts = lip_loss(lips, net(mel[part]), ex[part], jaw[part], lab[part], mask[part], cfg.w_velocity,
                               cfg.w_viseme, norms)
        opt.zero_grad()
        (loss * info.world).backward()  # averaged over ranks below: the sum of the shares
        distributed.average_gradients(net.parameters(), info)
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        history.append(distributed.average_scalar(loss.detach(), info) * info.world)
        if info.active:
            parts = {k: distributed.average_scalar(v, info) * info.world for k, v in parts.items()}
        if checkpoint and info.is_main and cfg.checkpoint_every and step and step % cfg.checkpoint_every == 0:
            net.eval()
            checkpoint(net, {"history": history, "data_seconds": t_data, "rig_method": rig.method, "steps_done": step,
                             "train_seconds": time.time() - t0 - t_data})
            net.train()
        if (step % cfg.log_every == 0 or step == cfg.steps - 1):
            progress(f"step {step:5d}  loss {np.mean(history[-cfg.log_every:]):.3f}  " +
                     "  ".join(f"{k} {v:.3f}" for k, v in parts.items()) + f"  ({time.time() - t0:.0f} s)")
    net.eval()
    log = {"history": history, "data_seconds": t_data, "train_seconds": time.time() - t0 - t_data,
           "rig_method": rig.method, "n_examples": len(examples), "processes": info.world}
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


def train_and_save(cfg: TrainConfig, out, progress=print, ray: str | None = None, workers: int | None = None) -> dict:
    """Train for ``cfg.model`` and write the weights to ``out`` (what ``audio2exp train`` runs).

    Under ``torchrun`` the processes train together (:func:`train`) and rank 0 alone writes the
    checkpoints and the weights and measures the small held-out set.
    """
    import face3d
    from face3d import distributed

    model = face3d.load_model(cfg.model)
    info = distributed.init_from_env()
    try:
        net, log = train(cfg, model=model, progress=progress, ray=ray, workers=workers, dist=info,
                         checkpoint=lambda n, lg: save_weights(out, n, model, cfg, lg, {"steps_done": lg["steps_done"]}))
    finally:
        distributed.shutdown()
    if not info.is_main:
        distributed.exit_worker()
    save_weights(out, net, model, cfg, log, {"steps_done": cfg.steps, "processes": info.world})
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
