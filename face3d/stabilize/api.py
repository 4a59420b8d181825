"""One interface for every stabilizer, and the loader that picks one by name."""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import torch
from torch import Tensor

from face3d.models.base import MorphableModel

Method = Literal["learned", "procrustes", "upper", "icp"]
METHODS: tuple[str, ...] = ("learned", "procrustes", "upper", "icp")
ASSETS = Path(__file__).resolve().parents[2] / "assets"
BUILTIN_WEIGHTS = ASSETS / "stabilizer_builtin.pt"


@runtime_checkable
class Stabilizer(Protocol):
    """Estimates the rigid skull motion between meshes of one topology."""

    name: str

    def estimate(self, source: Tensor, target: Tensor) -> Tensor:
        """(B, V, 3) source and target meshes (mm) -> (B, 4, 4) transforms mapping the source's
        skull onto the target's: ``target_skull ≈ T[:, :3, :3] @ source_skull + T[:, :3, 3]``."""
        ...


class LearnedStabilizer:
    """:class:`~face3d.stabilize.network.StabilizerNet` behind the :class:`Stabilizer` protocol."""

    name = "learned"

    def __init__(self, net, chunk: int = 512) -> None:
        self.net = net.eval()
        self.chunk = chunk  # meshes per forward pass: bounds memory on long batches

    @torch.no_grad()
    def encode(self, meshes: Tensor) -> tuple[Tensor, Tensor]:
        """(B, V, 3) meshes -> their pre-alignments and skull poses, each (B, 4, 4)."""
        parts = [self.net.encode(m) for m in meshes.split(self.chunk)]
        return torch.cat([p for p, _ in parts]), torch.cat([q for _, q in parts])

    @torch.no_grad()
    def estimate(self, source: Tensor, target: Tensor) -> Tensor:
        """(B, V, 3) source and target meshes (mm) -> (B, 4, 4) source-to-target skull transforms."""
        if source.shape != target.shape:
            raise ValueError(f"learned: source and target shapes differ: {tuple(source.shape)} vs {tuple(target.shape)}")
        P_a, Q_a = self.encode(source)
        P_b, Q_b = self.encode(target)
        return self.net.relative(P_a, Q_a, P_b, Q_b)


def load_weights(path: str | Path, model: MorphableModel):
    """Load a :class:`StabilizerNet` checkpoint for ``model``; raises ``ValueError`` naming the file
    if it was trained for another model or is not a stabilizer checkpoint."""
    from face3d.stabilize.network import StabilizerNet

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"stabilizer weights not found: {path}"
            + (" (train them with `face3d stabilize-train --model builtin --out assets/stabilizer_builtin.pt`)"
               if path == BUILTIN_WEIGHTS else "")
        )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{path}: could not read stabilizer weights ({type(e).__name__}: {e})") from e
    return StabilizerNet.from_checkpoint(ckpt, model, source=str(path))


def load_stabilizer(method: str = "learned", model: "str | MorphableModel" = "builtin",
                    weights: str | Path | None = None) -> Stabilizer:
    """Build a stabilizer by name for a model's topology.

    Args:
        method: ``"learned"``, ``"procrustes"`` (all visible face vertices), ``"upper"``
            (Procrustes on the upper face) or ``"icp"`` (point-to-plane ICP on the upper face).
        model: a :class:`MorphableModel` or a spec for :func:`face3d.load_model`.
        weights: checkpoint for ``"learned"``; default ``assets/stabilizer_builtin.pt`` for the
            built-in model (other models need their own, from ``face3d stabilize-train``).
    """
    from face3d.models import load_model
    from face3d.stabilize.baselines import ICPStabilizer, ProcrustesStabilizer
    from face3d.stabilize.synth import upper_face_vertices, visible_vertices

    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    spec = model if isinstance(model, str) else None
    model = load_model(model)
    if method == "procrustes":
        return ProcrustesStabilizer(visible_vertices(model), model.n_vertices, "procrustes")
    if method == "upper":
        return ProcrustesStabilizer(upper_face_vertices(model), model.n_vertices, "upper")
    if method == "icp":
        return ICPStabilizer(upper_face_vertices(model), model.faces, model.n_vertices)
    if weights is None:
        if spec != "builtin":
            raise ValueError(
                f"method 'learned' for model {model.name!r} needs weights trained for it: "
                "`face3d stabilize-train --model SPEC --out PATH`, then pass weights=PATH"
            )
        weights = BUILTIN_WEIGHTS
    net = load_weights(weights, model)
    if spec == "builtin" and Path(weights) == BUILTIN_WEIGHTS:
        _warn_if_stale(net)
    return LearnedStabilizer(net)


def _warn_if_stale(net) -> None:
    """Warn when the built-in weights were trained on another version of the built-in model (same
    topology and regions, or loading would have failed, but possibly other shapes)."""
    import warnings

    from face3d.fileio import file_sha256
    from face3d.models import BUILTIN_PATH

    trained_on = getattr(net, "model_sha256", "")
    if trained_on and BUILTIN_PATH.is_file() and file_sha256(BUILTIN_PATH) != trained_on:
        warnings.warn(
            f"{BUILTIN_WEIGHTS} was trained on another version of {BUILTIN_PATH} (sha256 {trained_on[:12]}...); "
            "retrain: face3d stabilize-train --model builtin --out assets/stabilizer_builtin.pt", stacklevel=3,
        )
