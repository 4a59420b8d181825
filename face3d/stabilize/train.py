"""Training the learned stabilizer on synthetic pairs generated on the fly (or read from a stored
set, ``face3d make-trainset stabilizer``; see :func:`train`'s ``data``).

Each step samples ``identities`` identities with ``per_identity`` meshes each
(:func:`~face3d.stabilize.synth.sample_groups`) and trains on every ordered pair inside a group.
Loss: mean distance (mm) between the skull vertices (``scalp_back``, never an input) mapped by the
predicted and by the true transform, in the pre-aligned frame.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch
from torch import Tensor

from face3d.fileio import atomic_write

if TYPE_CHECKING:
    from face3d.distributed import DistInfo
    from face3d.trainset import TrainSet
from face3d.models.base import MorphableModel
from face3d.stabilize.align import apply_transform, invert_transform
from face3d.stabilize.network import NetworkConfig, StabilizerNet
from face3d.stabilize.synth import SynthConfig, restrict_model, sample_groups


@dataclass(frozen=True)
class TrainConfig:
    """Training settings. ``steps`` optimiser steps of ``identities * per_identity`` meshes
    (``identities * per_identity * (per_identity - 1)`` pairs); AdamW with a cosine schedule."""

    steps: int = 1000
    identities: int = 24
    per_identity: int = 6
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    norm_samples: int = 2048  # meshes used to estimate the input normalisation
    loss_points: int = 128  # skull vertices in the loss (subsampled once, fixed)
    log_every: int = 100
    network: NetworkConfig = field(default_factory=NetworkConfig)
    synth: SynthConfig = field(default_factory=SynthConfig)


def _pair_index(n_groups: int, k: int) -> tuple[Tensor, Tensor]:
    a, b = torch.meshgrid(torch.arange(k), torch.arange(k), indexing="ij")
    keep = a != b
    a, b = a[keep], b[keep]
    base = (torch.arange(n_groups) * k)[:, None]
    return (base + a).reshape(-1), (base + b).reshape(-1)


def pair_loss(net: StabilizerNet, align_pts: Tensor, input_pts: Tensor, skull_pts: Tensor, skull: Tensor,
              per_identity: int) -> Tensor:
    """Mean skull-vertex distance (mm) over all ordered pairs within groups of ``per_identity``.

    ``align_pts`` (M, Na, 3) and ``input_pts`` (M, Np, 3): the network's vertices of M noisy
    meshes; ``skull_pts`` (M, Ns, 3): clean skull vertices; ``skull`` (M, 4, 4): skull transforms.
    """
    P, Q = net.encode_points(align_pts, input_pts)
    ia, ib = _pair_index(align_pts.shape[0] // per_identity, per_identity)
    pred = net.relative(P[ia], Q[ia], P[ib], Q[ib])
    true = skull[ib] @ invert_transform(skull[ia])
    pts = skull_pts[ia]
    return (apply_transform(pred, pts) - apply_transform(true, pts)).norm(dim=-1).mean()


def train(model: MorphableModel, cfg: TrainConfig = TrainConfig(), *,
          progress: Callable[[str], None] | None = None, model_spec: str = "", model_sha256: str = "",
          dist: "DistInfo | None" = None, data: "TrainSet | None" = None) -> tuple[StabilizerNet, dict]:
    """Train a :class:`StabilizerNet` for ``model`` from scratch (deterministic given ``cfg.seed``).

    Returns the network (eval mode) and a checkpoint dict ready for :func:`torch.save`.
    ``progress`` receives one line per ``cfg.log_every`` steps (default: stderr), on rank 0 only.
    ``dist``: this process's rank under ``torchrun`` (default: the running process group, if any):
    every rank draws the same ``cfg.identities`` groups and trains on its share of whole groups,
    gradients averaged (:mod:`face3d.distributed`), so N processes follow the single-process run.

    ``data``: a stored set (:func:`face3d.trainset.load_trainset`, part ``stabilizer``, made for
    ``model`` with ``cfg.per_identity`` meshes per group and the vertices ``cfg.network`` reads)
    to train on instead of the live stream: ``cfg.identities`` groups per step in shuffled epochs
    (:class:`face3d.trainset.BatchOrder`, seeded by ``cfg.seed``); the input normalisation comes
    from the set's first groups; ``cfg.synth`` is unused. Under ``torchrun`` every rank takes the
    same groups and reads its share.
    """
    from face3d import distributed

    info = distributed.current() if dist is None else dist
    groups = distributed.shard(cfg.identities, info, "TrainConfig.identities")
    rows = slice(groups.start * cfg.per_identity, groups.stop * cfg.per_identity)
    log = progress or (lambda s: print(s, file=sys.stderr, flush=True))
    if not info.is_main:
        log = lambda s: None  # noqa: E731
    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    model = model.float().eval()
    net = StabilizerNet(model, cfg.network)

    # Generate only the vertices the network and the loss read.
    k = min(cfg.loss_points, len(net.skull))
    loss_idx = net.skull[torch.randperm(len(net.skull), generator=g)[:k]]
    order = None
    if data is None:
        keep = torch.unique(torch.cat([net.align, net.inputs, loss_idx]))
        sub = restrict_model(model, keep)
        at = lambda idx: torch.searchsorted(keep, idx)  # noqa: E731  (positions in the sub-model)
        a_loc, i_loc, s_loc = at(net.align), at(net.inputs), at(loss_idx)

        def sample(n_id: int, per: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
            noisy, clean, skull, _ = sample_groups(sub, n_id, per, cfg.synth, g)
            return noisy[:, a_loc], noisy[:, i_loc], clean[:, s_loc], skull
    else:
        from face3d.trainset import BatchOrder

        sample_set = _stored_sampler(data, model, net, loss_idx, cfg)
        order = BatchOrder(data.n, cfg.identities, g)

        def sample(n_id: int, per: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
            return sample_set(order.next())

    # Input normalisation from a first batch of meshes (stored with the weights).
    with torch.no_grad():
        feats = []
        if data is None:
            for _ in range(max(1, cfg.norm_samples // 256)):
                a, i, _, _ = sample(64, 4)
                feats.append(net.prealign(a, i)[1])
        else:  # the set's first groups, in set order
            a, i, _, _ = sample_set(torch.arange(min(data.n, -(-cfg.norm_samples // cfg.per_identity))))
            feats.append(net.prealign(a, i)[1])
        feats = torch.cat(feats)
        net.in_mean.copy_(feats.mean(0))
        net.in_std.copy_(feats.std(0).clamp_min(1e-3))

    distributed.broadcast_parameters(net, info)
    opt = torch.optim.AdamW(net.encoder.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, cfg.steps) / cfg.steps)))
    history = []
    t0 = time.perf_counter()
    run = 0.0
    net.train()
    for step in range(1, cfg.steps + 1):
        a, i, s, skull = sample(cfg.identities, cfg.per_identity)
        loss = pair_loss(net, a[rows], i[rows], s[rows], skull[rows], cfg.per_identity)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients(net.encoder.parameters(), info)
        opt.step()
        sched.step()
        lv = distributed.average_scalar(loss.detach(), info)
        run = lv if step == 1 else 0.98 * run + 0.02 * lv
        if step % cfg.log_every == 0 or step == cfg.steps:
            el = time.perf_counter() - t0
            history.append((step, round(run, 4)))
            log(f"step {step:5d}/{cfg.steps}  loss {run:.3f} mm (skull-vertex distance)  "
                f"{el:6.0f} s elapsed, ~{el / step * (cfg.steps - step):5.0f} s left")
    net.eval()
    extra = {
        "model_spec": model_spec, "model_sha256": model_sha256, "train_config": _plain(asdict(cfg)),
        "history": history, "train_seconds": round(time.perf_counter() - t0, 1),
        "torch_threads": torch.get_num_threads(), "processes": info.world,
    }
    if data is not None:
        extra["data"] = {"path": str(data.path), "groups": data.n, "seed": data.manifest["seed"],
                         "epochs": round(order.epoch + order.at / data.n, 3)}
    return net, net.checkpoint(extra)


def _stored_sampler(data: "TrainSet", model: MorphableModel, net: StabilizerNet, loss_idx: Tensor,
                    cfg: TrainConfig) -> Callable[[Tensor], tuple[Tensor, Tensor, Tensor, Tensor]]:
    """``groups (G,) int64 -> (align (G·k, Na, 3), inputs (G·k, Np, 3), skull vertices (G·k, Ns, 3),
    skull transforms (G·k, 4, 4))`` read from a stored set, after checking that it fits."""
    from face3d.trainset import check_trainset

    check_trainset(data, "stabilizer", model)
    k = data.manifest["config"]["per_identity"]
    if k != cfg.per_identity:
        raise ValueError(f"{data.path} holds groups of {k} meshes per identity; TrainConfig.per_identity is "
                         f"{cfg.per_identity} (train with per_identity={k}, or make a set with {cfg.per_identity})")
    lut = torch.full((model.n_vertices,), -1, dtype=torch.int64)
    noisy_ids = torch.tensor(data.manifest["vertices"]["noisy"], dtype=torch.int64)
    skull_ids = torch.tensor(data.manifest["vertices"]["skull"], dtype=torch.int64)

    def positions(ids: Tensor, within: Tensor, what: str) -> Tensor:
        lut.fill_(-1)
        lut[within] = torch.arange(len(within))
        pos = lut[ids]
        if (pos < 0).any():
            raise ValueError(f"{data.path} stores {len(within)} {what} vertices, which lack {int((pos < 0).sum())} of "
                             f"the {len(ids)} this network reads (NetworkConfig n_points={cfg.network.n_points}, "
                             f"align_points={cfg.network.align_points}); the set was made with n_points="
                             f"{data.manifest['config']['n_points']}, align_points={data.manifest['config']['align_points']}")
        return pos.clone()

    a_pos, i_pos = positions(net.align, noisy_ids, "noisy"), positions(net.inputs, noisy_ids, "noisy")
    s_pos = positions(loss_idx, skull_ids, "skull")
    t = data.tensors

    def sample(groups: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        noisy = t["noisy"][groups].flatten(0, 1)
        return (noisy[:, a_pos], noisy[:, i_pos], t["skull_clean"][groups].flatten(0, 1)[:, s_pos],
                t["skull"][groups].flatten(0, 1))

    return sample


def _plain(d):
    """Dataclass dict -> only str/int/float/bool/list/dict (what ``weights_only`` loading allows)."""
    if isinstance(d, dict):
        return {k: _plain(v) for k, v in d.items()}
    if isinstance(d, (list, tuple)):
        return [_plain(v) for v in d]
    return d


def save_checkpoint(ckpt: dict, path: str | Path) -> None:
    """Write a checkpoint atomically (temporary file + rename)."""
    atomic_write(path, lambda f: torch.save(ckpt, f))
