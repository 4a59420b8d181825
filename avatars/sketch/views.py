"""Detail drawings from other views (SketchMetaFace's workflow: turn the coarse head, draw detail
strokes over it, and the fine stage moves the mesh towards them).

A front drawing says little about depth: the nose's length, the brow's and the chin's projection
are edge-on. Seen from the side they are the silhouette. A detail view is a yaw angle; its page is
a square picture of the head from that angle, framed like the front drawing
(:func:`.drawing.drawing_camera` is the view at yaw 0). The user draws over
:func:`view_image` (strokes only, on white: the same conventions as the front drawing) and
:func:`add_detail` reads the strokes in the frame of the *coarse* mesh's silhouette in that view,
so a page's frame depends on the front drawing alone, not on the order detail views are added.

Training and benchmark drawings come from :func:`synthetic_detail_inks`: the true head's strokes
on the view's page, read in the coarse mesh's frame.
"""
from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from avatars.sketch import drawing as dr
from avatars.sketch.fine import RefineConfig, render_coarse

MAX_YAW_DEG = 80.0  # beyond this the face is mostly edge-on: too few visible vertices to move
# The mesh update for detail drawings trusts the predicted normals less than the front stage does:
# on 40 validation drawings (heads seed 777, not the benchmark's) two side views gave -10.0 % with
# normal weight 1 against -9.0 % with the front stage's 4 (Laplacian 1.5 / 6: -8.7 / -9.2 %).
DETAIL_REFINE = RefineConfig(normal_weight=1.0)


def _check_yaw(yaw_deg: float) -> float:
    y = float(yaw_deg)
    if not abs(y) <= MAX_YAW_DEG:
        raise ValueError(f"yaw_deg: expected a view within ±{MAX_YAW_DEG:.0f}° of the front, got {yaw_deg}")
    return y


def view_camera(model, yaw_deg, size: int = dr.RENDER_SIZE):
    """The page camera(s) of detail views at ``yaw_deg`` (float or (N,) degrees; positive turns
    the camera towards the subject's left), ``size`` pixels square."""
    from face3d.viz import PreviewConfig, head_framing, orbit_cameras

    c, r = head_framing(model, fill=0.85)  # as drawing_camera frames the front drawing
    return orbit_cameras(c, r, torch.as_tensor(yaw_deg, dtype=torch.float32).reshape(-1), PreviewConfig(size=size))


def view_frame(model, frame_vertices: Tensor, yaw_deg: float, size: int = dr.RENDER_SIZE):
    """Where a ``size`` px page of the view at ``yaw_deg`` is read: ``(crop, camera)``, the
    square around ``frame_vertices``' (V, 3) mm silhouette and the batch-1 camera of the
    network input cut there (as :func:`.drawing.read_drawing` cuts a drawing round its ink)."""
    from face3d.render.primitives import rasterize

    cam = view_camera(model, _check_yaw(yaw_deg), size)
    faces = dr.drawing_faces(model)
    with torch.no_grad():
        rast, _ = rasterize(cam.to_clip(frame_vertices[None].float()), faces.to(torch.int32), (size, size))
    sil = dr._edges((rast[0, ..., 3] > 0)[None])[0]
    if not bool(sil.any()):
        raise ValueError(f"the mesh is not in view at yaw {yaw_deg}°")
    crop = dr.square_crop(sil)
    return crop, dr.crop_camera(cam, crop)


def view_image(modeler, result, yaw_deg: float, size: int = 512):
    """(size, size, 3) uint8: ``result``'s mesh shaded, seen from the detail view at ``yaw_deg``
    on a page of ``size`` pixels: the picture to draw detail strokes over."""
    from face3d.viz import PreviewConfig, head_framing, render_preview

    c, r = head_framing(modeler.model, fill=0.85)
    return render_preview(result.vertices, modeler.faces, yaw_deg=(_check_yaw(yaw_deg),), cfg=PreviewConfig(size=size),
                          center=c, radius=r)[0]


def add_detail(modeler, result, image, yaw_deg: float, editable: Tensor | None = None):
    """Move ``result``'s mesh towards a detail drawing made over the view at ``yaw_deg``.

    Args:
        modeler: the :class:`.api.SketchModeler` that made ``result``.
        result: a :class:`.api.SketchResult` (its coarse mesh fixes the page's frame).
        image: the strokes drawn over :func:`view_image` (a square picture of any size: path, PIL
            image, array or tensor, as :func:`.drawing.read_drawing` takes), or an already read
            (3, 128, 128) ink tensor in that frame.
        yaw_deg: the view the strokes were drawn in (degrees, within ±80).
        editable: (V,) bool vertices allowed to move (default the model's face region); every
            other vertex is returned bit-for-bit unchanged.
    Returns:
        a new :class:`.api.SketchResult` with the moved ``vertices`` (the front drawing's ink,
        crop and render are kept: front local edits still apply).
    Raises:
        SketchInputError: a blank page, a photo, not an image. ValueError: a page that is not
        square, a view beyond ±80°.
    """
    yaw = _check_yaw(yaw_deg)
    if isinstance(image, Tensor) and image.shape == (3, dr.SIZE, dr.SIZE):
        ink = image
        _, cam = view_frame(modeler.model, result.coarse_vertices, yaw)
    else:
        x = dr._to_rgb(image)
        if x.shape[0] != x.shape[1]:
            raise ValueError(f"a detail drawing is drawn over the square view picture (view_image): expected a square page, "
                             f"got {x.shape[1]}x{x.shape[0]} pixels")
        crop, cam = view_frame(modeler.model, result.coarse_vertices, yaw, size=x.shape[0])
        ink, _ = dr.read_drawing(image, crop=crop)
    mask = modeler.editable if editable is None else editable
    render = render_coarse(result.vertices, modeler.faces, cam)
    out = modeler.fine_step(ink, result.vertices, render, mask, DETAIL_REFINE)
    return replace(result, vertices=out)


def synthetic_detail_inks(model, true_vertices: Tensor, frame_vertices: Tensor, yaw_deg: Tensor,
                          gen: torch.Generator, style: dr.StyleConfig = dr.StyleConfig(), batch: int = 16):
    """Detail drawings of (N, V, 3) true heads at views ``yaw_deg`` (N,), each read in the frame
    of its (N, V, 3) ``frame_vertices`` (the coarse meshes). Returns ``(ink (N, 3, 128, 128)
    float, cameras)``: the network inputs and their batch-1 cameras."""
    faces = dr.drawing_faces(model)
    labels = dr.model_labels(model)
    inks, cams = [], []
    for s in range(0, true_vertices.shape[0], batch):
        tv = true_vertices[s:s + batch].float()
        yaws = yaw_deg[s:s + batch]
        layers = dr.stroke_layers(tv, faces, view_camera(model, yaws), labels=labels,
                                  curvature=dr.mean_curvature(tv, model.faces))
        img = dr.stylize(layers, gen, style)
        for j in range(tv.shape[0]):
            crop, cam = view_frame(model, frame_vertices[s + j], float(yaws[j]))
            ink, _ = dr.read_drawing(img[j], crop=crop)
            inks.append(ink)
            cams.append(cam)
    return torch.stack(inks), cams


def add_synthetic_details(modeler, result, true_vertices: Tensor, yaws, gen: torch.Generator, times: list | None = None):
    """Draw the (V, 3) true head from each view in ``yaws`` (degrees) over ``result``'s mesh
    (:func:`synthetic_detail_inks`, framed by its coarse mesh) and add the drawings in order.
    Returns ``(result with the details, inks (len(yaws), 3, 128, 128))``; ``times`` gets the
    seconds of each :func:`add_detail` appended."""
    import time

    yaw = torch.as_tensor(yaws, dtype=torch.float32).reshape(-1)
    n = len(yaw)
    inks, _ = synthetic_detail_inks(modeler.model, true_vertices[None].expand(n, -1, -1),
                                    result.coarse_vertices[None].expand(n, -1, -1), yaw, gen)
    for y, ink in zip(yaw.tolist(), inks):
        t0 = time.perf_counter()
        result = add_detail(modeler, result, ink, y)
        if times is not None:
            times.append(time.perf_counter() - t0)
    return result, inks
