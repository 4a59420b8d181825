"""Local editing: re-draw the strokes in one region and only that region of the mesh moves.

The edit re-reads the new drawing where the first one was read (same crop, so the frames match),
maps the image-space region onto the mesh (vertices of the editable face region that project
into it) and runs the fine stage's mesh update with every other vertex held fixed: those are
returned bit-for-bit unchanged.
"""
from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import Tensor

from avatars.sketch import drawing as dr
from avatars.sketch.fine import render_coarse


def region_vertices(camera, vertices: Tensor, region: Tensor, allowed: Tensor) -> Tensor:
    """(V,) bool: vertices in ``allowed`` whose projection falls inside ``region`` (H, W) bool of
    the network input (both sides of the head: hidden vertices under the region move too)."""
    uv = camera.project(vertices[None].float())[0].round().long()
    H, W = region.shape
    inside = (uv[:, 0] >= 0) & (uv[:, 0] < W) & (uv[:, 1] >= 0) & (uv[:, 1] < H)
    hit = torch.zeros_like(inside)
    hit[inside] = region[uv[inside, 1], uv[inside, 0]]
    return hit & allowed


def changed_region(old_ink: Tensor, new_ink: Tensor, grow_px: int = 4) -> Tensor:
    """(3, H, W) ink before and after -> (H, W) bool where strokes changed, grown by ``grow_px``."""
    d = ((old_ink - new_ink).abs().amax(0) > 0.25).float()[None, None]
    return F.max_pool2d(d, 2 * grow_px + 1, 1, grow_px)[0, 0] > 0


def edit_region(modeler, previous, image, region: Tensor | None = None):
    """Apply a re-drawn region to a previous :class:`.api.SketchResult`.

    Args:
        modeler: the :class:`.api.SketchModeler` that made ``previous``.
        previous: the result to edit.
        image: the whole new drawing (any picture :func:`.drawing.read_drawing` takes, or an
            already read (3, 128, 128) ink tensor).
        region: (128, 128) bool, the edited area in network-input pixels; default where the
            strokes changed (:func:`changed_region`).
    Returns:
        a new :class:`.api.SketchResult`; vertices outside the region's mask are exactly the
        previous ones.
    """
    if isinstance(image, Tensor) and image.shape == (3, dr.SIZE, dr.SIZE):
        ink = image
    else:
        ink, _ = dr.read_drawing(image, crop=previous.crop)
    if region is None:
        region = changed_region(previous.ink, ink)
    if region.shape != (dr.SIZE, dr.SIZE) or region.dtype != torch.bool:
        raise ValueError(f"region: expected a ({dr.SIZE}, {dr.SIZE}) bool mask, got {tuple(region.shape)} {region.dtype}")
    cam = previous.render.camera
    mask = region_vertices(cam, previous.vertices, region, modeler.editable)
    render = render_coarse(previous.vertices, modeler.faces, cam)
    # Predict against the current mesh, so the unchanged rest of the drawing asks for no change.
    out = modeler.fine_step(ink, previous.vertices, render, mask)
    out[~mask] = previous.vertices[~mask]
    return replace(previous, vertices=out, ink=ink, render=render)
