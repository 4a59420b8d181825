"""Stored synthetic training sets for the learned parts (``face3d make-trainset``).

``train-estimator`` and ``stabilize-train`` draw by default a fresh synthetic batch at every step
from one seeded generator: there is no item set to fan out, and the committed weights in
``assets/`` were trained on exactly that stream, so it stays the default. This module adds the
other way: a fixed set written to disk once, in chunks, which ``--data DIR`` then trains on in
shuffled epochs.

A set is a folder:

- ``manifest.json``: part, model name and fingerprint, the part's data config, ``n``, chunk
  size, seed and (stabilizer) the stored vertex indices. Written before the first chunk and
  checked on every resume: a rerun with other settings stops with the differing keys.
- ``chunk_00000.pt`` ...: ``torch.save`` of a dict of CPU tensors, batch first. Chunk ``i`` holds
  items ``[i·chunk, min((i+1)·chunk, n))`` and is drawn from its own generator
  (:func:`face3d.scale.chunk_generator` of ``(seed, i)``), so any worker can make any chunk and the
  bytes do not depend on which one did (or on ``--ray``). Each chunk is written atomically when it
  is done; an interrupted run resumes by skipping the chunks that exist.

Items: ``estimator``: one synthetic scene (:func:`~face3d.reconstruct.synthetic.sample_batch`);
``stabilizer``: one identity group of ``per_identity`` meshes
(:func:`~face3d.stabilize.synth.sample_groups`), only the vertices training reads (the network's
alignment and input vertices, noisy, and every skull vertex, clean).
"""
from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from face3d.models.base import MorphableModel
from face3d.reconstruct.synthetic import SyntheticConfig
from face3d.stabilize.network import NetworkConfig
from face3d.stabilize.synth import SynthConfig

__all__ = ["PARTS", "FORMAT", "EstimatorSetConfig", "StabilizerSetConfig", "TrainSetConfig", "MakeResult",
           "TrainSet", "make_trainset", "load_trainset", "check_trainset", "set_manifest", "model_digest", "BatchOrder"]

PARTS = ("estimator", "stabilizer")
FORMAT = "face3d-trainset-v1"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class EstimatorSetConfig:
    """What the estimator's items are drawn from (see :class:`SyntheticConfig`)."""

    synthetic: SyntheticConfig = SyntheticConfig()


@dataclass(frozen=True)
class StabilizerSetConfig:
    """What the stabilizer's items are drawn from. ``per_identity`` meshes per item (group);
    ``n_points`` / ``align_points`` pick the stored noisy vertices exactly as
    :class:`NetworkConfig` picks the network's (so a network with these point counts, any width,
    can train on the set)."""

    per_identity: int = 6
    n_points: int = NetworkConfig.n_points
    align_points: int = NetworkConfig.align_points
    synth: SynthConfig = field(default_factory=SynthConfig)


@dataclass(frozen=True)
class TrainSetConfig:
    """A set of ``n`` items in chunks of ``chunk``, from ``seed``; ``data``: the part's config."""

    part: Literal["estimator", "stabilizer"]
    n: int
    chunk: int = 512
    seed: int = 0
    data: EstimatorSetConfig | StabilizerSetConfig | None = None

    def __post_init__(self) -> None:
        if self.part not in PARTS:
            raise ValueError(f"part: expected one of {PARTS}, got {self.part!r}")
        if self.n < 1 or self.chunk < 1:
            raise ValueError(f"expected n >= 1 and chunk >= 1, got n={self.n}, chunk={self.chunk}")
        if self.data is None:
            object.__setattr__(self, "data", EstimatorSetConfig() if self.part == "estimator" else StabilizerSetConfig())
        want = EstimatorSetConfig if self.part == "estimator" else StabilizerSetConfig
        if not isinstance(self.data, want):
            raise TypeError(f"data: part {self.part!r} expects a {want.__name__}, got {type(self.data).__name__}")

    @property
    def n_chunks(self) -> int:
        return -(-self.n // self.chunk)


def model_digest(model: MorphableModel) -> str:
    """sha256 of the model's template, bases and joint regressor: which model a set was made for
    (the stabilizer's poses use the joints; unlike the estimator's fingerprint, it needs no
    68-point landmarks)."""
    from face3d.fileio import content_sha256

    return content_sha256(model.template, model.identity_basis, model.expression_basis, model.joint_regressor)


def _json(x: Any) -> Any:
    """Through JSON and back (tuples become lists), so a fresh config compares equal to a stored one."""
    return json.loads(json.dumps(x))


def _stabilizer_vertices(model: MorphableModel, d: StabilizerSetConfig) -> tuple[Tensor, Tensor]:
    """(sorted noisy vertex ids (K,), skull vertex ids (S,)) stored for the stabilizer."""
    from face3d.stabilize.network import StabilizerNet

    net = StabilizerNet(model, NetworkConfig(n_points=d.n_points, align_points=d.align_points, hidden=1))
    return torch.unique(torch.cat([net.align, net.inputs])), net.skull.clone()


def set_manifest(model: MorphableModel, cfg: TrainSetConfig, model_spec: str = "") -> dict:
    """The manifest of a set (JSON-ready). Every key but ``model_spec`` must match on a resume."""
    m = {"format": FORMAT, "part": cfg.part, "model_name": model.name, "model_fingerprint": model_digest(model),
         "n": cfg.n, "chunk": cfg.chunk, "chunks": cfg.n_chunks, "seed": cfg.seed, "config": _json(asdict(cfg.data)),
         "model_spec": model_spec}
    if cfg.part == "stabilizer":
        noisy, skull = _stabilizer_vertices(model, cfg.data)
        m["vertices"] = {"noisy": noisy.tolist(), "skull": skull.tolist()}
    return m


def _chunk_path(out: Path, i: int) -> Path:
    return out / f"chunk_{i:05d}.pt"


# ---------------------------------------------------------------------------- making a set
# One setup per worker (the sub-model restricted to the vertices a set stores) and one function
# per chunk; the single-process loop and the Ray workers (face3d.scale.map_items) call the same two.

def _setup(part: str, model: MorphableModel, data, threads: int | None) -> tuple:
    # One torch thread by default in both modes: the Ray workers use one, and the same thread
    # count keeps the reductions, hence the bytes, the same.
    if threads is not None:
        torch.set_num_threads(threads)
    if part == "estimator":
        from face3d.reconstruct.synthetic import landmark_submodel

        return part, landmark_submodel(model), data, None
    from face3d.stabilize.synth import restrict_model

    noisy, skull = _stabilizer_vertices(model, data)
    keep = torch.unique(torch.cat([noisy, skull]))
    sub = restrict_model(model.float().eval(), keep)
    return part, sub, data, (torch.searchsorted(keep, noisy), torch.searchsorted(keep, skull))


def _chunk(ctx: tuple, item: tuple[int, int, int]) -> dict:
    """Chunk ``item = (index, items, seed)`` -> ``{"chunk": index, "tensors": {...}}`` or, if it
    failed, ``{"chunk": index, "error": message}`` (reported; the other chunks go on)."""
    from face3d.scale import chunk_generator

    part, sub, data, pos = ctx
    i, b, seed = item
    g = chunk_generator(seed, i)
    try:
        if part == "estimator":
            from face3d.reconstruct.synthetic import sample_batch

            with torch.no_grad():
                s = sample_batch(sub, b, data.synthetic, g)
            t = {k: getattr(s, k) for k in ("identity", "expression", "jaw", "rotation", "translation", "focal",
                                            "landmarks", "clean", "visible")}
        else:
            from face3d.stabilize.synth import sample_groups

            k = data.per_identity
            noisy, clean, skull, _ = sample_groups(sub, b, k, data.synth, g)
            t = {"noisy": noisy[:, pos[0]].reshape(b, k, -1, 3), "skull_clean": clean[:, pos[1]].reshape(b, k, -1, 3),
                 "skull": skull.reshape(b, k, 4, 4)}
    except Exception as e:  # noqa: BLE001  (a batch tool reports a failed item and goes on)
        return {"chunk": i, "error": f"{type(e).__name__}: {e}"}
    return {"chunk": i, "tensors": {k: v.contiguous() for k, v in t.items()}}


@dataclass(frozen=True)
class MakeResult:
    """What :func:`make_trainset` did: chunk indices ``written`` now, ``skipped`` (there already),
    ``failed`` (index -> message), and ``stopped_early`` (``limit`` reached)."""

    out: Path
    written: tuple[int, ...]
    skipped: tuple[int, ...]
    failed: dict
    stopped_early: bool

    @property
    def complete(self) -> bool:
        return not self.failed and not self.stopped_early


def _check_manifest(path: Path, want: dict) -> None:
    try:
        have = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable training-set manifest ({type(e).__name__}: {e})") from e
    diff = sorted(k for k in set(want) | set(have) if k != "model_spec" and want.get(k) != have.get(k))
    if diff:
        def show(v):
            s = json.dumps(v)
            return s if len(s) <= 80 else s[:77] + "..."

        lines = "; ".join(f"{k}: the set has {show(have.get(k))}, this run {show(want.get(k))}" for k in diff)
        raise ValueError(f"{path.parent} holds a training set made with other settings ({lines}); "
                         "use another --out, or the same settings to resume it")


def make_trainset(model: MorphableModel, out: str | Path, cfg: TrainSetConfig, *, model_spec: str = "",
                  ray: str | None = None, workers: int | None = None, threads: int | None = 1,
                  limit: int | None = None, progress: bool = True) -> MakeResult:
    """Write (or resume) the set ``cfg`` for ``model`` into folder ``out``.

    ``ray``: a Ray address (``"local"``: a local Ray) to make the chunks on Ray workers (one CPU
    and one torch thread each; the model goes to each worker once, which builds its sub-model
    once); the chunks come back here and are written as they arrive, so ``out`` needs no shared
    storage. ``threads``: this process's torch threads for the single-process run (None: leave
    as is; keep 1 for bytes equal to a Ray run's). ``limit``: stop after that many new chunks.
    A progress bar over all chunks (those already there counted as done) unless ``progress``
    is False. Raises ValueError if ``out`` holds a set made with other settings.
    """
    from face3d.fileio import atomic_write, atomic_write_text
    from face3d.scale import map_items

    out = Path(out)
    want = set_manifest(model, cfg, model_spec)
    mpath = out / MANIFEST
    if mpath.exists():
        _check_manifest(mpath, want)
        for tmp in out.glob(".chunk_*.tmp"):  # left by a run killed mid-write (atomic_write's temporaries)
            tmp.unlink(missing_ok=True)
    else:
        atomic_write_text(mpath, json.dumps(want, indent=1) + "\n")
    items = [(i, min(cfg.chunk, cfg.n - i * cfg.chunk), cfg.seed) for i in range(cfg.n_chunks)]
    there = {i for i, _, _ in items if _chunk_path(out, i).is_file()}
    skipped = tuple(sorted(there))
    todo = [it for it in items if it[0] not in there]
    if limit is not None:
        todo = todo[:max(0, limit)]
    stopped = len(skipped) + len(todo) < len(items)
    written, failed = [], {}
    setup_args = (cfg.part, model, cfg.data, 1 if ray is not None else threads)
    results = map_items(_chunk, todo, _setup, setup_args, ray=ray, workers=workers, progress=progress,
                        desc=f"{cfg.part} set", unit="chunk", done_before=len(skipped)) if todo else ()
    for _, r in results:
        if "error" in r:
            failed[r["chunk"]] = r["error"]
            if progress:
                print(f"chunk {r['chunk']} failed: {r['error']}", file=sys.stderr)
            continue
        atomic_write(_chunk_path(out, r["chunk"]), lambda f, t=r["tensors"]: torch.save(t, f))
        written.append(r["chunk"])
    return MakeResult(out, tuple(sorted(written)), skipped, failed, stopped)


# ---------------------------------------------------------------------------- reading a set
@dataclass(frozen=True)
class TrainSet:
    """A whole stored set in memory: ``manifest`` (dict) and ``tensors`` (name -> (n, ...) CPU
    tensors, items in set order)."""

    path: Path
    manifest: dict
    tensors: dict

    @property
    def n(self) -> int:
        return int(self.manifest["n"])

    @property
    def part(self) -> str:
        return self.manifest["part"]


def _check_use(path: Path, man: dict, part: str | None, model: MorphableModel | None) -> None:
    if part is not None and man["part"] != part:
        raise ValueError(f"{path} is a training set for the {man['part']}, not the {part}; "
                         f"make one with `face3d make-trainset {part} --out DIR`")
    if model is not None and man["model_fingerprint"] != model_digest(model):
        raise ValueError(f"{path} was made for model {man['model_name']!r} (fingerprint {man['model_fingerprint'][:12]}…), "
                         f"not for model {model.name!r} ({model_digest(model)[:12]}…); make a set for this model with "
                         f"`face3d make-trainset {man['part']} --model SPEC --out DIR`")


def check_trainset(ts: TrainSet, part: str, model: MorphableModel) -> None:
    """Raise ValueError unless ``ts`` is a set for ``part`` made with ``model``."""
    _check_use(ts.path, ts.manifest, part, model)


def load_trainset(path: str | Path, part: str | None = None, model: MorphableModel | None = None) -> TrainSet:
    """Read the set in folder ``path``, checking (when given) that it is a set for ``part`` made
    with ``model``, and that every chunk is there. Raises ValueError / FileNotFoundError naming
    what was expected and what was found."""
    path = Path(path)
    mpath = path / MANIFEST
    if not mpath.is_file():
        raise FileNotFoundError(f"{path}: no {MANIFEST}; expected a folder made by `face3d make-trainset`")
    try:
        man = json.loads(mpath.read_text())
    except ValueError as e:
        raise ValueError(f"{mpath}: not valid JSON ({e})") from e
    if man.get("format") != FORMAT:
        raise ValueError(f"{mpath}: expected format {FORMAT!r}, found {man.get('format')!r}")
    _check_use(path, man, part, model)
    missing = [i for i in range(man["chunks"]) if not _chunk_path(path, i).is_file()]
    if missing:
        raise ValueError(f"{path}: the set is incomplete: {len(missing)} of {man['chunks']} chunks missing "
                         f"(first: {_chunk_path(path, missing[0]).name}); rerun the same `face3d make-trainset` "
                         "command to finish it")
    parts = [torch.load(_chunk_path(path, i), map_location="cpu", weights_only=True) for i in range(man["chunks"])]
    tensors = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    got = {len(v) for v in tensors.values()}
    if got != {man["n"]}:
        raise ValueError(f"{path}: the manifest says {man['n']} items, the chunks hold {sorted(got)}")
    return TrainSet(path, man, tensors)


class BatchOrder:
    """Indices of batches of ``batch`` items out of ``n``, in shuffled epochs from ``generator``.

    Each epoch is a fresh ``torch.randperm(n)``; its last ``n % batch`` items are left out (a
    short batch would weight items unequally), so every batch has ``batch`` distinct items.
    Every rank of a ``torchrun`` job with the same seed gets the same batches and keeps its slice.
    """

    def __init__(self, n: int, batch: int, generator: torch.Generator) -> None:
        if batch > n:
            raise ValueError(f"batch: expected at most the {n} items of the stored set, got {batch}")
        self.n, self.batch, self.g = n, batch, generator
        self.perm, self.at, self.epoch = torch.randperm(n, generator=generator), 0, 0

    def next(self) -> Tensor:
        """(batch,) int64 item indices."""
        if self.at + self.batch > self.n:
            self.perm, self.at, self.epoch = torch.randperm(self.n, generator=self.g), 0, self.epoch + 1
        idx = self.perm[self.at:self.at + self.batch]
        self.at += self.batch
        return idx
