"""Reading photos as (H, W, 3) uint8 RGB, whatever the file holds.

Handles what ordinary photos come as: EXIF orientation (phones store the pixels sideways and
say so in a tag), grayscale, 16-bit (PNG/TIFF, scaled to 8 bits, not clipped), palette images,
alpha (composited over white), CMYK JPEGs (Pillow undoes Adobe's inverted CMYK), and images of
any size (detection downscales its own copy; see :mod:`face3d.reconstruct.detect`).

This module sits below :mod:`.detect`, :mod:`.api`, :mod:`.cli` and :mod:`.track`, which all
read images; it imports none of them.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm")

# Pillow's modes whose samples are wider than 8 bits.
_WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def check_image(image: np.ndarray, what: str = "image") -> np.ndarray:
    """Return ``image`` as a C-contiguous (H, W, 3) uint8 RGB array or raise a clear error.

    Accepts (H, W) grayscale, (H, W, 1), (H, W, 3) and (H, W, 4) (alpha dropped) arrays of
    uint8, uint16 (full 16-bit range, divided by 257), other integers (clipped to 0-255) or
    floats (in [0, 1] when their maximum is <= 1, else 0-255).
    """
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ValueError(f"{what}: expected an (H, W, 3) RGB image, got shape {img.shape}")
    if img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"{what}: expected a non-empty image, got shape {img.shape}")
    img = img[..., :3]
    if img.dtype == np.uint16:
        img = (img.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    elif img.dtype != np.uint8:
        if np.issubdtype(img.dtype, np.floating) and img.size and img.max() <= 1.0:
            img = img * 255.0 + 0.5
        img = np.clip(img, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img)


def _wide_to_rgb8(im) -> np.ndarray:
    """A Pillow image in a mode wider than 8 bits (16-bit gray PNG/TIFF, 32-bit int, float) ->
    (H, W, 3) uint8, scaled by the mode's range (16-bit data read as mode "I" is still 16-bit)."""
    a = np.asarray(im).astype(np.float64)
    if im.mode == "F":
        top = 1.0 if a.size and a.max() <= 1.0 else 255.0
    else:
        top = 65535.0 if (im.mode.startswith("I;16") or (a.size and a.max() > 255)) else 255.0
    g = np.clip(a / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=2)


def load_image(path: str | Path, background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB, upright (EXIF orientation applied).

    Transparent pixels (RGBA, LA, palette with transparency) are composited over
    ``background``. Raises FileNotFoundError if the file is missing and ValueError naming the
    file if it is not a readable image.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    try:
        with Image.open(path) as im:
            im.load()
            im = ImageOps.exif_transpose(im)  # phones store pixels sideways plus an orientation tag
            if im.mode in _WIDE_MODES:
                return _wide_to_rgb8(im)
            if im.mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
                rgba = im.convert("RGBA")
                bg = Image.new("RGBA", rgba.size, tuple(background) + (255,))
                im = Image.alpha_composite(bg, rgba)
            return np.ascontiguousarray(np.asarray(im.convert("RGB")))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"could not read {path} as an image ({type(e).__name__}: {e})") from e


def collect_images(items: list[str]) -> list[Path]:
    """Expand files and folders (non-recursive, :data:`IMAGE_EXTS`, sorted) into a list of paths."""
    out: list[Path] = []
    for it in items:
        p = Path(it)
        if p.is_dir():
            out += sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_EXTS)
        else:
            out.append(p)  # missing / unreadable files are reported per item later
    return out


def resize_longer_side(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Downscale (H, W, 3) uint8 so its longer side is at most ``max_side`` px (area filter).

    Returns ``(image, scale)`` with ``scale`` = output px per input px (1.0 when not resized).
    """
    from PIL import Image

    H, W = image.shape[:2]
    if max(H, W) <= max_side:
        return image, 1.0
    k = max_side / max(H, W)
    size = (max(1, round(W * k)), max(1, round(H * k)))
    out = np.asarray(Image.fromarray(image).resize(size, Image.BOX))
    return out, size[0] / W
