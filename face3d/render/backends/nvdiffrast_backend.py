"""Thin wrapper around ``nvdiffrast.torch`` (CUDA only), imported lazily.

nvdiffrast is not on PyPI: install it from its git repository (NVIDIA source-code licence,
non-commercial). Tensors must be on a CUDA device; ``tri`` must be int32.
"""
from __future__ import annotations

import torch
from torch import Tensor

_contexts: dict = {}


def _dr():
    try:
        import nvdiffrast.torch as dr
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise ImportError(
            "backend='nvdiffrast' needs the nvdiffrast package (pip install "
            "git+https://github.com/NVlabs/nvdiffrast) and a CUDA device; use backend='torch' otherwise"
        ) from exc
    return dr


def _context(device: torch.device):
    dr = _dr()
    key = (device.type, device.index)
    if key not in _contexts:
        _contexts[key] = dr.RasterizeCudaContext(device=device)
    return _contexts[key]


def _need_cuda(name: str, t: Tensor) -> None:
    if t.device.type != "cuda":
        raise ValueError(f"{name}: backend='nvdiffrast' needs CUDA tensors, got a tensor on {t.device}")


def rasterize(pos: Tensor, tri: Tensor, resolution: tuple[int, int]):
    _need_cuda("pos", pos)
    dr = _dr()
    return dr.rasterize(_context(pos.device), pos.float().contiguous(), tri.int().contiguous(), resolution=list(resolution))


def interpolate(attr: Tensor, rast: Tensor, tri: Tensor, rast_db=None, diff_attrs=None):
    _need_cuda("attr", attr)
    dr = _dr()
    if attr.dim() == 2:
        attr = attr[None]
    return dr.interpolate(attr.float().contiguous(), rast, tri.int().contiguous(), rast_db=rast_db, diff_attrs=diff_attrs)


def texture(tex: Tensor, uv: Tensor, filter_mode: str = "linear", boundary_mode: str = "wrap"):
    _need_cuda("tex", tex)
    return _dr().texture(tex.contiguous(), uv.contiguous(), filter_mode=filter_mode, boundary_mode=boundary_mode)


def antialias(color: Tensor, rast: Tensor, pos: Tensor, tri: Tensor):
    _need_cuda("color", color)
    return _dr().antialias(color.contiguous(), rast, pos.float().contiguous(), tri.int().contiguous())
