"""A differentiable mesh renderer on top of the four primitives.

``Renderer()(vertices, faces, camera, ...)`` renders any ``MorphableModel`` output directly
(vertices (B, V, 3) mm + ``model.faces``, optionally ``model.uvs`` / ``model.uv_faces`` and a
texture). Output images have row 0 at the top (like a photo); pixel ``(row i, col j)`` has its
centre at OpenCV ``(x=j, y=i)``.

Near-plane clipping is real clipping: the rasterizer tests ``z/w >= -1`` per pixel, which for the
camera's projection is ``Z_cam >= near``, so triangles crossing the near plane show exactly
their part beyond it (and nothing behind the camera), with finite gradients.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from face3d.geometry.normals import vertex_normals
from face3d.render.camera import Camera
from face3d.render.lighting import lambert, sh_shading
from face3d.render.primitives import Backend, antialias as _antialias, interpolate, rasterize, texture as _texture


@dataclass(frozen=True)
class RenderOutput:
    """What :class:`Renderer` returns (row 0 at the top of every image).

    Attributes:
        rgb: (B, H, W, 3) float colour in [0, 1] (black background).
        alpha: (B, H, W, 1) coverage in [0, 1] (antialiased at silhouettes if requested).
        depth: (B, H, W) camera-space z in mm, 0 where empty.
        normals: (B, H, W, 3) unit world-space normals (interpolated vertex normals), 0 where empty.
        triangle_id: (B, H, W) int64 face index, -1 where empty.
        bary: (B, H, W, 3) perspective-correct barycentrics of the face's 3 vertices, 0 where empty.
        rast: (B, H, W, 4) the raw :func:`rasterize` output, for custom shading.
    """

    rgb: Tensor
    alpha: Tensor
    depth: Tensor
    normals: Tensor
    triangle_id: Tensor
    bary: Tensor
    rast: Tensor


class Renderer:
    """Render meshes with cameras; differentiable w.r.t. vertices, colours, texture and lighting.

    Args:
        backend: rasterization backend (see :mod:`face3d.render.primitives`).
        ambient, diffuse: Lambert terms used when ``light_dir`` is given.
        default_color: albedo when neither vertex colours nor a texture are given.
    """

    def __init__(self, backend: Backend = "auto", ambient: float = 0.3, diffuse: float = 0.7,
                 default_color: float = 0.8):
        self.backend = backend
        self.ambient = ambient
        self.diffuse = diffuse
        self.default_color = default_color

    def __call__(self, vertices: Tensor, faces: Tensor, camera: Camera, vertex_colors: Tensor | None = None,
                 uvs: Tensor | None = None, uv_faces: Tensor | None = None, texture: Tensor | None = None,
                 sh_coeffs: Tensor | None = None, light_dir: Tensor | None = None,
                 antialias: bool = True) -> RenderOutput:
        """Render.

        Args:
            vertices: (B, V, 3) or (V, 3) world mm. A batch of 1 broadcasts to B cameras and
                vice versa.
            faces: (F, 3) int vertex indices.
            camera: :class:`Camera` with batch 1 or B.
            vertex_colors: (B, V, 3) or (V, 3) albedo in [0, 1].
            uvs: (T, 2) texture coordinates in [0, 1], ``v`` up (row 0 of ``texture`` is the top,
                ``v = 1``); uv_faces: (F, 3) indices into ``uvs`` (defaults to ``faces``).
            texture: (B, Ht, Wt, 3) albedo image (batch 1 broadcasts); needs ``uvs``.
            sh_coeffs: (B, 9, 3) SH lighting (see :mod:`face3d.render.lighting`).
            light_dir: (B, 3) or (3,) direction towards a directional light (Lambert).
            antialias: blend silhouette edges (gives gradients w.r.t. silhouettes).
        Returns:
            :class:`RenderOutput`. Without lighting arguments the albedo is returned unshaded.
        """
        if not isinstance(camera, Camera):
            raise TypeError(f"camera: expected a face3d.render.Camera, got {type(camera).__name__}")
        if not isinstance(vertices, Tensor) or vertices.dim() not in (2, 3) or vertices.shape[-1] != 3:
            got = tuple(vertices.shape) if isinstance(vertices, Tensor) else type(vertices).__name__
            raise ValueError(f"vertices: expected a (B, V, 3) tensor in mm, got {got}")
        if vertices.dim() == 2:
            vertices = vertices[None]
        if not isinstance(faces, Tensor):
            raise TypeError(f"faces: expected a (F, 3) integer tensor, got {type(faces).__name__}")
        Bv, Bc = vertices.shape[0], camera.batch_size
        if Bv != Bc and 1 not in (Bv, Bc):
            raise ValueError(f"vertices: batch {Bv} does not match the camera batch {Bc} (and neither is 1)")
        B = max(Bv, Bc)
        H, W = camera.height, camera.width
        verts = vertices.expand(B, *vertices.shape[1:])
        tri = faces.to(device=verts.device, dtype=torch.int32)
        clip = camera.to_clip(verts)
        rast, _ = rasterize(clip, tri, (H, W), backend=self.backend)
        mask = (rast[..., 3:4] > 0).to(verts.dtype)

        normals_v = vertex_normals(verts, tri)
        cam_z = camera.to_camera(verts)[..., 2:3]
        attrs = torch.cat((normals_v, cam_z), -1)
        if vertex_colors is not None:
            vc = vertex_colors if vertex_colors.dim() == 3 else vertex_colors[None]
            if vc.shape[-2:] != (verts.shape[1], 3):
                raise ValueError(f"vertex_colors: expected shape (B, {verts.shape[1]}, 3), got {tuple(vertex_colors.shape)}")
            attrs = torch.cat((attrs, vc.to(verts).expand(B, -1, -1)), -1)
        interp, _ = interpolate(attrs, rast, tri, backend=self.backend)
        normals = torch.nn.functional.normalize(interp[..., 0:3], dim=-1, eps=1e-12) * mask
        depth = interp[..., 3]

        if texture is not None:
            if uvs is None:
                raise ValueError("uvs: required when a texture is given (e.g. model.uvs, model.uv_faces)")
            uvf = (faces if uv_faces is None else uv_faces).to(device=verts.device, dtype=torch.int32)
            uv_img, _ = interpolate(uvs.to(verts), rast, uvf, backend=self.backend)
            # uvs are v-up while texture row 0 is the top of the image: flip v for the lookup.
            uv_img = torch.stack((uv_img[..., 0], 1.0 - uv_img[..., 1]), -1)
            tex = texture.to(verts)
            albedo = _texture(tex, uv_img, boundary_mode="clamp", backend=self.backend)
        elif vertex_colors is not None:
            albedo = interp[..., 4:7]
        else:
            albedo = torch.full_like(interp[..., 0:3], self.default_color)

        if sh_coeffs is not None:
            shade = sh_shading(normals, sh_coeffs.to(verts))
        elif light_dir is not None:
            shade = lambert(normals, light_dir, self.ambient, self.diffuse)
        else:
            shade = 1.0
        rgb = (albedo * shade) * mask
        if antialias:
            rgba = _antialias(torch.cat((rgb, mask), -1), rast, clip, tri, backend=self.backend)
            rgb, alpha = rgba[..., :3], rgba[..., 3:4]
        else:
            alpha = mask
        u, v = rast[..., 0], rast[..., 1]
        bary = torch.stack((u, v, 1 - u - v), -1) * mask
        return RenderOutput(
            rgb=rgb.clamp(0, 1),
            alpha=alpha.clamp(0, 1),
            depth=depth,
            normals=normals,
            triangle_id=rast[..., 3].detach().long() - 1,
            bary=bary,
            rast=rast,
        )
