"""Rendering expression sequences of a morphable model as animation frames."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from face3d.models import MorphableModel

SEQUENCE_KEYS = {"expression": None, "jaw": 3, "neck": 3, "rotation": 3, "eyes": 6}


@dataclass(frozen=True)
class AnimationConfig:
    size: int = 256  # pixels
    fps: float = 25.0
    chunk: int = 16  # frames rendered per batch (bounds memory)


def load_sequence(path, model: MorphableModel) -> dict[str, torch.Tensor]:
    """Read an expression sequence from an ``.npz``.

    Keys: ``expression`` (T, n_expression) required; optional ``jaw``, ``neck``, ``rotation``
    (T, 3) radians and ``eyes`` (T, 6). Returns float32 tensors, validated against ``model``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sequence file not found: {path}")
    try:
        data = dict(np.load(path, allow_pickle=False))
    except Exception as e:
        raise ValueError(f"could not read {path} as an .npz sequence ({type(e).__name__}: {e})") from e
    if "expression" not in data:
        raise ValueError(f"{path}: expected an array 'expression' of shape (T, {model.n_expression}), found {sorted(data)}")
    seq = {}
    T = None
    for k, width in SEQUENCE_KEYS.items():
        if k not in data:
            continue
        a = np.asarray(data[k], dtype=np.float32)
        width = model.n_expression if width is None else width
        if a.ndim != 2 or a.shape[1] != width:
            raise ValueError(f"{path}: '{k}' expected shape (T, {width}), got {a.shape}")
        if T is not None and a.shape[0] != T:
            raise ValueError(f"{path}: '{k}' has {a.shape[0]} frames, 'expression' has {T}")
        T = a.shape[0]
        seq[k] = torch.from_numpy(a)
    if T == 0:
        raise ValueError(f"{path}: the sequence has no frames")
    return seq


def render_sequence(model: MorphableModel, seq: dict[str, torch.Tensor], identity: torch.Tensor | None = None,
                    cfg: AnimationConfig = AnimationConfig(), progress: bool = True) -> np.ndarray:
    """Render every frame of ``seq`` frontally. Returns (T, size, size, 3) uint8.

    The camera frames the neutral head once, so motion in the sequence shows as motion in the video.
    """
    from tqdm import tqdm

    from face3d.viz import PreviewConfig, head_framing, render_preview

    T = next(iter(seq.values())).shape[0]
    with torch.no_grad():
        rest = model(identity=identity).vertices[0]
    center, radius = head_framing(model, rest)
    frames = []
    for s in tqdm(range(0, T, cfg.chunk), disable=not progress, desc="rendering", unit="chunk"):
        part = {k: v[s:s + cfg.chunk] for k, v in seq.items()}
        n = next(iter(part.values())).shape[0]
        with torch.no_grad():
            verts = model(identity=None if identity is None else identity.expand(n, -1), **part).vertices
        for v in verts:
            frames.append(render_preview(v, model.faces, (0.0,), PreviewConfig(size=cfg.size), center=center,
                                         radius=radius, vertex_colors=model.albedo)[0])
    return np.stack(frames)
