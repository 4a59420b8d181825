"""Pinhole and orthographic cameras with OpenCV conventions, and their clip-space mapping.

World coordinates are millimetres. The camera frame is OpenCV's: x right, y down, z forward;
``X_cam = R @ X_world + t``. Pixel coordinates are OpenCV's: the centre of the top-left pixel is
``(0, 0)``, x right, y down. :meth:`Camera.to_clip` maps pixel ``(x, y)`` to NDC
``((2x + 1)/W - 1, (2y + 1)/H - 1)`` -- exactly the pixel-centre convention of
:func:`face3d.render.rasterize` -- so rasterized images have row 0 at the top and pixel
``(row i, col j)`` centred at OpenCV ``(x=j, y=i)``. Depth maps to ``z/w in [-1, 1]`` between
``near`` and ``far`` (OpenGL style), so the rasterizer's per-pixel near/far test clips there.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import Tensor


def _as_batch(x, name: str, shape: tuple[int, ...], dtype=torch.float32, device=None) -> Tensor:
    t = torch.as_tensor(x, dtype=dtype, device=device)
    if t.shape == shape:
        t = t[None]
    if t.shape[1:] != shape:
        raise ValueError(f"{name}: expected shape {shape} or (B, {', '.join(map(str, shape))}), got {tuple(t.shape)}")
    return t


def scale_intrinsics(K, sx: float, sy: float):
    """Intrinsics (..., 3, 3) (tensor or numpy) of the same view resampled to ``sx`` x ``sy`` times
    the pixels, in the pixel-centre convention: ``u' = (u + 0.5) * sx - 0.5``."""
    K = K.clone() if isinstance(K, Tensor) else K.copy()
    K[..., 0, 0] *= sx
    K[..., 0, 1] *= sx
    K[..., 1, 1] *= sy
    K[..., 0, 2] = (K[..., 0, 2] + 0.5) * sx - 0.5
    K[..., 1, 2] = (K[..., 1, 2] + 0.5) * sy - 0.5
    return K


@dataclass(frozen=True)
class Camera:
    """A batch of cameras sharing one image size.

    Attributes:
        K: (B, 3, 3) float OpenCV intrinsics in pixels (for orthographic cameras ``fx, fy`` are
            pixels per millimetre).
        R: (B, 3, 3) world-to-camera rotation.
        t: (B, 3) world-to-camera translation, mm.
        width, height: image size in pixels.
        near, far: clipping distances along the camera z axis, mm (orthographic: z range).
        orthographic: parallel projection ``x = fx * X + cx`` instead of ``fx * X / Z + cx``.
    """

    K: Tensor
    R: Tensor
    t: Tensor
    width: int
    height: int
    near: float = 10.0
    far: float = 10000.0
    orthographic: bool = False

    def __post_init__(self):
        B = self.K.shape[0]
        if self.K.dim() != 3 or self.K.shape[1:] != (3, 3):
            raise ValueError(f"K: expected shape (B, 3, 3), got {tuple(self.K.shape)}")
        if self.R.shape != (B, 3, 3):
            raise ValueError(f"R: expected shape ({B}, 3, 3) like K, got {tuple(self.R.shape)}")
        if self.t.shape != (B, 3):
            raise ValueError(f"t: expected shape ({B}, 3) like K, got {tuple(self.t.shape)}")
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise ValueError(f"width, height: expected positive image size, got ({self.width}, {self.height})")
        if not (0 < self.near < self.far) and not self.orthographic:
            raise ValueError(f"near, far: expected 0 < near < far mm, got near={self.near}, far={self.far}")
        if self.orthographic and not self.near < self.far:
            raise ValueError(f"near, far: expected near < far mm, got near={self.near}, far={self.far}")

    # ------------------------------------------------------------------ constructors

    @classmethod
    def from_intrinsics(cls, fx, fy, cx, cy, width: int, height: int, R=None, t=None,
                        near: float = 10.0, far: float = 10000.0, orthographic: bool = False) -> "Camera":
        """Cameras from OpenCV intrinsics.

        Args:
            fx, fy, cx, cy: floats or (B,) tensors, pixels (orthographic: fx, fy in px/mm).
            width, height: image size, pixels.
            R: (3, 3) or (B, 3, 3) world-to-camera rotation; identity if None.
            t: (3,) or (B, 3) translation in mm; zero if None.
        """
        ref = next((v for v in (fx, fy, cx, cy, R, t) if isinstance(v, Tensor)), None)
        dev = ref.device if ref is not None else None
        dt = ref.dtype if ref is not None and ref.is_floating_point() else torch.float32
        vals = [torch.as_tensor(v, dtype=dt, device=dev).reshape(-1) for v in (fx, fy, cx, cy)]
        B = max(v.numel() for v in vals)
        if R is not None:
            R = _as_batch(R, "R", (3, 3), dt, dev)
            B = max(B, R.shape[0])
        if t is not None:
            t = _as_batch(t, "t", (3,), dt, dev)
            B = max(B, t.shape[0])
        fx, fy, cx, cy = (v.expand(B) if v.numel() == 1 else v for v in vals)
        if any(v.numel() != B for v in (fx, fy, cx, cy)):
            raise ValueError(f"fx, fy, cx, cy: expected scalars or ({B},) tensors")
        K = torch.zeros(B, 3, 3, dtype=dt, device=dev)
        K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2], K[:, 2, 2] = fx, fy, cx, cy, 1.0
        R = torch.eye(3, dtype=dt, device=dev).expand(B, 3, 3).clone() if R is None else R.expand(B, 3, 3)
        t = torch.zeros(B, 3, dtype=dt, device=dev) if t is None else t.expand(B, 3)
        return cls(K, R, t, int(width), int(height), near, far, orthographic)

    @staticmethod
    def _look_at_rt(eye, target, up, dtype=torch.float32):
        ref = next((v for v in (eye, target) if isinstance(v, Tensor)), None)
        dev = ref.device if ref is not None else None
        eye = _as_batch(eye, "eye", (3,), dtype, dev)
        target = _as_batch(target, "target", (3,), dtype, dev).expand_as(eye)
        up = _as_batch(up, "up", (3,), dtype, dev).expand_as(eye)
        d = target - eye
        if bool((d.norm(dim=-1) == 0).any()):
            raise ValueError("eye, target: expected distinct points, got eye == target")
        z = torch.nn.functional.normalize(d, dim=-1)
        side = torch.linalg.cross(-up, z, dim=-1)
        if bool((side.norm(dim=-1) < 1e-9 * up.norm(dim=-1)).any()):
            raise ValueError("up: expected a direction not parallel to the line of sight (eye -> target)")
        x = torch.nn.functional.normalize(side, dim=-1)
        y = torch.linalg.cross(z, x, dim=-1)
        R = torch.stack((x, y, z), dim=-2)
        t = -(R @ eye[..., None])[..., 0]
        return R, t

    @classmethod
    def look_at(cls, eye, target=(0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0), fov_deg: float = 20.0,
                width: int = 256, height: int = 256, near: float = 10.0, far: float = 10000.0) -> "Camera":
        """Perspective cameras at ``eye`` (B, 3) or (3,) mm looking at ``target``.

        ``fov_deg`` is the vertical field of view; the principal point is the image centre
        ``((W-1)/2, (H-1)/2)`` and pixels are square. ``up`` is the world direction that appears
        upwards in the image.
        """
        R, t = cls._look_at_rt(eye, target, up)
        f = 0.5 * height / math.tan(math.radians(fov_deg) / 2)
        return cls.from_intrinsics(f, f, (width - 1) / 2, (height - 1) / 2, width, height, R, t, near, far)

    @classmethod
    def orthographic_view(cls, eye=(0.0, 0.0, 1000.0), target=(0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0),
                          extent_mm: float = 300.0, width: int = 256, height: int = 256,
                          near: float = 0.0, far: float = 2000.0) -> "Camera":
        """Orthographic cameras looking from ``eye`` towards ``target`` (mm).

        ``extent_mm`` is the world height the image spans (so ``fy = height / extent_mm`` px/mm),
        centred on the line of sight; ``near``/``far`` bound the camera-frame z in mm.
        """
        R, t = cls._look_at_rt(eye, target, up)
        s = height / extent_mm
        return cls.from_intrinsics(s, s, (width - 1) / 2, (height - 1) / 2, width, height, R, t,
                                   near, far, orthographic=True)

    # ------------------------------------------------------------------ properties / helpers

    @property
    def batch_size(self) -> int:
        return int(self.K.shape[0])

    def resized(self, width: int, height: int) -> "Camera":
        """The same cameras rendering ``width`` x ``height`` pixels (intrinsics scaled by
        :func:`scale_intrinsics`; orthographic cameras scale their px/mm the same way)."""
        K = scale_intrinsics(self.K, width / self.width, height / self.height)
        return replace(self, K=K, width=int(width), height=int(height))

    def to(self, device=None, dtype=None) -> "Camera":
        """A copy with K, R, t moved to ``device`` / cast to ``dtype``."""
        return replace(self, K=self.K.to(device=device, dtype=dtype), R=self.R.to(device=device, dtype=dtype),
                       t=self.t.to(device=device, dtype=dtype))

    def _bcast(self, points: Tensor, name: str = "points") -> tuple[Tensor, Tensor, Tensor, Tensor]:
        if not isinstance(points, Tensor) or points.dim() != 3 or points.shape[-1] != 3:
            got = tuple(points.shape) if isinstance(points, Tensor) else type(points).__name__
            raise ValueError(f"{name}: expected a (B, N, 3) tensor of world points in mm, got {got}")
        Bp, Bc = points.shape[0], self.batch_size
        if Bp != Bc and 1 not in (Bp, Bc):
            raise ValueError(f"{name}: batch {Bp} does not match the camera batch {Bc} (and neither is 1)")
        B = max(Bp, Bc)
        K = self.K.to(points).expand(B, 3, 3)
        R = self.R.to(points).expand(B, 3, 3)
        t = self.t.to(points).expand(B, 3)
        return points.expand(B, *points.shape[1:]), K, R, t

    def to_camera(self, points: Tensor) -> Tensor:
        """(B, N, 3) world mm -> (B, N, 3) camera frame mm (x right, y down, z forward)."""
        p, _, R, t = self._bcast(points)
        return p @ R.transpose(1, 2) + t[:, None]

    def project(self, points: Tensor) -> Tensor:
        """(B, N, 3) world mm -> (B, N, 2) OpenCV pixel coordinates (top-left pixel centre (0, 0))."""
        p, K, R, t = self._bcast(points)
        pc = p @ R.transpose(1, 2) + t[:, None]
        if self.orthographic:
            xy = pc[..., :2]
        else:
            xy = pc[..., :2] / pc[..., 2:3]
        u = K[:, None, 0, 0] * xy[..., 0] + K[:, None, 0, 1] * xy[..., 1] + K[:, None, 0, 2]
        v = K[:, None, 1, 1] * xy[..., 1] + K[:, None, 1, 2]
        return torch.stack((u, v), -1)

    def projection_matrix(self, dtype=None, device=None) -> Tensor:
        """(B, 4, 4) matrix taking camera-frame ``(X, Y, Z, 1)`` mm to clip space."""
        K = self.K.to(dtype=dtype or self.K.dtype, device=device or self.K.device)
        B = K.shape[0]
        W, H, n, f = self.width, self.height, self.near, self.far
        P = torch.zeros(B, 4, 4, dtype=K.dtype, device=K.device)
        # x_ndc = (2u + 1)/W - 1 with u the OpenCV pixel coordinate.
        P[:, 0, 0] = 2 * K[:, 0, 0] / W
        P[:, 0, 1] = 2 * K[:, 0, 1] / W
        P[:, 1, 1] = 2 * K[:, 1, 1] / H
        if self.orthographic:
            P[:, 0, 3] = (2 * K[:, 0, 2] + 1) / W - 1
            P[:, 1, 3] = (2 * K[:, 1, 2] + 1) / H - 1
            P[:, 2, 2] = 2 / (f - n)
            P[:, 2, 3] = -(f + n) / (f - n)
            P[:, 3, 3] = 1
        else:
            P[:, 0, 2] = (2 * K[:, 0, 2] + 1) / W - 1
            P[:, 1, 2] = (2 * K[:, 1, 2] + 1) / H - 1
            P[:, 2, 2] = (f + n) / (f - n)
            P[:, 2, 3] = -2 * f * n / (f - n)
            P[:, 3, 2] = 1
        return P

    def to_clip(self, points: Tensor) -> Tensor:
        """(B, N, 3) world mm -> (B, N, 4) clip space for :func:`face3d.render.rasterize`."""
        pc = self.to_camera(points)
        P = self.projection_matrix(pc.dtype, pc.device).expand(pc.shape[0], 4, 4)
        return torch.cat((pc, torch.ones_like(pc[..., :1])), -1) @ P.transpose(1, 2)
