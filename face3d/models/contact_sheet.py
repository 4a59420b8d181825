"""A labelled contact sheet of a morphable model: mean head, identity extremes, expressions.

``make_contact_sheet(model, out_path)`` renders the mean head from the front, the side and three
quarters, then +-3 sigma along the first identity components and every expression at full
weight, into one PNG. It uses :class:`face3d.render.Renderer` when that package provides one and
otherwise a small numpy z-buffer rasterizer (:func:`raster_numpy`), so the sheet can be made on
any machine.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

__all__ = ["ContactSheetConfig", "make_contact_sheet", "raster_numpy", "look_at_projection", "shade_views"]


@dataclass(frozen=True)
class ContactSheetConfig:
    """Layout of the sheet. ``tile`` is the side of one rendered view in pixels."""

    tile: int = 200
    n_identity: int = 6
    sigma: float = 3.0
    camera_distance: float = 520.0  # mm from the look-at point (head centre, a little low)
    fov_deg: float = 30.0
    backend: Literal["auto", "numpy"] = "auto"  # auto: face3d.render.Renderer if importable


VIEWS = {"front": 0.0, "3/4": 40.0, "side": 90.0}


def look_at_projection(vertices: np.ndarray, yaw_deg: float, size: int, distance: float, fov_deg: float,
                       target=(0.0, -15.0, 0.0)):
    """Pinhole projection of (V, 3) world points (mm) for a camera orbiting the head about +y.

    ``yaw_deg`` 0 looks at the face (camera on +z), 90 at the subject's left side (camera on +x).
    Returns pixels (V, 2) (x right, y down, OpenCV convention), depth (V,) mm along the view axis
    and the camera position (3,).
    """
    yaw = np.deg2rad(yaw_deg)
    t = np.asarray(target, float)
    eye = t + distance * np.array([np.sin(yaw), 0.0, np.cos(yaw)])
    fwd = (t - eye) / np.linalg.norm(t - eye)
    right = np.cross(fwd, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    R = np.stack([right, down, fwd])  # world -> camera (OpenCV: x right, y down, z forward)
    pc = (vertices - eye) @ R.T
    f = 0.5 * size / np.tan(np.deg2rad(fov_deg) / 2)
    px = np.stack([f * pc[:, 0] / pc[:, 2] + (size - 1) / 2, f * pc[:, 1] / pc[:, 2] + (size - 1) / 2], -1)
    return px, pc[:, 2], eye


def raster_numpy(px: np.ndarray, depth: np.ndarray, faces: np.ndarray, size: int):
    """Z-buffer rasterization of a triangle mesh, vectorized by bounding-box size buckets.

    px (V, 2) pixel coordinates, depth (V,) > 0, faces (F, 3). Returns triangle id (H, W) int64
    (-1 where empty) and barycentrics (H, W, 3). Triangles are grouped by the size of their
    bounding boxes so every group is one dense array operation.
    """
    H = W = size
    tri = px[faces]  # (F, 3, 2)
    z = depth[faces]
    lo = np.floor(tri.min(1)).astype(int)
    hi = np.ceil(tri.max(1)).astype(int)
    ext = np.maximum(hi - lo, 0).max(1) + 1
    visible = (z.min(1) > 1e-3) & (hi[:, 0] >= 0) & (hi[:, 1] >= 0) & (lo[:, 0] < W) & (lo[:, 1] < H)
    all_pix, all_z, all_f, all_b = [], [], [], []
    size_b = 1
    while True:
        sel = np.where(visible & (ext <= size_b) & (ext > size_b // 2 if size_b > 1 else True))[0]
        if len(sel):
            oy, ox = np.meshgrid(np.arange(size_b), np.arange(size_b), indexing="ij")
            gx = lo[sel, 0][:, None] + ox.ravel()[None]
            gy = lo[sel, 1][:, None] + oy.ravel()[None]
            a, b, c = tri[sel, 0], tri[sel, 1], tri[sel, 2]
            v0, v1 = b - a, c - a
            den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
            den = np.where(np.abs(den) < 1e-12, 1e-12, den)
            qx, qy = gx - a[:, 0:1], gy - a[:, 1:2]
            l1 = (qx * v1[:, 1:2] - v1[:, 0:1] * qy) / den[:, None]
            l2 = (v0[:, 0:1] * qy - qx * v0[:, 1:2]) / den[:, None]
            l0 = 1 - l1 - l2
            inside = (l0 >= -1e-6) & (l1 >= -1e-6) & (l2 >= -1e-6) & (gx >= 0) & (gy >= 0) & (gx < W) & (gy < H)
            # perspective-correct depth: interpolate 1/z
            iz = l0 / z[sel, 0:1] + l1 / z[sel, 1:2] + l2 / z[sel, 2:3]
            ii, kk = np.nonzero(inside)
            all_pix.append(gy[ii, kk] * W + gx[ii, kk])
            all_z.append(1.0 / iz[ii, kk])
            all_f.append(sel[ii])
            all_b.append(np.stack([l0[ii, kk], l1[ii, kk], l2[ii, kk]], -1))
        if size_b >= ext[visible].max(initial=1):
            break
        size_b *= 2
    tid = -np.ones(H * W, np.int64)
    bary = np.zeros((H * W, 3))
    if all_pix:
        pix, zz, ff, bb = (np.concatenate(x) for x in (all_pix, all_z, all_f, all_b))
        order = np.lexsort((zz, pix))
        pix, ff, bb = pix[order], ff[order], bb[order]
        first = np.ones(len(pix), bool)
        first[1:] = pix[1:] != pix[:-1]
        tid[pix[first]] = ff[first]
        bary[pix[first]] = bb[first]
    return tid.reshape(H, W), bary.reshape(H, W, 3)


def _vertex_normals(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    vn = np.zeros_like(v)
    for k in range(3):
        np.add.at(vn, f[:, k], n)
    return vn / np.maximum(np.linalg.norm(vn, axis=1, keepdims=True), 1e-12)


def shade_views(vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray, cfg: ContactSheetConfig,
                views=VIEWS) -> list[np.ndarray]:
    """Render (V, 3) mm vertices from each yaw in ``views`` with the numpy rasterizer.

    Returns a list of (tile, tile, 3) uint8 images (Lambert shading, key light from the camera's
    upper left plus ambient, white background)."""
    vn = _vertex_normals(vertices, faces)
    out = []
    for yaw in views.values():
        px, dep, eye = look_at_projection(vertices, yaw, cfg.tile, cfg.camera_distance, cfg.fov_deg)
        tid, bary = raster_numpy(px, dep, faces, cfg.tile)
        img = np.ones((cfg.tile, cfg.tile, 3))
        m = tid >= 0
        fid = tid[m]
        b = bary[m]
        fv = faces[fid]
        n = (vn[fv] * b[:, :, None]).sum(1)
        n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
        p = (vertices[fv] * b[:, :, None]).sum(1)
        view = eye - p
        view /= np.linalg.norm(view, axis=1, keepdims=True)
        n = np.where((n * view).sum(1, keepdims=True) < 0, -n, n)  # back faces seen through holes
        yaw = np.deg2rad(list(views.values())[len(out)])
        light = np.array([np.sin(yaw - 0.5), 0.45, np.cos(yaw - 0.5)])
        light /= np.linalg.norm(light)
        diff = np.clip((n * light).sum(1), 0, 1)
        c = (colors[fv] * b[:, :, None]).sum(1)
        img[m] = c * (0.35 + 0.65 * diff[:, None])
        out.append((np.clip(img, 0, 1) * 255).astype(np.uint8))
    return out


def _renderer_views(vertices, faces, colors, cfg: ContactSheetConfig, views=VIEWS):
    """Render with face3d.render.Renderer, one camera per view in a batch (raises ImportError
    when the render package is not available)."""
    import torch
    from face3d.render import Camera, Renderer  # ImportError -> numpy fallback

    target = np.array([0.0, -15.0, 0.0])
    yaws = np.deg2rad(np.array(list(views.values())))
    eyes = target + cfg.camera_distance * np.stack([np.sin(yaws), 0 * yaws, np.cos(yaws)], -1)
    cam = Camera.look_at(torch.tensor(eyes, dtype=torch.float32), torch.tensor(target, dtype=torch.float32),
                         fov_deg=cfg.fov_deg, width=cfg.tile, height=cfg.tile)
    # key light from the camera's upper left, as in the numpy path
    light = np.stack([np.sin(yaws - 0.5), np.full_like(yaws, 0.45), np.cos(yaws - 0.5)], -1)
    light /= np.linalg.norm(light, axis=1, keepdims=True)
    res = Renderer(backend="auto")(
        torch.as_tensor(vertices, dtype=torch.float32)[None], torch.as_tensor(faces), cam,
        vertex_colors=torch.as_tensor(colors, dtype=torch.float32)[None],
        light_dir=torch.tensor(light, dtype=torch.float32))
    rgb = res.rgb.detach().cpu().numpy()
    alpha = res.alpha.detach().cpu().numpy()
    img = rgb * alpha + (1 - alpha)
    return [(np.clip(im, 0, 1) * 255).astype(np.uint8) for im in img]


def model_colors(model) -> np.ndarray:
    """(V, 3) float colours: skin, white eyeballs with a dark iris, dark mouth interior."""
    V = model.n_vertices
    col = np.tile(np.array([0.86, 0.68, 0.58]), (V, 1))
    regions = model.regions
    if "lips" in regions:
        col[regions["lips"].numpy()] = (0.75, 0.45, 0.45)
    if "mouth_interior" in regions:
        col[regions["mouth_interior"].numpy()] = (0.35, 0.12, 0.12)
    for nm in ("eyeball_left", "eyeball_right"):
        if nm in regions:
            ids = regions[nm].numpy()
            v = model.template[ids].numpy()
            c = v.mean(0)
            d = (v - c) / np.linalg.norm(v - c, axis=1, keepdims=True)
            # thresholds a little wider than the anatomical iris (r ~5.9 mm on a 12 mm ball)
            # because colours are interpolated between the ball's coarse vertex rings
            iris = d[:, 2] > 0.845
            pupil = d[:, 2] > 0.965
            cc = np.tile([0.95, 0.95, 0.95], (len(ids), 1))
            cc[iris] = (0.35, 0.25, 0.15)
            cc[pupil] = (0.05, 0.05, 0.05)
            col[ids] = cc
    return col


def make_contact_sheet(model, out_path: str | Path, cfg: ContactSheetConfig = ContactSheetConfig()) -> Path:
    """Render the sheet for ``model`` (a :class:`~face3d.models.MorphableModel`) into ``out_path`` (PNG).

    Rows: mean head; identity component k at -sigma and +sigma (k < cfg.n_identity); each
    expression at weight 1. Each row shows front, three-quarter and side views. Returns the path.
    """
    import torch
    from PIL import Image, ImageDraw

    faces = model.faces.numpy()
    colors = model_colors(model)
    use_renderer = cfg.backend == "auto"

    def render(v):
        nonlocal use_renderer
        if use_renderer:
            try:
                return _renderer_views(v, faces, colors, cfg)
            except (ImportError, AttributeError, NotImplementedError, TypeError):
                use_renderer = False
        return shade_views(v, faces, colors, cfg)

    items = []
    with torch.no_grad():
        items.append(("mean", render(model().vertices[0].numpy())))
        nid = min(cfg.n_identity, model.n_identity)
        id_names = [f"id{k}" for k in range(model.n_identity)]
        if model.name == "builtin":
            from face3d.models.builtin_blendshapes import IDENTITY_NAMES

            if len(IDENTITY_NAMES) == model.n_identity:
                id_names = [f"id{k} {n}" for k, n in enumerate(IDENTITY_NAMES)]
        for k in range(nid):
            for s in (-cfg.sigma, cfg.sigma):
                z = torch.zeros(1, model.n_identity)
                z[0, k] = s * float(model.identity_std[k])
                items.append((f"{id_names[k]} {s:+.0f} sigma", render(model(identity=z).vertices[0].numpy())))
        for i, nm in enumerate(model.expression_names):
            e = torch.zeros(1, model.n_expression)
            e[0, i] = 1.0
            items.append((nm, render(model(expression=e).vertices[0].numpy())))
        jaw = torch.tensor([[0.3, 0.0, 0.0]])
        items.append(("jaw 0.3rad", render(model(jaw=jaw).vertices[0].numpy())))
    t = cfg.tile
    per_row = 4  # items per row, each 3 views wide
    rows = (len(items) + per_row - 1) // per_row
    label_h = 16
    sheet = Image.new("RGB", (per_row * 3 * t, rows * (t + label_h)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (name, views) in enumerate(items):
        r, c = divmod(i, per_row)
        x0, y0 = c * 3 * t, r * (t + label_h)
        for k, im in enumerate(views):
            sheet.paste(Image.fromarray(im), (x0 + k * t, y0 + label_h))
        draw.text((x0 + 4, y0 + 2), name, fill=(0, 0, 0))
        draw.line([(x0, y0), (x0, y0 + t + label_h)], fill=(180, 180, 180))
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out_path)
    return out_path
