"""Data-parallel training helpers shared by the ``*-train`` commands (``torchrun --nproc_per_node N``).

The trainers draw their synthetic data on the fly from one seeded generator (or, with a stored
set from ``face3d make-trainset``, pick the same batch indices from it). Under N processes
every rank draws the *same* global batch of B and keeps its slice of B/N (:func:`shard`), computes
its loss on the slice, and the gradients are averaged over ranks (:func:`average_gradients`).
Because the slices are equal in size, the average of the slice means is the global mean, so N
processes with B/N each follow the single-process run with batch B (up to float summation order).
Drawing the whole batch on every rank repeats the data generation N times; the network's forward
and backward passes are what is split.

A network with batch normalisation needs its batch statistics over the global batch, not the
slice, to follow the single-process run: :func:`global_batchnorm` swaps its ``BatchNorm2d``
layers for :class:`GlobalBatchNorm2d` (``torch.nn.SyncBatchNorm`` only runs on GPUs).

Only rank 0 writes files and logs (:attr:`DistInfo.is_main`). Gradients are averaged explicitly
(one flattened all-reduce per step) rather than through ``DistributedDataParallel``, because the
stabilizer's loss calls several methods of its network, not ``forward``.
Backend: NCCL when CUDA is available, else gloo. :mod:`torch.distributed` is imported only here.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import Tensor

__all__ = ["DistInfo", "init_from_env", "current", "shard", "average_gradients", "average_scalar",
           "broadcast_parameters", "build_across_ranks", "broadcast_object", "GlobalBatchNorm2d", "global_batchnorm",
           "shutdown", "exit_worker"]


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job: ``rank`` in ``[0, world)``; ``world == 1`` is a plain run."""

    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def current() -> DistInfo:
    """The running process group's rank and size, or a single-process :class:`DistInfo`."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size())
    return DistInfo()


def init_from_env() -> DistInfo:
    """Join the process group that ``torchrun`` describes (``WORLD_SIZE``, ``RANK``, ``MASTER_ADDR``,
    ``MASTER_PORT``); a no-op without them (a plain ``face3d ...`` run)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return current()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return current()


def shutdown() -> None:
    """Leave the process group, if one is running."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        # Every rank reaches this point before any tears its gloo connections down: without it a
        # rank aborted on exit (SIGABRT, "terminate called without an active exception") in 2 of
        # 10 runs of tests/test_distributed.py, with it in none of 16.
        dist.barrier()
        dist.destroy_process_group()


def exit_worker() -> None:
    """End a non-main rank whose work is done (after :func:`shutdown`) without interpreter
    teardown. A workaround: in the first full test run of two fresh clones, rank 1 of a
    2-process gloo job aborted after its last collective (SIGABRT, "terminate called without an
    active exception"; not reproduced in isolation) and torchrun then killed rank 0 before it
    wrote the weights. Such a rank has nothing left to write or release."""
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def shard(n: int, info: DistInfo, what: str = "batch") -> slice:
    """The slice of a global batch of ``n`` that rank ``info.rank`` trains on.

    Raises ValueError unless ``n`` divides evenly: unequal slices would weight the ranks' losses
    unequally and break the match with the single-process run.
    """
    if n % info.world:
        raise ValueError(f"{what}: expected a multiple of the {info.world} processes, got {n}")
    k = n // info.world
    return slice(info.rank * k, (info.rank + 1) * k)


def average_gradients(params: Iterable[Tensor], info: DistInfo) -> None:
    """Replace every parameter's ``.grad`` by its mean over ranks (one all-reduce of a flat buffer)."""
    if not info.active:
        return
    import torch.distributed as dist

    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= info.world
    offset = 0
    for g in grads:
        g.copy_(flat[offset: offset + g.numel()].view_as(g))
        offset += g.numel()


def average_scalar(x: Tensor | float, info: DistInfo) -> float:
    """Mean of a scalar over ranks (the global batch's loss, for logs)."""
    if not info.active:
        return float(x)
    import torch.distributed as dist

    t = torch.tensor([float(x)], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t) / info.world


def broadcast_parameters(module: torch.nn.Module, info: DistInfo) -> None:
    """Copy rank 0's parameters and buffers to every rank (the same seed makes them equal already;
    this guards against a rank that drew differently)."""
    if not info.active:
        return
    import torch.distributed as dist

    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, 0)


def build_across_ranks(build: Callable[[Sequence[int]], list], n: int, info: DistInfo) -> list:
    """``build(range(n))`` with the work split over the ranks: rank r builds items r, r + N, ...
    and every rank gets the whole list in item order (one ``all_gather_object``).

    For a training set made once before training whose items are not bit-exact from call to call
    (espeak-ng speech): every rank must train on the same items, so they are made once and shared
    rather than made again on each rank. ``build(indices)`` returns one result per index.
    """
    if not info.active:
        return list(build(range(n)))
    import torch.distributed as dist

    mine = list(build(range(info.rank, n, info.world)))
    parts: list = [None] * info.world
    dist.all_gather_object(parts, mine)
    out: list = [None] * n
    for r, part in enumerate(parts):
        out[r::info.world] = part
    return out


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    """Rank 0's ``obj`` on every rank (pickled; for data made once on rank 0)."""
    if not info.active:
        return obj
    import torch.distributed as dist

    box = [obj if info.is_main else None]
    dist.broadcast_object_list(box, 0)
    return box[0]


class GlobalBatchNorm2d(torch.nn.BatchNorm2d):
    """``BatchNorm2d`` whose training-mode statistics are those of the global batch: the per-rank
    sums are all-reduced (through :mod:`torch.distributed.nn`, so the backward pass all-reduces
    their gradients too). Equal slices on every rank are assumed (:func:`shard`). In eval mode,
    or outside a process group, it is a plain ``BatchNorm2d`` (same parameters and buffers)."""

    def forward(self, x: Tensor) -> Tensor:
        info = current()
        if not (self.training and info.active):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        n = x.numel() // x.shape[1] * info.world  # values per channel in the global batch
        mean = all_reduce(x.sum((0, 2, 3))) / n
        d = x - mean[None, :, None, None]
        var = all_reduce((d * d).sum((0, 2, 3))) / n  # biased, as BatchNorm normalises with
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * (n / max(n - 1, 1)), alpha=m)
        y = d * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y


def global_batchnorm(module: torch.nn.Module, info: DistInfo) -> torch.nn.Module:
    """Replace every ``BatchNorm2d`` inside ``module`` by a :class:`GlobalBatchNorm2d` sharing its
    parameters and buffers (state dict keys unchanged); a no-op outside a process group."""
    if not info.active:
        return module
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is torch.nn.BatchNorm2d:
                g = GlobalBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                      child.track_running_stats)
                g.load_state_dict(child.state_dict())
                if child.affine:
                    g.weight, g.bias = child.weight, child.bias
                g.train(child.training)
                setattr(parent, name, g)
    return module
