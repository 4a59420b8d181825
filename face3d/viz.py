"""Quick looks at meshes: shaded preview renders through the rasterization core.

For people (contact sheets, turntables, before/after pictures), not for fitting: fixed skin-grey
material, one camera orbiting the head, images as uint8.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

SKIN = (0.80, 0.66, 0.58)


@dataclass(frozen=True)
class PreviewConfig:
    """How a preview is shot. Lengths in mm, angles in degrees, sizes in pixels."""

    size: int = 256
    fov_deg: float = 20.0
    margin: float = 1.15  # frame the head's bounding sphere with this much room
    color: tuple[float, float, float] = SKIN
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    light_dir: tuple[float, float, float] = (0.3, 0.4, 1.0)  # towards the light, camera frame at yaw 0


def head_framing(model, vertices: Tensor | None = None, fill: float = 0.8) -> tuple[Tensor, float]:
    """Where to look and how much to frame for a head of ``model``, for :func:`render_preview`.

    Args:
        model: a :class:`~face3d.models.MorphableModel`; its ``skull`` region (the head without
            the neck) is framed where it has one, else every vertex.
        vertices: (V, 3) mm, default the template.
        fill: the head's largest extent in x/y as a fraction of the image height.

    Returns:
        ``(center (3,) mm, radius mm)``: the look-at point, a little below the head's centre so
        the chin and the top of the neck show, and the radius to pass to :func:`render_preview`.
    """
    v = model.template if vertices is None else torch.as_tensor(vertices, dtype=torch.float32)
    if "skull" in model.regions and model.regions["skull"].numel():
        v = v[model.regions["skull"]]
    lo, hi = v.min(0).values, v.max(0).values
    extent = float((hi - lo)[:2].max())
    return (lo + hi) / 2 - torch.tensor([0.0, 0.08 * extent, 0.0]), extent / 2 / fill


def orbit_cameras(center: Tensor, radius: float, yaw_deg: Tensor, cfg: PreviewConfig = PreviewConfig(), pitch_deg: float = 0.0):
    """Cameras on a circle around ``center`` (3,) mm, looking at it.

    ``yaw_deg`` (N,): 0 is the frontal view (camera on +z), positive turns the camera towards the
    subject's left (+x). Returns a batched :class:`face3d.render.Camera` of N views framing a sphere
    of ``radius`` mm.
    """
    from face3d.render import Camera

    yaw = torch.deg2rad(torch.as_tensor(yaw_deg, dtype=torch.float32).reshape(-1))
    pitch = math.radians(pitch_deg)
    dist = cfg.margin * radius / math.sin(math.radians(cfg.fov_deg) / 2)
    eye = torch.stack(
        [torch.sin(yaw) * math.cos(pitch), torch.full_like(yaw, math.sin(pitch)), torch.cos(yaw) * math.cos(pitch)], -1
    ) * dist + center.to(torch.float32)
    return Camera.look_at(eye, center.to(torch.float32).expand_as(eye), fov_deg=cfg.fov_deg, width=cfg.size, height=cfg.size)


def render_preview(vertices: Tensor, faces: Tensor, yaw_deg=(0.0,), cfg: PreviewConfig = PreviewConfig(),
                   center: Tensor | None = None, radius: float | None = None, vertex_colors: Tensor | None = None,
                   backend: str = "auto") -> np.ndarray:
    """Shaded renders of one mesh from several yaw angles.

    Args:
        vertices: (V, 3) float mm.
        faces: (F, 3) int.
        yaw_deg: N yaw angles in degrees (0 = frontal).
        center, radius: framing in mm; by default the vertices' bounding sphere, so pass the same
            values to keep several meshes at one scale.
        vertex_colors: optional (V, 3) in [0, 1]; default the config's skin grey.
        backend: :class:`face3d.render.Renderer` backend.

    Returns:
        (N, size, size, 3) uint8 images, row 0 at the top.
    """
    from face3d.render import Renderer

    v = torch.as_tensor(vertices, dtype=torch.float32)
    if v.dim() != 2 or v.shape[1] != 3:
        raise ValueError(f"vertices: expected shape (V, 3), got {tuple(v.shape)}")
    f = torch.as_tensor(faces, dtype=torch.int64)
    if center is None or radius is None:
        lo, hi = v.min(0).values, v.max(0).values
        center = (lo + hi) / 2 if center is None else center
        radius = float((hi - lo).norm() / 2) if radius is None else radius
    yaw = torch.as_tensor(yaw_deg, dtype=torch.float32).reshape(-1)
    cams = orbit_cameras(torch.as_tensor(center, dtype=torch.float32), radius, yaw, cfg)
    n = yaw.shape[0]
    col = torch.tensor(cfg.color).expand(v.shape[0], 3) if vertex_colors is None else torch.as_tensor(vertex_colors, dtype=torch.float32)
    # Light fixed relative to each camera, so every view is lit alike.
    ld = torch.tensor(cfg.light_dir, dtype=torch.float32)
    ld = ld / ld.norm()
    light = torch.einsum("nij,j->ni", cams.R.transpose(1, 2), ld * torch.tensor([1.0, -1.0, -1.0]))
    with torch.no_grad():
        out = Renderer(backend=backend)(v.expand(n, -1, -1), f, cams, vertex_colors=col.expand(n, -1, -1), light_dir=light)
    bg = torch.tensor(cfg.background)
    img = out.rgb * out.alpha + bg * (1 - out.alpha)
    return (img.clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()


def grid(images: list[np.ndarray], cols: int, labels: list[str] | None = None, pad: int = 4) -> np.ndarray:
    """Tile equally sized (H, W, 3) uint8 images into one picture, with optional captions."""
    from PIL import Image, ImageDraw

    h, w = images[0].shape[:2]
    rows = math.ceil(len(images) / cols)
    cap = 14 if labels else 0
    sheet = Image.new("RGB", (cols * (w + pad) + pad, rows * (h + cap + pad) + pad), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        x, y = pad + c * (w + pad), pad + r * (h + cap + pad)
        sheet.paste(Image.fromarray(im), (x, y + cap))
        if labels:
            draw.text((x + 2, y), labels[i], fill=(0, 0, 0))
    return np.asarray(sheet)


def png_bytes(image: np.ndarray) -> bytes:
    """(H, W, 3) uint8 or float [0, 1] -> PNG bytes."""
    import io

    from PIL import Image

    img = np.asarray(image)
    if img.dtype != np.uint8:
        img = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def save_png(path, image: np.ndarray) -> None:
    """Write an (H, W, 3) image (uint8, or float in [0, 1]) as PNG, atomically."""
    from face3d.fileio import atomic_write_bytes

    atomic_write_bytes(path, png_bytes(image))
