"""The four rasterization primitives, with nvdiffrast's tensor contract, and backend dispatch.

``rasterize``, ``interpolate``, ``texture`` and ``antialias`` take and return the same tensors
as ``nvdiffrast.torch`` (without its GL/CUDA context argument), so a renderer written against
them runs on any backend:

- ``"torch"``: pure PyTorch, CPU and CUDA, the default (:mod:`.backends.torch_raster`).
- ``"nvdiffrast"``: ``nvdiffrast.torch`` on CUDA tensors (optional, imported lazily).
- ``"pytorch3d"``: ``pytorch3d``'s ``rasterize_meshes`` for :func:`rasterize` (optional, lazily).
- ``"auto"``: nvdiffrast when it is importable and the tensors are on CUDA, else torch.

Conventions: pixel ``(row i, col j)`` has its centre at NDC ``((2j+1)/W - 1, (2i+1)/H - 1)``;
row 0 of every image is ``y_ndc = -1`` (as in nvdiffrast). Fill rule: each pixel centre is
covered by at most one triangle of a watertight mesh and by exactly one inside it; centres that
lie exactly on an edge go to the triangle on the side of ``+x`` (then ``+y``), a top-left-style
tie break (see :mod:`.backends.torch_raster`). Triangles are clipped against the near and far
planes (``-w <= z <= w``) and handled correctly when they cross ``w = 0``.

Example::

    >>> import torch
    >>> from face3d.render import rasterize, interpolate
    >>> pos = torch.tensor([[[-0.8, -0.8, 0.0, 1.0], [0.8, -0.8, 0.0, 1.0], [0.0, 0.8, 0.0, 1.0]]])
    >>> tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    >>> rast, _ = rasterize(pos, tri, (16, 16))
    >>> int((rast[..., 3] > 0).sum())
    72
    >>> color, _ = interpolate(torch.eye(3)[None], rast, tri)
    >>> color.shape
    torch.Size([1, 16, 16, 3])
"""
from __future__ import annotations

from typing import Literal, Sequence

import torch
from torch import Tensor

from face3d.render.backends import BACKENDS, is_available
from face3d.render.backends import torch_raster

Backend = Literal["auto", "torch", "nvdiffrast", "pytorch3d"]


def resolve_backend(backend: str, *tensors: Tensor, op: str = "rasterize") -> str:
    """The concrete backend name for ``backend`` given where the tensors live."""
    if backend not in BACKENDS + ("auto",):
        raise ValueError(f"backend: expected one of {BACKENDS + ('auto',)}, got {backend!r}")
    on_cuda = all(t.device.type == "cuda" for t in tensors if isinstance(t, Tensor))
    if backend == "auto":
        return "nvdiffrast" if on_cuda and is_available("nvdiffrast") else "torch"
    if backend == "pytorch3d" and op != "rasterize":
        return "torch"  # pytorch3d only replaces the rasterizer; the rest works on any rast
    if not is_available(backend):
        raise ImportError(f"backend={backend!r} is not installed here; available: torch"
                          + (", nvdiffrast" if is_available("nvdiffrast") else "")
                          + (", pytorch3d" if is_available("pytorch3d") else ""))
    return backend


# ----------------------------------------------------------------------------- validation


def _tensor(name: str, x, dims: int | tuple[int, ...], last: int | None = None) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    dims = (dims,) if isinstance(dims, int) else dims
    if x.dim() not in dims:
        want = " or ".join(f"{d}-D" for d in dims)
        raise ValueError(f"{name}: expected a {want} tensor, got shape {tuple(x.shape)}")
    if last is not None and x.shape[-1] != last:
        raise ValueError(f"{name}: expected last dimension {last}, got shape {tuple(x.shape)}")
    return x


def _float(name: str, x: Tensor) -> None:
    if x.dtype not in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
        raise TypeError(f"{name}: expected a floating-point tensor (float32), got dtype {x.dtype}")


def _finite(name: str, x: Tensor) -> None:
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{name}: expected finite values, found {bad} NaN/inf entries")


def _check_tri(name: str, tri, n_vertices: int) -> Tensor:
    tri = _tensor(name, tri, 2, 3)
    if tri.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"{name}: expected an int32 (or int64) tensor of vertex indices, got dtype {tri.dtype}")
    if tri.numel():
        lo, hi = int(tri.min()), int(tri.max())
        if lo < 0 or hi >= n_vertices:
            raise ValueError(f"{name}: expected vertex indices in [0, {n_vertices}), found [{lo}, {hi}]")
    return tri


def _check_resolution(resolution) -> tuple[int, int]:
    try:
        H, W = (int(r) for r in resolution)
    except (TypeError, ValueError):
        raise ValueError(f"resolution: expected (height, width) ints, got {resolution!r}") from None
    if H <= 0 or W <= 0:
        raise ValueError(f"resolution: expected a positive (height, width), got ({H}, {W})")
    return H, W


def _check_rast(rast) -> Tensor:
    rast = _tensor("rast", rast, 4, 4)
    _float("rast", rast)
    if rast.shape[1] == 0 or rast.shape[2] == 0:
        raise ValueError(f"rast: expected a non-empty image, got shape {tuple(rast.shape)}")
    return rast


# ----------------------------------------------------------------------------- primitives


def rasterize(pos: Tensor, tri: Tensor, resolution: Sequence[int], backend: Backend = "auto",
              grad_db: bool = True) -> tuple[Tensor, Tensor | None]:
    """Rasterize triangles into per-pixel barycentrics, depth and triangle ids.

    Args:
        pos: (B, V, 4) float32 clip-space vertex positions (float64 accepted for gradient checks).
        tri: (F, 3) int32 vertex indices (int64 accepted), shared by the batch.
        resolution: (H, W) output size in pixels.
        backend: see the module docstring.
        grad_db: whether ``rast_db`` carries gradients to ``pos``.
    Returns:
        rast: (B, H, W, 4) ``(u, v, z/w, triangle_id + 1)``, zeros where no triangle covers the
        pixel centre. ``u, v`` are perspective-correct and differentiable w.r.t. ``pos`` (so is
        ``z/w``); the id is not.
        rast_db: (B, H, W, 4) ``(du/dx, du/dy, dv/dx, dv/dy)`` per pixel, or None for backends
        that do not provide it (pytorch3d).
    """
    pos = _tensor("pos", pos, 3, 4)
    _float("pos", pos)
    H, W = _check_resolution(resolution)
    tri = _check_tri("tri", tri, pos.shape[1])
    if pos.shape[0] == 0:
        raise ValueError(f"pos: expected a batch of at least one mesh, got shape {tuple(pos.shape)}")
    _finite("pos", pos)
    name = resolve_backend(backend, pos, tri)
    if name == "nvdiffrast":
        from face3d.render.backends import nvdiffrast_backend

        return nvdiffrast_backend.rasterize(pos, tri, (H, W))
    if name == "pytorch3d":
        from face3d.render.backends import pytorch3d_backend

        return pytorch3d_backend.rasterize(pos, tri, (H, W))
    if pos.dtype in (torch.float16, torch.bfloat16):
        pos = pos.float()
    return torch_raster.rasterize(pos, tri, (H, W), grad_db=grad_db)


def interpolate(attr: Tensor, rast: Tensor, tri: Tensor, rast_db: Tensor | None = None,
                diff_attrs: "str | Sequence[int] | None" = None, backend: Backend = "auto"
                ) -> tuple[Tensor, Tensor | None]:
    """Interpolate per-vertex attributes with the barycentrics in ``rast``.

    Args:
        attr: (B, V, C) or (V, C) float attributes (a batch of 1 broadcasts).
        rast: (B, H, W, 4) output of :func:`rasterize`.
        tri: (F, 3) int32 indices into ``attr`` (may differ from the rasterized ``tri``, e.g.
            UV faces, as long as the triangle ids match).
        rast_db: (B, H, W, 4), needed only with ``diff_attrs``.
        diff_attrs: ``"all"`` or attribute indices whose screen derivatives are returned.
    Returns:
        out: (B, H, W, C), zero where empty; differentiable w.r.t. ``attr`` and, through
        ``rast``'s barycentrics, the vertex positions.
        out_da: (B, H, W, 2*len(diff_attrs)) ``(d/dx, d/dy)`` per attribute, pixel units, or None.
    """
    attr = _tensor("attr", attr, (2, 3))
    _float("attr", attr)
    rast = _check_rast(rast)
    tri = _check_tri("tri", tri, attr.shape[-2])
    if attr.dim() == 3 and attr.shape[0] not in (1, rast.shape[0]):
        raise ValueError(f"attr: expected batch 1 or {rast.shape[0]} (like rast), got shape {tuple(attr.shape)}")
    if diff_attrs is not None and rast_db is None:
        raise ValueError("rast_db: required when diff_attrs is given (pass the second output of rasterize)")
    if rast.numel():
        top = int(rast[..., 3].max())
        if top > tri.shape[0]:
            raise ValueError(f"tri: rast refers to triangle id {top - 1} but tri has only {tri.shape[0]} rows")
    name = resolve_backend(backend, attr, rast, op="interpolate")
    if name == "nvdiffrast":
        from face3d.render.backends import nvdiffrast_backend

        return nvdiffrast_backend.interpolate(attr, rast, tri, rast_db, diff_attrs)
    return torch_raster.interpolate(attr, rast, tri, rast_db, diff_attrs)


def texture(tex: Tensor, uv: Tensor, filter_mode: Literal["linear", "nearest", "auto"] = "linear",
            boundary_mode: Literal["wrap", "clamp", "zero"] = "wrap", backend: Backend = "auto") -> Tensor:
    """Bilinear texture lookup (no mipmaps).

    Args:
        tex: (B, Ht, Wt, C) float texture (batch 1 broadcasts). Row 0 is ``v = 0``; texel
            ``(i, j)`` has its centre at ``uv = ((j + 0.5)/Wt, (i + 0.5)/Ht)``.
        uv: (B, H, W, 2) float texture coordinates.
        filter_mode: ``"linear"`` (bilinear) or ``"nearest"``; ``"auto"`` means linear here.
        boundary_mode: ``"wrap"``, ``"clamp"`` or ``"zero"`` outside [0, 1].
    Returns:
        (B, H, W, C), differentiable w.r.t. ``tex`` and ``uv``.
    """
    tex = _tensor("tex", tex, 4)
    uv = _tensor("uv", uv, 4, 2)
    _float("tex", tex)
    _float("uv", uv)
    if tex.shape[1] == 0 or tex.shape[2] == 0 or tex.shape[3] == 0:
        raise ValueError(f"tex: expected a non-empty (B, Ht, Wt, C) texture, got shape {tuple(tex.shape)}")
    if tex.shape[0] not in (1, uv.shape[0]):
        raise ValueError(f"tex: expected batch 1 or {uv.shape[0]} (like uv), got shape {tuple(tex.shape)}")
    if filter_mode not in ("linear", "nearest", "auto"):
        raise ValueError(f"filter_mode: expected 'linear', 'nearest' or 'auto', got {filter_mode!r}")
    if boundary_mode not in ("wrap", "clamp", "zero"):
        raise ValueError(f"boundary_mode: expected 'wrap', 'clamp' or 'zero', got {boundary_mode!r}")
    name = resolve_backend(backend, tex, uv, op="texture")
    if name == "nvdiffrast":
        from face3d.render.backends import nvdiffrast_backend

        return nvdiffrast_backend.texture(tex, uv, filter_mode, boundary_mode)
    return torch_raster.texture(tex, uv, filter_mode, boundary_mode)


def antialias(color: Tensor, rast: Tensor, pos: Tensor, tri: Tensor, backend: Backend = "auto") -> Tensor:
    """Analytic antialiasing of silhouette and occlusion edges.

    Pixel pairs straddling a silhouette edge are blended by the edge's coverage along the
    segment joining their centres (see :func:`.backends.torch_raster.antialias`), which gives
    gradients w.r.t. the positions of the vertices on those edges.

    Args:
        color: (B, H, W, C) float image to antialias (e.g. shaded colour and alpha).
        rast: (B, H, W, 4) output of :func:`rasterize` for ``pos``/``tri``.
        pos: (B, V, 4) float32 clip-space positions used for ``rast``.
        tri: (F, 3) int32 indices used for ``rast``. Meshes should be consistently wound;
            boundary and non-manifold edges count as silhouettes.
    Returns:
        (B, H, W, C) antialiased colour.
    """
    color = _tensor("color", color, 4)
    _float("color", color)
    rast = _check_rast(rast)
    pos = _tensor("pos", pos, 3, 4)
    _float("pos", pos)
    tri = _check_tri("tri", tri, pos.shape[1])
    if color.shape[:3] != rast.shape[:3]:
        raise ValueError(f"color: expected (B, H, W) = {tuple(rast.shape[:3])} like rast, got shape {tuple(color.shape)}")
    if pos.shape[0] != rast.shape[0]:
        raise ValueError(f"pos: expected batch {rast.shape[0]} like rast, got shape {tuple(pos.shape)}")
    _finite("pos", pos)
    name = resolve_backend(backend, color, pos, op="antialias")
    if name == "nvdiffrast":
        from face3d.render.backends import nvdiffrast_backend

        return nvdiffrast_backend.antialias(color, rast, pos, tri)
    return torch_raster.antialias(color, rast, pos, tri)
