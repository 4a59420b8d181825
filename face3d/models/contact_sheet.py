"""A labelled contact sheet of a morphable model: mean head, identity extremes, expressions.

``make_contact_sheet(model, out_path)`` renders the mean head from the front, the side and three
quarters, then +-3 sigma along the first identity components and every expression at full
weight, into one PNG, rendered through :class:`face3d.render.Renderer`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

__all__ = ["ContactSheetConfig", "make_contact_sheet", "model_colors"]


@dataclass(frozen=True)
class ContactSheetConfig:
    """Layout of the sheet. ``tile`` is the side of one rendered view in pixels."""

    tile: int = 200
    n_identity: int = 6
    sigma: float = 3.0
    fov_deg: float = 30.0
    fill: float = 0.62  # the head's largest extent (without the neck) as a fraction of the tile
    backend: Literal["auto", "torch", "nvdiffrast", "pytorch3d"] = "auto"  # face3d.render backend


VIEWS = {"front": 0.0, "3/4": 40.0, "side": 90.0}


def _renderer_views(vertices, faces, colors, cfg: ContactSheetConfig, center, radius: float, views=VIEWS):
    """(V, 3) mm vertices -> one (tile, tile, 3) uint8 image per view: cameras orbiting
    ``center`` framing ``radius`` (:func:`face3d.viz.head_framing`), key light from each
    camera's upper left (:func:`face3d.viz.render_preview`)."""
    from face3d.viz import PreviewConfig, render_preview

    pcfg = PreviewConfig(size=cfg.tile, fov_deg=cfg.fov_deg, margin=1.0,
                         light_dir=(-math.sin(0.5), 0.45, math.cos(0.5)))
    imgs = render_preview(vertices, faces, list(views.values()), pcfg, center=center,
                          radius=radius, vertex_colors=colors, backend=cfg.backend)
    return list(imgs)


def model_colors(model) -> np.ndarray:
    """(V, 3) float colours: the model's own ``albedo`` when it has one, else skin, white
    eyeballs with a dark iris and a dark mouth interior painted from its regions."""
    if model.albedo is not None:
        return model.albedo.numpy().astype(np.float64)
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
    from face3d.viz import head_framing

    center, radius = head_framing(model, fill=cfg.fill)

    def render(v):
        return _renderer_views(v, faces, colors, cfg, center, radius)

    items = []
    with torch.no_grad():
        items.append(("mean", render(model().vertices[0].numpy())))
        nid = min(cfg.n_identity, model.n_identity)
        id_names = [f"id{k}" for k in range(model.n_identity)]
        if model.name == "character":
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
    from face3d.viz import save_png

    save_png(out_path, np.asarray(sheet))
    return Path(out_path)
