"""Rasterization backends behind :mod:`face3d.render.primitives`.

``torch_raster`` is always available (pure PyTorch, CPU and CUDA). ``nvdiffrast_backend`` and
``pytorch3d_backend`` wrap optional packages and import them only when first used.
"""
from __future__ import annotations

import importlib.util

BACKENDS = ("torch", "nvdiffrast", "pytorch3d")


def is_available(name: str) -> bool:
    """Whether backend ``name`` can be used here (its package is importable), without importing it."""
    if name == "torch":
        return True
    if name == "nvdiffrast":
        return importlib.util.find_spec("nvdiffrast") is not None
    if name == "pytorch3d":
        return importlib.util.find_spec("pytorch3d") is not None
    raise ValueError(f"backend: expected one of {BACKENDS + ('auto',)}, got {name!r}")


def available_backends() -> list[str]:
    """Names of the backends whose packages are installed, e.g. ``["torch"]``."""
    return [b for b in BACKENDS if is_available(b)]
