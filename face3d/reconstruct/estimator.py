"""Learned metric shape estimator: 2D landmarks -> identity coefficients (a mm-scale head).

The idea follows MICA (Zielonka et al. 2022, "Towards Metrical Reconstruction of Human Faces"):
regress the identity of a metric morphable model directly, trained on data whose scale is known,
so the output is in millimetres rather than "up to scale". MICA feeds an ArcFace identity
embedding; we feed the detector's 68 landmarks, normalised for position and size, because the
only training data available here are renders of the morphable model itself, and a face-recognition
descriptor (dlib's 128-D) computed on untextured synthetic renders would describe renders, not
people. Landmarks transfer from synthetic to real images; appearance embeddings would not.

Honesty note: a single image does not determine metric size — a larger head further away gives the
same picture up to perspective. The network learns the prior over shape *given landmark ratios*
(proportions plus faint perspective cues), i.e. it predicts the most likely metric head for those
proportions under the model's identity distribution. Expect it to beat the mean head, not to
measure an individual's absolute size the way a calibrated scanner would.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch
from torch import Tensor, nn

from face3d.fileio import atomic_write, file_sha256

if TYPE_CHECKING:
    from face3d.distributed import DistInfo
    from face3d.trainset import TrainSet
from face3d.models.base import MorphableModel
from face3d.reconstruct.synthetic import (
    SyntheticConfig, landmark_submodel, model_fingerprint, normalize_landmarks, sample_batch,
)

N_LANDMARKS = 68


class ShapeEstimator(nn.Module):
    """MLP from normalised landmarks (:func:`normalize_landmarks`) to identity coefficients.

    ``forward(features (B, 3·68) float32) -> (B, n_identity)`` coefficients in units of the model's
    ``identity_std`` (i.e. directly usable as ``model(identity=...)``).
    """

    def __init__(self, n_identity: int, hidden: int = 256, layers: int = 3) -> None:
        super().__init__()
        dims = [3 * N_LANDMARKS] + [hidden] * layers
        mods: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            mods += [nn.Linear(a, b), nn.SiLU()]
        mods.append(nn.Linear(dims[-1], n_identity))
        self.net = nn.Sequential(*mods)
        self.n_identity = n_identity
        self.hidden = hidden
        self.layers = layers

    def forward(self, features: Tensor) -> Tensor:
        return self.net(features)

    def predict(self, landmarks: Tensor, visible: Tensor | None = None) -> Tensor:
        """(B, 68, 2) px landmarks (+ (B, 68) visibility) -> (B, n_identity) coefficients."""
        return self(normalize_landmarks(landmarks.float(), visible))


@dataclass(frozen=True)
class TrainConfig:
    """Training settings (``steps`` Adam steps on freshly sampled batches, or on a stored set:
    see :func:`train_estimator`'s ``data``)."""

    steps: int = 2000
    batch: int = 512
    lr: float = 2e-3
    hidden: int = 256
    layers: int = 3
    seed: int = 0
    synthetic: SyntheticConfig = SyntheticConfig()

    def __post_init__(self):
        if self.steps < 4:
            raise ValueError(f"steps: expected >= 4 (one-cycle schedule: warm-up and decay), got {self.steps}")


def _vertex_subset(model: MorphableModel, max_vertices: int = 600) -> Tensor:
    face = model.regions.get("face")
    ids = face if face is not None and face.numel() else torch.arange(model.n_vertices)
    if ids.numel() > max_vertices:
        ids = ids[torch.linspace(0, ids.numel() - 1, max_vertices).long()]
    return ids


def shape_error_mm(model: MorphableModel, pred: Tensor, true: Tensor, ids: Tensor | None = None) -> Tensor:
    """(B, n_id) predicted and true identity -> (B,) mean per-vertex distance (mm) of the neutral
    faces (face region, no pose: the metric error with no alignment at all)."""
    ids = _vertex_subset(model) if ids is None else ids
    basis = model.identity_basis[ids]  # (n, 3, K)
    d = torch.einsum("nck,bk->bnc", basis, pred - true)
    return d.norm(dim=-1).mean(-1)


def train_estimator(model: MorphableModel, cfg: TrainConfig = TrainConfig(),
                    progress: Callable[[int, float], None] | None = None,
                    dist: "DistInfo | None" = None, data: "TrainSet | None" = None) -> tuple[ShapeEstimator, dict]:
    """Train a :class:`ShapeEstimator` for ``model`` on synthetic landmarks.

    The loss is the mean vertex distance (mm) between the predicted and true neutral faces, so the
    network spends its capacity where millimetres are, not on equal coefficient errors.

    ``dist``: this process's rank under ``torchrun`` (default: the running process group, if any):
    every rank draws the same batch of ``cfg.batch`` and trains on its slice, gradients averaged
    (:mod:`face3d.distributed`), so N processes follow the single-process run; only rank 0 calls
    ``progress``. The logged loss is the global batch's.

    ``data``: a stored set (:func:`face3d.trainset.load_trainset`, part ``estimator``, made for
    ``model``) to train on instead of the live stream: batches of ``cfg.batch`` scenes in shuffled
    epochs over it (:class:`face3d.trainset.BatchOrder`, seeded by ``cfg.seed``; ``cfg.synthetic``
    is then unused). Under ``torchrun`` every rank takes the same batch indices and reads its slice.

    Returns the network (eval mode) and a dict of training statistics.
    """
    from face3d import distributed

    info = distributed.current() if dist is None else dist
    part = distributed.shard(cfg.batch, info, "TrainConfig.batch")
    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    sub = landmark_submodel(model)
    net = ShapeEstimator(model.n_identity, cfg.hidden, cfg.layers)
    distributed.broadcast_parameters(net, info)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    # 10 % warm-up, but at least 2 steps of it (shorter runs would divide by a zero-step phase)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps,
                                                pct_start=min(0.5, max(0.1, 2.0 / cfg.steps)))
    ids = _vertex_subset(model)
    order = None
    if data is not None:
        from face3d.trainset import BatchOrder, check_trainset

        check_trainset(data, "estimator", model)
        order = BatchOrder(data.n, cfg.batch, g)
    t0 = time.time()
    ema = None
    for step in range(cfg.steps):
        with torch.no_grad():
            if order is None:
                b = sample_batch(sub, cfg.batch, cfg.synthetic, g)
                lm, vis, true = b.landmarks[part], b.visible[part], b.identity[part]
            else:
                idx = order.next()[part]
                lm, vis, true = (data.tensors[k][idx] for k in ("landmarks", "visible", "identity"))
            feats = normalize_landmarks(lm, vis)
        pred = net(feats)
        loss = shape_error_mm(model, pred, true, ids).mean()
        opt.zero_grad()
        loss.backward()
        distributed.average_gradients(net.parameters(), info)
        opt.step()
        sched.step()
        lv = distributed.average_scalar(loss.detach(), info)
        ema = lv if ema is None else 0.98 * ema + 0.02 * lv
        if progress is not None and info.is_main and (step % 100 == 0 or step == cfg.steps - 1):
            progress(step, ema)
    net.eval()
    stats = {"final_loss_mm": ema, "seconds": time.time() - t0}
    if order is not None:
        stats.update(data_items=data.n, data_epochs=order.epoch + order.at / data.n)
    return net, stats


def save_estimator(net: ShapeEstimator, model: MorphableModel, path: str | Path, extra: dict | None = None) -> str:
    """Write weights + metadata atomically; returns the file's sha256."""
    payload = {
        "format": "face3d-shape-estimator-v1",
        "n_identity": net.n_identity, "hidden": net.hidden, "layers": net.layers,
        "model_name": model.name, "model_fingerprint": model_fingerprint(model),
        "state_dict": {k: v.detach().cpu().half() for k, v in net.state_dict().items()},
        **(extra or {}),
    }
    atomic_write(path, lambda f: torch.save(payload, f))
    return file_sha256(path)


def load_estimator(path: str | Path, model: MorphableModel | None = None, strict: bool = True) -> ShapeEstimator:
    """Read weights written by :func:`save_estimator`; with ``model``, check they were trained
    for it (same identity basis size and, unless ``strict=False``, the same model fingerprint;
    a mismatch then only warns)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"estimator weights not found: {path}")
    try:
        p = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"could not read {path} as face3d estimator weights ({type(e).__name__}: {e})") from e
    if not isinstance(p, dict) or p.get("format") != "face3d-shape-estimator-v1":
        raise ValueError(f"{path}: expected format 'face3d-shape-estimator-v1', found {p.get('format') if isinstance(p, dict) else type(p).__name__}")
    if model is not None:
        if p["n_identity"] != model.n_identity:
            raise ValueError(f"{path} predicts {p['n_identity']} identity coefficients, model {model.name!r} has {model.n_identity}")
        fp = model_fingerprint(model)
        if p["model_fingerprint"] != fp and not strict:
            import warnings

            warnings.warn(f"{path} was trained for a different version of model {model.name!r}", stacklevel=2)
        elif p["model_fingerprint"] != fp:
            raise ValueError(f"{path} was trained for a different model (fingerprint {p['model_fingerprint'][:12]}…, "
                             f"model {model.name!r} has {fp[:12]}…); retrain with `face3d train-estimator`")
    net = ShapeEstimator(p["n_identity"], p["hidden"], p["layers"])
    net.load_state_dict({k: v.float() for k, v in p["state_dict"].items()})
    net.eval()
    net.meta = {k: v for k, v in p.items() if k != "state_dict"}
    return net


DEFAULT_WEIGHTS = Path(__file__).resolve().parents[2] / "assets" / "estimator_builtin.pt"


def default_estimator(model: MorphableModel) -> ShapeEstimator | None:
    """The committed weights for the built-in model, or ``None`` for other models / missing file.

    If the built-in model was regenerated after the weights were trained (fingerprint differs,
    same number of identity components) they are still used, with a warning: retrain with
    ``face3d train-estimator --model builtin --out assets/estimator_builtin.pt``.
    """
    if not DEFAULT_WEIGHTS.is_file() or model.name != "builtin":
        return None
    try:
        return load_estimator(DEFAULT_WEIGHTS, model, strict=False)
    except ValueError:
        return None
