"""Foreground masks from a trimap and colour models, without downloaded segmentation weights.

The portrait's data stage knows two regions for sure in every frame: the eroded silhouette of the
tracked mesh (foreground) and everything outside the projected sampling shell (background). The
band between holds what the 3DMM does not model -- hair, ears, shoulders -- and the background
near the head. :func:`foreground_masks` classifies it:

1. colour models: a Gaussian mixture of RGB colours for each side, fitted by EM on pixels sampled
   from the whole clip, then refined on each frame by a few more EM steps (lighting and the
   visible background change over a clip);
2. per-pixel log-odds of the two mixtures (clamped), plus a prior that falls linearly with the
   distance to the sure foreground;
3. spatial regularisation: Gaussian smoothing of the log-odds, and only connected components of
   the thresholded mask that touch the sure foreground are kept.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class MaskConfig:
    """Settings of :func:`foreground_masks`.

    Attributes:
        components: Gaussians per colour mixture (foreground and background each).
        clip_samples: pixels per side sampled from the whole clip for the clip-level fit.
        clip_iters: EM iterations of the clip-level fit.
        frame_samples: pixels per side sampled from each frame for its refinement.
        frame_iters: EM iterations of the per-frame refinement (0: the clip model only).
        near_background: background samples are taken from sure-background pixels within this
            fraction of the image height of the band, where there are enough of them (the
            background next to the head predicts the band better than a far corner).
        llr_clip: the colour log-likelihood ratio is clamped to ``[-llr_clip, llr_clip]``.
        prior_bias: log-odds added at the edge of the sure foreground.
        distance_scale: the prior drops by 1 per ``distance_scale * H`` pixels of distance from
            the sure foreground.
        smooth_px: standard deviation of the Gaussian smoothing of the log-odds, px.
        temperature: soft mask = ``sigmoid(logodds / temperature)``.
        seed: seed of the pixel sampling and the EM initialisation.
    """

    components: int = 5
    clip_samples: int = 20000
    clip_iters: int = 12
    frame_samples: int = 3000
    frame_iters: int = 2
    near_background: float = 0.15
    llr_clip: float = 8.0
    prior_bias: float = 0.5
    distance_scale: float = 0.05
    smooth_px: float = 1.0
    temperature: float = 1.0
    seed: int = 0


# ------------------------------------------------------------------------------ Gaussian mixture


@dataclass
class _GMM:
    weights: np.ndarray  # (K,)
    means: np.ndarray    # (K, 3)
    covs: np.ndarray     # (K, 3, 3)


def _log_prob(g: _GMM, x: np.ndarray) -> np.ndarray:
    """(N, 3) -> (N, K) log(weight_k N(x; mu_k, Sigma_k))."""
    L = np.linalg.cholesky(g.covs)  # (K, 3, 3)
    Linv_t = np.linalg.inv(L).transpose(0, 2, 1)
    # z = L^-1 (x - mu) for all components at once, as one (N, 3) @ (3, 3K) product.
    z = (x @ Linv_t.transpose(1, 0, 2).reshape(3, -1)).reshape(len(x), -1, 3).transpose(1, 0, 2)
    z = z - (g.means[:, None] @ Linv_t)  # (K, N, 3)
    maha = np.einsum("kni,kni->kn", z, z)
    logdet = 2 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(1)
    return (np.log(g.weights)[:, None] - 0.5 * (maha + logdet[:, None] + 3 * np.log(2 * np.pi))).T


def _log_likelihood(g: _GMM, x: np.ndarray) -> np.ndarray:
    lp = _log_prob(g, x)
    m = lp.max(1, keepdims=True)
    return (m + np.log(np.exp(lp - m).sum(1, keepdims=True)))[:, 0]


def _em(x: np.ndarray, g: _GMM, iters: int, reg: float = 1e-4) -> _GMM:
    """EM for a full-covariance Gaussian mixture on (N, 3) x, starting from ``g``."""
    eye = np.eye(3) * reg
    for _ in range(iters):
        lp = _log_prob(g, x)
        lp -= lp.max(1, keepdims=True)
        r = np.exp(lp)
        r /= r.sum(1, keepdims=True)  # (N, K) responsibilities
        nk = r.sum(0) + 1e-9
        means = (r.T @ x) / nk[:, None]
        d = x[None] - means[:, None]  # (K, N, 3)
        covs = np.einsum("kn,kni,knj->kij", r.T, d, d) / nk[:, None, None] + eye
        g = _GMM(nk / nk.sum(), means, covs)
    return g


def _init_gmm(x: np.ndarray, k: int, rng: np.random.Generator) -> _GMM:
    """Means by k-means++ seeding, shared covariance of the data."""
    k = max(1, min(k, len(x)))
    means = [x[rng.integers(len(x))]]
    for _ in range(k - 1):
        d2 = ((x[:, None] - np.asarray(means)[None]) ** 2).sum(-1).min(1)
        p = d2 / d2.sum() if d2.sum() > 0 else None
        means.append(x[rng.choice(len(x), p=p)])
    cov = np.cov(x.T) + np.eye(3) * 1e-3 if len(x) > 1 else np.eye(3) * 1e-2
    return _GMM(np.full(k, 1.0 / k), np.asarray(means, float), np.broadcast_to(cov, (k, 3, 3)).copy())


def _sample(idx: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return idx if len(idx) <= n else rng.choice(idx, n, replace=False)


# ------------------------------------------------------------------------------ public


def _check(frames, inside, outside) -> None:
    if not isinstance(frames, np.ndarray) or frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        got = f"{frames.shape} {frames.dtype}" if isinstance(frames, np.ndarray) else type(frames).__name__
        raise ValueError(f"frames: expected a (T, H, W, 3) uint8 array, got {got}")
    for name, a in (("inside", inside), ("outside", outside)):
        if not isinstance(a, np.ndarray) or a.dtype != bool or a.shape != frames.shape[:3]:
            got = f"{a.shape} {a.dtype}" if isinstance(a, np.ndarray) else type(a).__name__
            raise ValueError(f"{name}: expected a {frames.shape[:3]} bool array (the frames' T, H, W), got {got}")
    both = inside & outside
    if both.any():
        t = int(np.nonzero(both.any((1, 2)))[0][0])
        raise ValueError(f"inside, outside: expected disjoint regions, got {int(both.sum())} pixels in both "
                         f"(first in frame {t})")
    empty = ~inside.any((1, 2)) | ~outside.any((1, 2))
    if empty.any():
        raise ValueError(f"inside, outside: expected pixels of both in every frame, got frames "
                         f"{np.nonzero(empty)[0][:10].tolist()} without one of them")


def foreground_masks(frames: np.ndarray, inside: np.ndarray, outside: np.ndarray,
                     cfg: MaskConfig = MaskConfig()) -> np.ndarray:
    """Soft foreground masks from a trimap.

    Args:
        frames: (T, H, W, 3) uint8 RGB images.
        inside: (T, H, W) bool, sure foreground (e.g. the eroded silhouette of the tracked mesh).
        outside: (T, H, W) bool, sure background (e.g. outside the projected sampling shell);
            disjoint from ``inside``; every frame needs pixels of both.
        cfg: :class:`MaskConfig`.

    Returns:
        (T, H, W) float32 in [0, 1]: exactly 1 on ``inside``, exactly 0 on ``outside``; in the band
        between, the foreground probability of the colour models with spatial regularisation
        (0 on pixels not connected to ``inside``).

    Example::

        >>> T, H, W = 1, 32, 32
        >>> frames = np.zeros((T, H, W, 3), np.uint8); frames[:, 8:24, 8:24] = 200
        >>> inside = np.zeros((T, H, W), bool); inside[:, 12:20, 12:20] = True
        >>> outside = np.ones((T, H, W), bool); outside[:, 4:28, 4:28] = False
        >>> m = foreground_masks(frames, inside, outside)
        >>> bool(m[0, 9, 9] > 0.5), bool(m[0, 5, 5] < 0.5)  # the bright square, not the dark rim
        (True, True)
    """
    _check(frames, inside, outside)
    T, H, W, _ = frames.shape
    rng = np.random.default_rng(cfg.seed)
    x = frames.reshape(T, H * W, 3).astype(np.float64) / 255.0
    band = ~(inside | outside)
    near_px = cfg.near_background * H
    near_bg = np.empty_like(outside)
    for t in range(T):  # per frame: the distance to the band (2-D transform)
        near_bg[t] = outside[t] & (ndimage.distance_transform_edt(outside[t]) <= near_px)

    def pick(mask: np.ndarray, per_frame: int) -> np.ndarray:
        flat = np.flatnonzero(mask.reshape(-1))
        return flat[_sample(np.arange(len(flat)), per_frame, rng)] if len(flat) else flat

    def bg_pixels(t: int | None, n: int) -> np.ndarray:
        src = near_bg if t is None else near_bg[t]
        full = outside if t is None else outside[t]
        return pick(src if src.sum() >= min(n, 50) else full, n)

    flat_x = x.reshape(-1, 3)
    fg_all = flat_x[pick(inside, cfg.clip_samples)]
    bg_all = flat_x[bg_pixels(None, cfg.clip_samples)]
    fg_g = _em(fg_all, _init_gmm(fg_all, cfg.components, rng), cfg.clip_iters)
    bg_g = _em(bg_all, _init_gmm(bg_all, cfg.components, rng), cfg.clip_iters)

    logit = np.zeros((T, H, W))
    for t in range(T):
        b = band[t].reshape(-1)
        if not b.any():
            continue
        fg_t, bg_t = fg_g, bg_g
        if cfg.frame_iters > 0:
            fg_t = _em(x[t][pick(inside[t], cfg.frame_samples)], fg_g, cfg.frame_iters)
            bg_t = _em(x[t][bg_pixels(t, cfg.frame_samples)], bg_g, cfg.frame_iters)
        xb = x[t][b]
        llr = np.clip(_log_likelihood(fg_t, xb) - _log_likelihood(bg_t, xb), -cfg.llr_clip, cfg.llr_clip)
        d_in = ndimage.distance_transform_edt(~inside[t]).reshape(-1)[b]
        lt = logit[t].reshape(-1)
        lt[b] = llr + cfg.prior_bias - d_in / max(cfg.distance_scale * H, 1e-6)
        # Sure regions take the clamp values, so smoothing pulls the band towards them.
        lt[inside[t].reshape(-1)] = cfg.llr_clip
        lt[outside[t].reshape(-1)] = -cfg.llr_clip
    if cfg.smooth_px > 0:
        logit = ndimage.gaussian_filter(logit, sigma=(0, cfg.smooth_px, cfg.smooth_px))
    soft = 1.0 / (1.0 + np.exp(-logit / cfg.temperature))
    # Components of the hard mask not touching the sure foreground are background (2-D labels).
    for t in range(T):
        lab, n = ndimage.label((soft[t] > 0.5) | inside[t])
        keep = np.zeros(n + 1, bool)
        keep[np.unique(lab[inside[t]])] = True
        keep[0] = True  # sub-threshold pixels keep their soft value
        soft[t] *= keep[lab]
    soft[inside] = 1.0
    soft[outside] = 0.0
    return soft.astype(np.float32)
