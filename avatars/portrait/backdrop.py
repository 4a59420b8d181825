"""What the portrait shows behind and below the head: the background and the torso, as an image
layer that moves with the head pose.

The head is a volume; the rest of the frame is not worth one. A talking-head video's torso and
shoulders sway with the head, and a fixed background image (the median of the training frames)
leaves them smeared wherever the person has moved. Following AD-NeRF's idea of a torso
conditioned on the head pose, but in 2D: a learned image ``texture`` (initialised to that median)
is looked up through a smooth, pose-dependent flow, plus a pose-dependent colour residual,

    backdrop(u, pose) = texture(u + flow(u, pose)) + residual(u, pose),

with ``flow`` and ``residual`` from a small MLP over a coarse 2D feature grid and the head pose
relative to the training frames' median pose. Both start at zero, so an untrained backdrop is
the median background exactly. Held-out or re-animated frames give it their tracked (or driven)
pose; there is no per-frame code, so what it learns has to follow the pose (a per-frame code
was tried and made held-out torsos worse: docs/performance.md, "Neural portraits").

Only what moved in the training frames is learned: a fixed per-pixel ``gate`` in [0, 1]
(:func:`motion_gate`, from how far the training frames' background pixels stray from their
median) blends the learned layer with the median image,

    out(u, pose) = (1 - gate(u)) still(u) + gate(u) backdrop(u, pose),

so a static wall stays the median image at every pose, however far the pose is from the
training ones (without the gate the flow, fitted to the torso, also bent the bookshelf behind a
held-out head, and the texture drifted from the median wherever it was sampled), while the torso
and a moving background keep the layer. A gate of ones is the layer alone (portraits saved
before the gate load that way).

Coordinates: ``uv`` in [-1, 1] over the training frame (``grid_sample``'s convention with
``align_corners=False``: pixel x's centre is ``(2x + 1) / W - 1``). Colours in [0, 1].
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn


def pixel_uv(pix: Tensor, H: int, W: int) -> Tensor:
    """(R,) flat pixel indices of an H x W image -> (R, 2) their centres as ``(u, v)`` in [-1, 1]."""
    x = (pix % W).float()
    y = torch.div(pix, W, rounding_mode="floor").float()
    return torch.stack(((2 * x + 1) / W - 1, (2 * y + 1) / H - 1), -1)


def motion_gate(frames: np.ndarray, masks: np.ndarray, background: np.ndarray, noise: float = 0.03,
                moving: float = 0.07, seen: float = 0.1) -> np.ndarray:
    """Where the backdrop has to move: (N, H, W, 3) training frames in [0, 1], (N, H, W) their
    foreground masks and the (H, W, 3) median background -> (H, W) float32 gate in [0, 1].

    Per pixel, the 90th percentile over the frames where it is background (mask < 0.5, masks
    dilated by 2.5 % of the image: 3 px at 128) of its mean absolute colour difference from the
    median: at most ``noise`` (video noise) is static (gate 0), ``moving`` or more is moving
    (gate 1), linear between. Pixels background in fewer than a ``seen`` fraction of the frames
    count as moving. The gate is then dilated by 4 % of the image and blurred (sigma 1.2 %), so
    moving edges keep their margin and the blend leaves no seam.
    """
    from scipy import ndimage

    if frames.ndim != 4 or frames.shape[-1] != 3 or masks.shape != frames.shape[:3] or background.shape != frames.shape[1:]:
        raise ValueError(f"motion_gate: expected frames (N, H, W, 3), masks (N, H, W), background (H, W, 3), got "
                         f"{frames.shape}, {masks.shape}, {background.shape}")
    N, H, W = masks.shape
    S = max(H, W)
    fg = np.stack([ndimage.binary_dilation(m > 0.5, iterations=max(1, round(0.025 * S))) for m in masks])
    err = np.abs(frames.astype(np.float32) - background[None].astype(np.float32)).mean(-1)
    err = np.where(fg, np.nan, err)
    visible = (~fg).mean(0)
    q = np.zeros((H, W), np.float32)
    ok = visible >= seen
    if ok.any():
        q[ok] = np.nanpercentile(err[:, ok], 90, axis=0)
    gate = np.where(ok, np.clip((q - noise) / (moving - noise), 0.0, 1.0), 1.0)
    gate = ndimage.grey_dilation(gate, size=max(1, round(0.04 * S)) | 1)
    return np.clip(ndimage.gaussian_filter(gate, 0.012 * S), 0.0, 1.0).astype(np.float32)


class Backdrop(nn.Module):
    """Pose-conditioned image layer behind the head.

    Args:
        background: (H, W, 3) the fixed background it starts from (the training frames' median).
        grid: side of the 2D feature grid (cells); ``channels``: its features; ``hidden``: MLP width.
        max_flow: largest displacement, in uv units (1 = half the frame).
        rotation_scale: radians, ``translation_scale``: mm, of the head pose that count as "1"
        at the MLP's input.
    """

    def __init__(self, background: Tensor, grid: int = 32, channels: int = 16, hidden: int = 64,
                 max_flow: float = 0.2, rotation_scale: float = 0.2, translation_scale: float = 20.0):
        super().__init__()
        if background.ndim != 3 or background.shape[-1] != 3:
            raise ValueError(f"background: expected (H, W, 3), got {tuple(background.shape)}")
        self.texture = nn.Parameter(background.float().permute(2, 0, 1)[None].clone())  # (1, 3, H, W)
        # The fixed image where the gate is 0: the background it was built from (not saved; the
        # portrait's file holds that background already).
        self.register_buffer("still", self.texture.detach().clone(), persistent=False)
        self.register_buffer("gate", torch.ones(1, 1, *background.shape[:2]))  # see set_gate
        self.features = nn.Parameter(0.1 * torch.randn(1, channels, grid, grid))
        self.mlp = nn.Sequential(nn.Linear(channels + 6, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, 5))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)
        self.max_flow = float(max_flow)
        self.register_buffer("pose_center", torch.zeros(6))
        self.register_buffer("pose_scale", torch.tensor([rotation_scale] * 3 + [translation_scale] * 3))
        self.register_buffer("pose_lo", torch.full((6,), -1e6))  # the training poses' range (normalised)
        self.register_buffer("pose_hi", torch.full((6,), 1e6))

    def set_rest_pose(self, rotation: Tensor, translation: Tensor) -> None:
        """(N, 3) rad, (N, 3) mm: the training frames' head poses. Their median becomes the zero
        pose, and poses outside their range are clamped to it (a turntable or a driven pose beyond
        what the video showed holds the torso where the nearest trained pose had it)."""
        with torch.no_grad():
            p = torch.cat((rotation.float(), translation.float()), 1).to(self.pose_center.device)
            self.pose_center.copy_(p.median(0).values)
            q = (p - self.pose_center) / self.pose_scale
            self.pose_lo.copy_(q.min(0).values)
            self.pose_hi.copy_(q.max(0).values)

    def set_gate(self, gate: Tensor) -> None:
        """(H, W) in [0, 1] at the texture's size (:func:`motion_gate`): 0 keeps the still image."""
        if tuple(gate.shape) != tuple(self.gate.shape[-2:]):
            raise ValueError(f"gate: expected {tuple(self.gate.shape[-2:])} (the texture's size), got {tuple(gate.shape)}")
        with torch.no_grad():
            self.gate.copy_(gate.float().clamp(0, 1).to(self.gate.device)[None, None])

    def load_state_dict(self, state, strict: bool = True, **kw):
        """As ``nn.Module``'s, but a state from before the gate (no ``gate``) loads with a gate of
        ones: the layer it was."""
        state = dict(state)
        if "gate" not in state and "texture" in state:
            state["gate"] = torch.ones(1, 1, *state["texture"].shape[-2:])
        return super().load_state_dict(state, strict=strict, **kw)

    def _pose(self, rotation: Tensor, translation: Tensor) -> Tensor:
        q = (torch.cat((rotation.float().reshape(3), translation.float().reshape(3))) - self.pose_center) / self.pose_scale
        return torch.minimum(torch.maximum(q, self.pose_lo), self.pose_hi)

    def _flow_residual(self, uv: Tensor, c: Tensor) -> Tensor:
        """(R, 2) uv, (6,) normalised pose -> (R, 5): flow logits and colour residual."""
        f = nn.functional.grid_sample(self.features, uv[None, :, None], mode="bilinear", padding_mode="border",
                                      align_corners=False)[0, :, :, 0].t()  # (R, C)
        return self.mlp(torch.cat((f, c.expand(uv.shape[0], 6)), 1))

    def _compose(self, uv: Tensor, o: Tensor) -> Tensor:
        look = lambda img, at: nn.functional.grid_sample(  # noqa: E731
            img, at[None, :, None], mode="bilinear", padding_mode="border", align_corners=False)[0, :, :, 0].t()
        flow = self.max_flow * torch.tanh(o[:, :2])
        moving = look(self.texture, uv + flow) + o[:, 2:]
        g = look(self.gate, uv)
        return g * moving + (1 - g) * look(self.still, uv)

    def forward(self, uv: Tensor, rotation: Tensor, translation: Tensor) -> Tensor:
        """(R, 2) uv in [-1, 1], the frame's head ``rotation`` (3,) rad and ``translation`` (3,) mm
        -> (R, 3) colours."""
        return self._compose(uv, self._flow_residual(uv, self._pose(rotation, translation)))

    def image(self, H: int, W: int, rotation: Tensor, translation: Tensor, chunk: int = 65536) -> Tensor:
        """The whole layer at H x W (any size; it covers the training frame): (H, W, 3).

        Above the texture's own size the (smooth) flow and residual are computed at that size and
        upsampled bilinearly; only the texture lookup runs at H x W."""
        c = self._pose(rotation, translation)
        th, tw = self.texture.shape[-2:]
        h, w = min(H, th), min(W, tw)
        pix = torch.arange(h * w, device=self.texture.device)
        o = torch.cat([self._flow_residual(pixel_uv(pix[s:s + chunk], h, w), c) for s in range(0, h * w, chunk)])
        if (h, w) != (H, W):
            o = nn.functional.interpolate(o.t().reshape(1, 5, h, w), size=(H, W), mode="bilinear",
                                          align_corners=False)[0].reshape(5, -1).t()
        uv = pixel_uv(torch.arange(H * W, device=self.texture.device), H, W)
        return torch.cat([self._compose(uv[s:s + chunk], o[s:s + chunk]) for s in range(0, H * W, chunk)]).reshape(H, W, 3)
