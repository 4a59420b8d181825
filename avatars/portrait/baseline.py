"""The baseline a user has without a portrait: the tracked 3DMM with a texture from the video.

Per-vertex colours are the visibility- and angle-weighted mean of the training frames' pixels
where each vertex projects (a vertex counts in a frame when the rasterized depth there is its
own, it faces the camera and the pixel is foreground). Vertices never seen keep the model's
albedo (or the mean colour). The render is unlit (the light baked into the colours is the
clip's average) and composited over the same fixed background the portrait uses.
"""
from __future__ import annotations

import numpy as np
import torch

from avatars.portrait.data import PortraitData


def _posed(model, data: PortraitData, ids) -> torch.Tensor:
    with torch.no_grad():
        return model(identity=torch.tensor(data.identity, dtype=torch.float32)[None].expand(len(ids), -1),
                     expression=torch.tensor(data.expression[ids], dtype=torch.float32),
                     jaw=torch.tensor(data.jaw[ids], dtype=torch.float32),
                     rotation=torch.tensor(data.rotation[ids], dtype=torch.float32),
                     translation=torch.tensor(data.translation[ids], dtype=torch.float32)).vertices.float()


def texture_from_frames(model, data: PortraitData, frames=None, depth_tol_mm: float = 2.0) -> torch.Tensor:
    """(V, 3) float colours in [0, 1] baked from ``frames`` (default: the training frames)."""
    from face3d.geometry.normals import vertex_normals
    from face3d.render import Renderer

    ids = list(range(data.n_train) if frames is None else frames)
    cam = data.camera()
    r = Renderer(backend="torch")
    V = model.n_vertices
    acc = torch.zeros(V, 3, dtype=torch.float64)
    wsum = torch.zeros(V, dtype=torch.float64)
    S = data.size
    for a in range(0, len(ids), 16):
        sub = ids[a:a + 16]
        v = _posed(model, data, sub)
        with torch.no_grad():
            out = r(v, model.faces, cam, antialias=False)
            n = vertex_normals(v, model.faces)
        uv = cam.project(v)  # (B, V, 2)
        z = cam.to_camera(v)[..., 2]
        view = torch.nn.functional.normalize(-v, dim=-1)  # towards the camera at the origin
        facing = (n * view).sum(-1).clamp_min(0)
        px = uv.round().long()
        inside = (px[..., 0] >= 0) & (px[..., 0] < S) & (px[..., 1] >= 0) & (px[..., 1] < S)
        pxc = px.clamp(0, S - 1)
        for j, i in enumerate(sub):
            d = out.depth[j][pxc[j, :, 1], pxc[j, :, 0]]
            m = torch.from_numpy(data.masks[i])[pxc[j, :, 1], pxc[j, :, 0]]
            vis = inside[j] & (out.alpha[j, ..., 0][pxc[j, :, 1], pxc[j, :, 0]] > 0) & ((d - z[j]).abs() < depth_tol_mm)
            w = facing[j] ** 2 * vis * m
            col = torch.from_numpy(data.frames[i].astype(np.float32) / 255)[pxc[j, :, 1], pxc[j, :, 0]]
            acc += (w[:, None] * col).double()
            wsum += w.double()
    seen = wsum > 1e-6
    base = model.albedo.float() if getattr(model, "albedo", None) is not None else None
    mean = (acc[seen].sum(0) / wsum[seen].sum()).float() if bool(seen.any()) else torch.full((3,), 0.7)
    out_c = base.clone() if base is not None else mean.expand(V, 3).clone()
    out_c[seen] = (acc[seen] / wsum[seen, None]).float()
    return out_c.clamp(0, 1)


def render_baseline(model, data: PortraitData, colors: torch.Tensor, i: int, background: torch.Tensor,
                    size: int | None = None) -> torch.Tensor:
    """(S, S, 3) render of frame ``i``'s tracked mesh with ``colors`` over ``background``."""
    from face3d.render import Renderer

    S = size or data.size
    cam = data.camera(S)
    v = _posed(model, data, [i])
    with torch.no_grad():
        out = Renderer(backend="torch")(v, model.faces, cam, vertex_colors=colors)
    bg = background
    if bg.shape[:2] != (S, S):
        bg = torch.nn.functional.interpolate(bg.permute(2, 0, 1)[None], size=(S, S), mode="bilinear",
                                             align_corners=False)[0].permute(1, 2, 0)
    return (out.rgb[0] + (1 - out.alpha[0]) * bg).clamp(0, 1)
