"""Image-space alignment of a mesh to drawn strokes (part of the fine stage; nothing learned).

The coarse mesh's own stroke lines (silhouette, occluding contours, creases and part borders,
rendered by :func:`.drawing.stroke_layers` in the fine stage's camera, i.e. the drawing's frame)
are matched to the drawing's black ink, ICP-like:

1. the visible vertices lying on the mesh's lines (projection within ``on_line_px`` of a line
   pixel) get the 2-D offset from that line pixel to the nearest pixel of the ink's skeleton
   (a distance transform with indices); offsets longer than ``max_match_px`` are ignored, the
   rest weighted ``1 / (1 + (d / robust_px)²)``;
2. the editable vertices move in the image plane (camera x/y, depth kept) in one sparse
   least-squares solve: ``Σ w_i |Δ_i - t_i|² + λ |L Δ|² + μ |Δ|²`` (``L`` the uniform
   Laplacian of :func:`.fine.uniform_laplacian`, ``Δ = 0`` fixed outside the editable mask,
   which keeps local editing exact);
3. repeat ``iterations`` times, re-rendering the lines of the moved mesh.

Topology, vertex order and UVs are kept.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class AlignConfig:
    """Stroke alignment settings (pixels of the (128, 128) network input)."""

    iterations: int = 3
    max_match_px: float = 4.0  # line vertices farther than this from any ink are not matched
    robust_px: float = 2.0  # weight 1 / (1 + (d / robust_px)^2)
    on_line_px: float = 0.75  # a vertex projecting this close to a mesh line pixel is on the line
    ink_threshold: float = 0.3
    laplacian_weight: float = 1.0
    damping: float = 0.01
    layers: tuple[str, ...] = ("silhouette", "contour", "feature")


def ink_skeleton(ink: Tensor, threshold: float = 0.3) -> np.ndarray:
    """(3, H, W) ink in [0, 1] -> (H, W) bool, the 1-pixel skeleton of the black strokes (a thick
    stroke's nearest pixel would otherwise be its near edge, not its middle)."""
    from skimage.morphology import skeletonize

    return skeletonize(ink[0].numpy() > threshold)


def line_targets(vertices: Tensor, faces: Tensor, camera, ink_skel: np.ndarray, labels: Tensor | None,
                 cfg: AlignConfig = AlignConfig()) -> tuple[Tensor, Tensor, Tensor]:
    """The image-space targets of one alignment round.

    Args:
        vertices: (V, 3) float mm. faces: (F, 3) int (the drawn triangles). camera: batch 1, the
            drawing's frame. ink_skel: (H, W) bool (:func:`ink_skeleton`). labels: (V,) int part
            labels (:func:`.drawing.model_labels`) or None.
    Returns:
        ``(index (K,) int64, offset (K, 2) float64 pixels (x, y), weight (K,) float64)`` for the
        matched line vertices.
    """
    from scipy.ndimage import distance_transform_edt

    from avatars.sketch import drawing as dr

    lay = dr.stroke_layers(vertices[None].float(), faces, camera, labels=labels)
    line = np.zeros(ink_skel.shape, dtype=bool)
    for k in cfg.layers:
        line |= lay[k][0].numpy()
    empty = (np.empty(0, dtype=np.int64), np.empty((0, 2)), np.empty(0))
    if not line.any() or not ink_skel.any():
        return tuple(torch.from_numpy(x) for x in empty)
    H, W = line.shape
    # Nearest ink (skeleton) pixel of every pixel, and nearest mesh-line pixel of every pixel.
    d_ink, (iy, ix) = distance_transform_edt(~ink_skel, return_indices=True)
    d_line, (ly, lx) = distance_transform_edt(~line, return_indices=True)
    v = vertices.detach().to(torch.float32)
    uv = camera.project(v[None])[0].numpy().astype(np.float64)
    pc = camera.to_camera(v[None])[0].numpy()
    px = np.rint(uv).astype(np.int64)
    inside = (px[:, 0] >= 0) & (px[:, 0] < W) & (px[:, 1] >= 0) & (px[:, 1] < H)
    pxc = np.clip(px, 0, [W - 1, H - 1])
    # Visible: not behind the rendered surface near its pixel (3x3 minimum depth, background =
    # infinitely far, so silhouette vertices pass).
    depth = torch.where(lay["mask"][0], lay["depth"][0], torch.full_like(lay["depth"][0], 1e9))
    zmin = -torch.nn.functional.max_pool2d(-depth[None, None], 3, 1, 1)[0, 0].numpy()
    visible = inside & (pc[:, 2] <= zmin[pxc[:, 1], pxc[:, 0]] + 2.0)
    # On a line: the nearest line pixel of the vertex's pixel, measured from the exact projection.
    qy, qx = ly[pxc[:, 1], pxc[:, 0]], lx[pxc[:, 1], pxc[:, 0]]
    on = visible & (np.hypot(qx - uv[:, 0], qy - uv[:, 1]) <= cfg.on_line_px + 0.5)
    ty, tx = iy[qy, qx], ix[qy, qx]
    off = np.stack((tx - qx, ty - qy), -1).astype(np.float64)
    dist = d_ink[qy, qx]
    ok = on & (dist <= cfg.max_match_px)
    idx = np.nonzero(ok)[0]
    w = 1.0 / (1.0 + (dist[idx] / cfg.robust_px) ** 2)
    return torch.from_numpy(idx), torch.from_numpy(off[idx]), torch.from_numpy(w)


def align_to_strokes(vertices: Tensor, faces: Tensor, camera, ink: Tensor, editable: Tensor,
                     labels: Tensor | None = None, cfg: AlignConfig = AlignConfig()) -> Tensor:
    """Move the ``editable`` vertices in the image plane so the mesh's stroke lines meet the ink.

    Args:
        vertices: (V, 3) float mm. faces: (F, 3) int (the drawn triangles).
        camera: batch-1 camera of the drawing's frame (the fine stage's ``render.camera``).
        ink: (3, H, W) float in [0, 1], the drawing as read by :func:`.drawing.read_drawing`.
        editable: (V,) bool; every other vertex is returned bit-for-bit unchanged.
        labels: optional (V,) int part labels (feature lines between parts).
    Returns:
        (V, 3) mm, same dtype as ``vertices``.
    """
    import scipy.sparse as sp
    from scipy.sparse.linalg import splu

    from avatars.sketch.fine import uniform_laplacian, unique_edges

    V = vertices.shape[0]
    if editable.shape != (V,) or editable.dtype != torch.bool:
        raise ValueError(f"editable: expected a ({V},) bool mask, got {tuple(editable.shape)} {editable.dtype}")
    if ink.dim() != 3 or ink.shape[0] != 3 or tuple(ink.shape[1:]) != (camera.height, camera.width):
        raise ValueError(f"ink: expected shape (3, {camera.height}, {camera.width}) (the camera's image), got {tuple(ink.shape)}")
    out = vertices.clone()
    if not bool(editable.any()) or cfg.iterations <= 0:
        return out
    skel = ink_skeleton(ink, cfg.ink_threshold)
    N = int(editable.sum())
    unk = torch.full((V,), -1, dtype=torch.int64)
    unk[editable] = torch.arange(N)
    L = uniform_laplacian(unique_edges(faces), editable)
    R = camera.R[0].to(torch.float64)
    fx, fy = float(camera.K[0, 0, 0]), float(camera.K[0, 1, 1])
    LtL = cfg.laplacian_weight * (L.T @ L) + cfg.damping * sp.identity(N)
    for _ in range(cfg.iterations):
        idx, off, w = line_targets(out, faces, camera, skel, labels, cfg)
        sel = editable[idx]
        idx, off, w = idx[sel], off[sel], w[sel]
        if len(idx) == 0:
            break
        pc = camera.to_camera(out[None].to(camera.K.dtype))[0].to(torch.float64)
        # Pixels -> camera mm at the vertex's own depth (x = fx X / Z).
        t = torch.stack((off[:, 0] * pc[idx, 2] / fx, off[:, 1] * pc[idx, 2] / fy), -1)
        Wd = sp.csr_matrix((w.numpy(), (unk[idx].numpy(), unk[idx].numpy())), shape=(N, N))
        rhs = np.zeros((N, 2))
        np.add.at(rhs, unk[idx].numpy(), (w[:, None] * t).numpy())
        d2 = splu((Wd + LtL).tocsc()).solve(rhs)
        dcam = torch.zeros(N, 3, dtype=torch.float64)
        dcam[:, :2] = torch.from_numpy(d2)
        out[editable] = out[editable] + (dcam @ R).to(out.dtype)  # camera -> world: R^T d
    return out
