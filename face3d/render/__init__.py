"""Differentiable rasterization: nvdiffrast-style primitives, cameras, lighting and a renderer.

Primitives (tensor contract of ``nvdiffrast.torch``; see :mod:`face3d.render.primitives`):
``rasterize``, ``interpolate``, ``texture``, ``antialias``. Backends: ``"torch"`` (pure
PyTorch, default), ``"nvdiffrast"`` and ``"pytorch3d"`` (optional, imported only when used;
importing this package never imports them).
"""
from face3d.render.backends import available_backends
from face3d.render.camera import Camera
from face3d.render.lighting import lambert, sh_basis, sh_shading
from face3d.render.primitives import antialias, interpolate, rasterize, texture
from face3d.render.renderer import Renderer, RenderOutput, vertex_normals

__all__ = [
    "rasterize", "interpolate", "texture", "antialias",
    "Camera", "Renderer", "RenderOutput",
    "sh_basis", "sh_shading", "lambert", "vertex_normals", "available_backends",
]
