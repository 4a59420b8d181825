"""Writing reconstruction results: mesh (+ texture), parameters, overlay image, measurements.

Every file is written atomically (temporary file in the same folder, then :func:`os.replace`), so
an interrupted batch never leaves a half-written result under its final name.

Files for a result with stem ``S`` in folder ``D``:

- ``D/S.obj`` (+ ``S.mtl`` and ``S_texture.png`` when an albedo was fitted): the fitted mesh in
  the model's head frame (pose removed, expression kept), millimetres, with the model's UVs.
- ``D/S_params.json`` and ``D/S_params.npz``: coefficients, pose, camera, detected and fitted
  landmarks, fit quality.
- ``D/S_overlay.png``: the render over the photo, detected (green) and fitted (red) landmarks,
  and every detected face's box with its index (the reconstructed one red).
- ``D/S_measurements.json``: measurements in mm (:mod:`face3d.reconstruct.measure`).
"""
from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from face3d.fileio import atomic_write_bytes
from face3d.viz import png_bytes


def bake_texture(model, albedo: Tensor, size: int = 256) -> np.ndarray:
    """Per-vertex albedo (V, 3) in [0, 1] -> (size, size, 3) float UV texture (row 0 = v 1).

    Rasterizes the model's UV layout (``uvs``/``uv_faces``) and interpolates the vertex colours;
    texels outside every UV triangle get the mean colour.
    """
    from face3d.render import interpolate, rasterize

    uvs = model.uvs.float()
    # Texture row i (top = 0) is v = 1 - (i + 0.5)/size and rasterizer row i is y_ndc = (2i+1)/size - 1,
    # so y_ndc = 1 - 2 v.
    pos = torch.cat([uvs * 2 - 1, torch.zeros(len(uvs), 1), torch.ones(len(uvs), 1)], 1)
    pos[:, 1] = 1 - 2 * uvs[:, 1]
    uv_to_vertex = torch.zeros(len(uvs), dtype=torch.int64)
    uv_to_vertex[model.uv_faces.reshape(-1)] = model.faces.reshape(-1)
    colors = albedo.reshape(-1, 3)[uv_to_vertex]
    tri = model.uv_faces.to(torch.int32)
    rast, _ = rasterize(pos[None], tri, (size, size))
    tex, _ = interpolate(colors[None], rast, tri)
    mask = rast[0, ..., 3:4] > 0
    fill = albedo.reshape(-1, 3).mean(0)
    return torch.where(mask, tex[0], fill).clamp(0, 1).numpy()


def write_mesh(path: str | Path, model, vertices: Tensor, albedo: Tensor | None = None, texture_size: int = 256) -> list[Path]:
    """Write an OBJ (``.obj``: UVs + material + baked texture if ``albedo``) or PLY of
    ``vertices`` (V, 3) mm; returns the written paths."""
    from face3d.geometry.mesh_io import Mesh, save_mesh

    path = Path(path)
    has_uv = model.uvs.shape[0] > 1
    mesh = Mesh(vertices=vertices.detach().double().cpu().numpy(), faces=model.faces.cpu().numpy(),
                uvs=model.uvs.cpu().numpy() if has_uv else None,
                uv_faces=model.uv_faces.cpu().numpy() if has_uv else None)
    written = [path]
    if path.suffix.lower() != ".obj" or albedo is None or not has_uv:
        save_mesh(path, mesh)
        return written
    # The mesh writer knows nothing of materials: write to memory via a temp file, prepend mtllib.
    with tempfile.TemporaryDirectory(dir=path.parent if path.parent.exists() else None) as td:
        tmp = Path(td) / "m.obj"
        save_mesh(tmp, mesh)
        body = tmp.read_bytes()
    mtl, tex = path.with_suffix(".mtl"), path.with_name(path.stem + "_texture.png")
    atomic_write_bytes(tex, png_bytes(bake_texture(model, albedo, texture_size)))
    atomic_write_bytes(mtl, (f"newmtl face\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\nmap_Kd {tex.name}\n").encode())
    atomic_write_bytes(path, f"mtllib {mtl.name}\nusemtl face\n".encode() + body)
    return [path, mtl, tex]


def draw_points(image: np.ndarray, points: np.ndarray, color: tuple[int, int, int], radius: int = 2) -> np.ndarray:
    """Draw (N, 2) px points as filled squares on a copy of an (H, W, 3) uint8 image."""
    img = image.copy()
    H, W = img.shape[:2]
    offs = np.arange(-radius, radius + 1)
    dx, dy = np.meshgrid(offs, offs)
    p = np.round(points).astype(np.int64)
    xs = (p[:, 0:1] + dx.reshape(1, -1)).reshape(-1)
    ys = (p[:, 1:2] + dy.reshape(1, -1)).reshape(-1)
    ok = (xs >= 0) & (xs < W) & (ys >= 0) & (ys < H)
    img[ys[ok], xs[ok]] = color
    return img


def draw_boxes(image: np.ndarray, boxes: list[np.ndarray], chosen: int | None = None) -> np.ndarray:
    """Outline every (4,) px box ``(x0, y0, x1, y1)`` on a copy of an (H, W, 3) uint8 image and
    write its index above it: the chosen one red, the others yellow."""
    from PIL import Image, ImageDraw

    im = Image.fromarray(np.ascontiguousarray(image))
    draw = ImageDraw.Draw(im)
    width = max(1, round(max(image.shape[:2]) / 400))
    for i, b in enumerate(boxes):
        colour = (255, 0, 0) if i == chosen else (255, 220, 0)
        x0, y0, x1, y1 = (float(v) for v in b)
        draw.rectangle([x0, y0, x1, y1], outline=colour, width=width)
        draw.text((x0 + 2, max(0.0, y0 - 12)), str(i), fill=colour)
    return np.asarray(im)


def render_overlay(model, image: np.ndarray, vertices: Tensor, focal: float, albedo: Tensor | None,
                   sh: Tensor | None, detected: np.ndarray | None, fitted: np.ndarray | None,
                   opacity: float = 0.6) -> np.ndarray:
    """The fitted mesh (without the neck) rendered over the photo (uint8 (H, W, 3)).

    ``vertices`` (V, 3) mm in the camera convention of :mod:`face3d.reconstruct.camera`;
    with ``albedo``/``sh`` the fitted appearance (nearly invisible when the fit is good), else
    grey Lambert shading, which shows the geometry's alignment.
    """
    from face3d.reconstruct.camera import make_camera
    from face3d.render import Renderer

    H, W = image.shape[:2]
    cam = make_camera(torch.tensor([float(focal)]), W, H)
    r = Renderer()
    # The neck is not fitted (no image term reaches it); leave it out of the picture.
    neck = model.region_mask("neck", missing_ok=True)
    faces = model.faces[~neck[model.faces].all(-1)]
    with torch.no_grad():
        if albedo is not None and sh is not None:
            out = r(vertices[None].float(), faces, cam, vertex_colors=albedo[None].float(), sh_coeffs=sh[None].float())
        else:
            out = r(vertices[None].float(), faces, cam, vertex_colors=torch.full((1, model.n_vertices, 3), 0.8),
                    light_dir=torch.tensor([0.3, 0.4, 1.0]))
    rgb = out.rgb[0].numpy()
    a = out.alpha[0].numpy() * opacity
    base = image.astype(np.float32) / 255.0
    comp = (base * (1 - a) + rgb * a)
    img = (np.clip(comp, 0, 1) * 255 + 0.5).astype(np.uint8)
    rad = max(1, round(max(H, W) / 300))
    if detected is not None:
        img = draw_points(img, detected, (0, 255, 0), rad)
    if fitted is not None:
        img = draw_points(img, fitted, (255, 0, 0), rad)
    return img


def render_mesh_view(model, vertices: Tensor, size: int = 512, yaw_deg: float = 25.0) -> np.ndarray:
    """A grey shaded view of a head-frame mesh (V, 3) mm from the front-left; (size, size, 3) uint8."""
    from face3d.geometry.rotations import axis_angle_to_matrix
    from face3d.render import Camera, Renderer

    v = vertices.float()
    # Frame the head (the "skull" region where the model has one), not the neck.
    frame = v[model.regions["skull"]] if "skull" in model.regions and model.regions["skull"].numel() else v
    c = (frame.max(0).values + frame.min(0).values) / 2
    Rz = axis_angle_to_matrix(torch.tensor([[0.0, float(np.radians(yaw_deg)), 0.0]]))[0]
    v = (v - c) @ Rz.T
    f = (frame - c) @ Rz.T
    extent = float((f.max(0).values - f.min(0).values)[:2].max())
    fov = 20.0
    dist = 1.25 * extent / (2 * np.tan(np.radians(fov / 2)))
    cam = Camera.look_at(torch.tensor([0.0, 0.0, dist]), (0.0, 0.0, 0.0), fov_deg=fov, width=size, height=size)
    with torch.no_grad():
        out = Renderer()(v[None], model.faces, cam, vertex_colors=torch.full((1, v.shape[0], 3), 0.85),
                         light_dir=torch.tensor([0.4, 0.5, 1.0]))
    img = out.rgb[0] + (1 - out.alpha[0]) * torch.tensor([0.15, 0.17, 0.2])
    return (img.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)


def _jsonable(x):
    if isinstance(x, Tensor):
        x = x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def write_json(path: str | Path, data: dict) -> None:
    atomic_write_bytes(path, (json.dumps(_jsonable(data), indent=1) + "\n").encode())


def write_npz(path: str | Path, arrays: dict) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(_jsonable(v)) for k, v in arrays.items()})
    atomic_write_bytes(path, buf.getvalue())
