"""Turntable renders and random identities of a morphable model."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from face3d.models import MorphableModel


@dataclass(frozen=True)
class TurntableConfig:
    """``frames`` views over ``sweep_deg`` degrees of yaw, ``size`` px square."""

    frames: int = 24
    sweep_deg: float = 360.0
    size: int = 256


def sample_identities(model: MorphableModel, n: int, sigma: float = 1.0, seed: int = 0) -> torch.Tensor:
    """(n, n_identity) coefficients drawn from the model's prior, scaled by ``sigma`` (in std units)."""
    if n < 1:
        raise ValueError(f"n: expected at least 1 identity, got {n}")
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, model.n_identity, generator=g) * model.identity_std * sigma


def turntable(model: MorphableModel, identity: torch.Tensor | None = None, expression: torch.Tensor | None = None,
              cfg: TurntableConfig = TurntableConfig()) -> np.ndarray:
    """Render one head from ``cfg.frames`` yaw angles.

    Args:
        identity: (1, n_identity) or None (mean head).
        expression: (1, n_expression) or None (neutral).

    Returns:
        (frames, size, size, 3) uint8.
    """
    from face3d.viz import PreviewConfig, head_framing, render_preview

    if cfg.frames < 1:
        raise ValueError(f"frames: expected at least 1, got {cfg.frames}")
    with torch.no_grad():
        v = model(identity=identity, expression=expression).vertices[0]
    yaw = torch.arange(cfg.frames, dtype=torch.float32) * (cfg.sweep_deg / cfg.frames)
    # Frame on the mean head so every identity is shown at the same scale.
    center, radius = head_framing(model)
    return render_preview(v, model.faces, yaw, PreviewConfig(size=cfg.size), center=center, radius=radius,
                          vertex_colors=model.albedo)
