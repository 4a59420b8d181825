"""Weighted similarity (Umeyama) alignment of point sets, batched and differentiable.

``procrustes(src, dst)`` finds ``R, t, s`` minimising ``sum_i w_i |s R src_i + t - dst_i|^2``
(Umeyama 1991, "Least-squares estimation of transformation parameters between two point
patterns", eqs. 34-42), with the determinant sign fix so ``R`` is always a proper rotation
(det +1), never a reflection.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["procrustes", "apply_similarity", "similarity_to_matrix"]


def procrustes(
    src: Tensor,
    dst: Tensor,
    weights: Tensor | None = None,
    scale: bool = False,
    eps: float = 1e-12,
) -> tuple[Tensor, Tensor, Tensor]:
    """Best similarity (or rigid, ``scale=False``) transform mapping ``src`` onto ``dst``.

    Args:
        src: (B, N, 3) or (N, 3) float points (any length unit, e.g. mm), N >= 3.
        dst: same shape as ``src``.
        weights: optional (B, N) or (N,) non-negative per-point weights (default: all 1).
        scale: estimate a uniform scale; when False, ``s`` is 1.
        eps: guards divisions for degenerate (all-coincident) inputs.

    Returns:
        ``R`` (B, 3, 3) proper rotation, ``t`` (B, 3) in the points' unit, ``s`` (B,) scale, such
        that ``dst ≈ s * src @ R.T + t``. Unbatched input gives (3, 3), (3,), () results.
        Same dtype as the inputs (float32 or float64); differentiable (the SVD gradient is
        ill-conditioned only when two singular values of the cross-covariance coincide).
    """
    if not isinstance(src, Tensor) or not isinstance(dst, Tensor):
        raise TypeError(f"src, dst: expected torch.Tensors, got {type(src).__name__}, {type(dst).__name__}")
    if src.shape != dst.shape:
        raise ValueError(f"src and dst: expected the same shape, got {tuple(src.shape)} and {tuple(dst.shape)}")
    if src.dim() not in (2, 3) or src.shape[-1] != 3:
        raise ValueError(f"src: expected shape (B, N, 3) or (N, 3), got {tuple(src.shape)}")
    if src.shape[-2] < 3:
        raise ValueError(f"src: expected at least 3 points to fix a rotation, got N={src.shape[-2]}")
    if not src.is_floating_point():
        raise TypeError(f"src: expected a floating-point tensor, got {src.dtype}")
    unbatched = src.dim() == 2
    x = src[None] if unbatched else src
    y = dst[None].to(x) if unbatched else dst.to(x)
    B, N = x.shape[:2]
    if weights is None:
        w = torch.ones(B, N, dtype=x.dtype, device=x.device)
    else:
        w = weights.to(x)
        if unbatched and w.dim() == 1:
            w = w[None]
        if w.dim() == 1 and w.shape[0] == N:
            w = w[None].expand(B, N)
        if tuple(w.shape) != (B, N):
            raise ValueError(f"weights: expected shape ({B}, {N}) or ({N},), got {tuple(weights.shape)}")
        if (w < 0).any():
            raise ValueError("weights: expected non-negative values, found negative ones")
        if (w.sum(-1) <= 0).any():
            raise ValueError("weights: every batch item needs a positive total weight, found an all-zero row")
    wn = w / w.sum(-1, keepdim=True)  # (B, N), sums to 1
    mu_x = (wn[..., None] * x).sum(1)  # (B, 3)
    mu_y = (wn[..., None] * y).sum(1)
    xc = x - mu_x[:, None]
    yc = y - mu_y[:, None]
    cov = torch.einsum("bn,bni,bnj->bij", wn, yc, xc)  # (B, 3, 3) = Σ w y xᵀ (Umeyama eq. 38)
    U, S, Vh = torch.linalg.svd(cov)
    d = torch.sign(torch.det(U) * torch.det(Vh))
    d = torch.where(d == 0, torch.ones_like(d), d)  # rank-deficient: any sign works
    D = torch.ones(B, 3, dtype=x.dtype, device=x.device)
    D = torch.cat([D[:, :2], d[:, None]], dim=1)
    R = U @ (D[..., None] * Vh)  # U diag(D) Vᵀ (eq. 40)
    if scale:
        var_x = (wn * (xc * xc).sum(-1)).sum(-1)  # eq. 36
        s = (S * D).sum(-1) / var_x.clamp_min(eps)  # eq. 42
    else:
        s = torch.ones(B, dtype=x.dtype, device=x.device)
    t = mu_y - s[:, None] * (R @ mu_x[..., None])[..., 0]  # eq. 41
    if unbatched:
        return R[0], t[0], s[0]
    return R, t, s


def apply_similarity(points: Tensor, R: Tensor, t: Tensor, s: Tensor | float | None = None) -> Tensor:
    """``s * points @ R.T + t``.

    Args:
        points: (B, N, 3) or (N, 3).
        R: (B, 3, 3) or (3, 3); t: (B, 3) or (3,); s: (B,), () or None (1).

    Returns:
        Transformed points, shape of ``points`` broadcast with the batch of ``R``.
    """
    if points.shape[-1] != 3 or R.shape[-2:] != (3, 3) or t.shape[-1] != 3:
        raise ValueError(
            f"expected points (..., N, 3), R (..., 3, 3), t (..., 3); got {tuple(points.shape)}, "
            f"{tuple(R.shape)}, {tuple(t.shape)}"
        )
    out = points @ R.transpose(-1, -2)
    if s is not None:
        s = torch.as_tensor(s, dtype=out.dtype, device=out.device)
        out = out * s.reshape(*s.shape, 1, 1)
    return out + t[..., None, :]


def similarity_to_matrix(R: Tensor, t: Tensor, s: Tensor | float | None = None) -> Tensor:
    """(B, 3, 3), (B, 3), (B,) -> (B, 4, 4) homogeneous ``[[s R, t], [0, 1]]`` (unbatched: (4, 4))."""
    if R.shape[-2:] != (3, 3) or t.shape[-1] != 3 or R.shape[:-2] != t.shape[:-1]:
        raise ValueError(f"expected R (..., 3, 3) and t (..., 3) with the same batch, got {tuple(R.shape)}, {tuple(t.shape)}")
    sR = R
    if s is not None:
        s = torch.as_tensor(s, dtype=R.dtype, device=R.device)
        sR = R * s.reshape(*s.shape, 1, 1)
    top = torch.cat([sR, t[..., :, None]], dim=-1)  # (..., 3, 4)
    bottom = torch.zeros(*R.shape[:-2], 1, 4, dtype=R.dtype, device=R.device)
    bottom[..., 0, 3] = 1
    return torch.cat([top, bottom], dim=-2)
