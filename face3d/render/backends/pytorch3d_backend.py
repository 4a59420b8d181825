"""Rasterization through ``pytorch3d.renderer.mesh.rasterize_meshes``, imported lazily.

pytorch3d is not installable from PyPI under its own name; ``easypytorch3d==0.7.9.post1``
works with ``torch==2.11.0``. Only :func:`rasterize` is provided: interpolation, texturing and
antialiasing run on any ``rast`` with the torch backend.

Convention conversion: pytorch3d's NDC has +X left and +Y up, row 0 of its images at +Y and
column 0 at +X, and for non-square images the shorter side spans [-1, 1]. Our row 0 is
``y_ndc = -1`` and column 0 is ``x_ndc = -1``, so ``x_p3d = -x_ndc * W / S`` and
``y_p3d = -y_ndc * H / S`` with ``S = min(H, W)``; pixel centres then coincide. The vertex
``z`` given to pytorch3d is the clip-space ``w`` (view depth), which is what its
perspective-correct barycentrics and z-buffer need.
"""
from __future__ import annotations

import torch
from torch import Tensor


def _p3d():
    try:
        from pytorch3d.renderer.mesh.rasterize_meshes import rasterize_meshes
        from pytorch3d.structures import Meshes
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise ImportError(
            "backend='pytorch3d' needs pytorch3d (e.g. pip install easypytorch3d==0.7.9.post1 with "
            "torch==2.11.0); use backend='torch' otherwise"
        ) from exc
    return rasterize_meshes, Meshes


def rasterize(pos: Tensor, tri: Tensor, resolution: tuple[int, int], bin_size: int | None = 0):
    """pytorch3d backend of :func:`face3d.render.rasterize`.

    Triangles with any vertex at ``w <= 0`` are discarded (pytorch3d does not clip in
    homogeneous space); near/far clipping is per pixel as in the torch backend.
    ``bin_size=0`` selects pytorch3d's naive rasterizer, which never overflows.
    """
    rasterize_meshes, Meshes = _p3d()
    H, W = resolution
    B, V, _ = pos.shape
    S = min(H, W)
    w = pos[..., 3]
    good_w = (w > 0)
    wsafe = torch.where(good_w, w, torch.ones_like(w))
    x = -pos[..., 0] / wsafe * (W / S)
    y = -pos[..., 1] / wsafe * (H / S)
    verts = torch.stack((x, y, wsafe), -1)
    tri64 = tri.long()
    bad = ~good_w[:, tri64].all(-1)  # (B, F)
    faces = tri64[None].expand(B, -1, -1).clone()
    # Degenerate faces (all one vertex) draw nothing: that is how invalid faces are dropped.
    faces[bad] = tri64[0, 0] if tri64.numel() else 0
    meshes = Meshes(verts=list(verts.unbind(0)), faces=list(faces.unbind(0)))
    pix_to_face, zbuf, bary, _ = rasterize_meshes(
        meshes, image_size=(H, W), blur_radius=0.0, faces_per_pixel=1,
        perspective_correct=True, bin_size=bin_size, cull_backfaces=False,
    )
    F = tri.shape[0]
    p2f = pix_to_face[..., 0]
    covered = p2f >= 0
    f = torch.where(covered, p2f - torch.arange(B, device=pos.device)[:, None, None] * F, torch.zeros_like(p2f))
    bc = bary[..., 0, :]  # (B, H, W, 3)
    # z/w from the barycentrics: sum b_i z_i / sum b_i w_i over the clip-space vertices.
    vz = pos[..., 2][torch.arange(B, device=pos.device)[:, None, None, None], tri64[f]]
    vw = pos[..., 3][torch.arange(B, device=pos.device)[:, None, None, None], tri64[f]]
    zw = (bc * vz).sum(-1) / (bc * vw).sum(-1)
    keep = covered & (zw >= -1) & (zw <= 1)
    m = keep[..., None].to(pos.dtype)
    rast = torch.cat((bc[..., 0:1], bc[..., 1:2], zw[..., None], (f + 1)[..., None].to(pos.dtype)), -1) * m
    # pytorch3d rows run top (+Y_p3d) to bottom; with y_p3d = -y_ndc that is y_ndc = -1 first,
    # which is already our row order, and likewise for columns.
    return rast, None
