"""The camera convention of the reconstruction code.

The camera sits at the world origin and looks down world -z (the head, in the model's frame, faces
+z, so a head at translation (0, 0, -d) looks straight at it). World +y is up; image y is down.
The world->camera rotation is therefore ``diag(1, -1, -1)`` (OpenCV camera axes) and the head's
pose lives entirely in the model's ``rotation``/``translation``; only the focal length and the
principal point belong to the camera. Pixels follow OpenCV: the centre of the top-left pixel is
(0, 0).
"""
from __future__ import annotations

import torch
from torch import Tensor

WORLD_TO_CAMERA = torch.diag(torch.tensor([1.0, -1.0, -1.0]))


def make_camera(focal: Tensor, width: int, height: int, cx: Tensor | None = None, cy: Tensor | None = None):
    """A :class:`face3d.render.Camera` for ``B`` images of one size.

    Args:
        focal: (B,) focal length in pixels (may require grad).
        width, height: image size in pixels.
        cx, cy: (B,) principal point in pixels; default the image centre ``((W-1)/2, (H-1)/2)``.

    Returns:
        ``face3d.render.Camera`` with ``K`` (B, 3, 3), ``R`` = :data:`WORLD_TO_CAMERA`, ``t`` = 0.
    """
    from face3d.render import Camera

    focal = focal.reshape(-1)
    B = focal.shape[0]
    dt, dev = focal.dtype, focal.device
    cx = torch.full((B,), (width - 1) / 2, dtype=dt, device=dev) if cx is None else cx.reshape(-1).to(dt)
    cy = torch.full((B,), (height - 1) / 2, dtype=dt, device=dev) if cy is None else cy.reshape(-1).to(dt)
    zero, one = torch.zeros_like(focal), torch.ones_like(focal)
    K = torch.stack([focal, zero, cx, zero, focal, cy, zero, zero, one], -1).reshape(B, 3, 3)
    R = WORLD_TO_CAMERA.to(dt).to(dev).expand(B, 3, 3)
    t = torch.zeros(B, 3, dtype=dt, device=dev)
    return Camera(K=K, R=R, t=t, width=int(width), height=int(height), near=10.0, far=5000.0, orthographic=False)


def project(points: Tensor, focal: Tensor, width: int, height: int) -> Tensor:
    """(B, N, 3) world points (mm) -> (B, N, 2) pixels through :func:`make_camera`."""
    return make_camera(focal, width, height).project(points)

