"""Line drawings of heads, rendered through :mod:`face3d.render`, and the reading of drawings.

Synthesis (:func:`stroke_layers` then :func:`stylize`) works on any mesh, a
:class:`~face3d.models.MorphableModel` head or not:

- ``silhouette``: the boundary of the rendered coverage mask;
- ``contour``: occluding contours inside it (depth jumps between neighbouring pixels, and the
  thin band where the surface turns away, ``n·v ≈ 0``);
- ``feature``: creases (normal jumps) and the borders between labelled parts (lips, eyeballs,
  irises, mouth interior: eye lids, lip lines, the mouth line) where labels are given;
- ``ridge`` / ``valley``: where the mesh's mean curvature is strongly convex / concave (drawn red
  / green, after SketchMetaFace's curvature-aware strokes).

:func:`read_drawing` turns any picture of a drawing (any size, grey or colour, off-white scanned
paper) into the network input: three ink maps ``(black, red, green)`` cropped to the drawing's
bounding square at :data:`SIZE` pixels. Synthetic drawings go through the very same function, so
training and use see the same input.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

SIZE = 128  # network input, pixels
RENDER_SIZE = 160  # synthetic drawings are rendered a little larger, then read like any drawing
LAYERS = ("silhouette", "contour", "feature", "ridge", "valley")


class SketchInputError(ValueError):
    """The input is not a usable line drawing (blank page, not an image, a photo, ...)."""


# ----------------------------------------------------------------------------- geometry


def mean_curvature(vertices: Tensor, faces: Tensor, smooth: int = 6) -> Tensor:
    """Signed mean curvature per vertex, 1/mm, positive where convex (a ridge, e.g. the nose).

    Uniform-Laplacian estimate ``H ≈ -(mean of neighbours - x)·n / (mean squared edge length)``
    (for a sphere of radius r this is 1/r), then ``smooth`` rounds of neighbour averaging (the
    raw estimate is noisy on irregular meshes).

    Args:
        vertices: (B, V, 3) or (V, 3) float mm; faces: (F, 3) int, counter-clockwise seen from
            outside.
    Returns:
        (B, V) or (V,) float.
    """
    from face3d.geometry.normals import vertex_normals

    unbatched = vertices.dim() == 2
    v = (vertices[None] if unbatched else vertices).to(torch.float32)
    f = faces.to(torch.int64)
    n = vertex_normals(v, f)
    from avatars.sketch.fine import unique_edges

    e = unique_edges(f)
    e = torch.cat((e, e.flip(1)))
    V = v.shape[1]
    deg = torch.zeros(V).index_add_(0, e[:, 0], torch.ones(e.shape[0])).clamp_min(1)

    def avg(x: Tensor) -> Tensor:  # (B, V, ...) -> mean over each vertex's neighbours
        s = torch.zeros_like(x).index_add_(1, e[:, 0], x[:, e[:, 1]])
        return s / deg.view(1, V, *([1] * (x.dim() - 2)))

    lap = avg(v) - v
    l2 = torch.zeros(v.shape[0], V).index_add_(1, e[:, 0], (v[:, e[:, 0]] - v[:, e[:, 1]]).pow(2).sum(-1)) / deg
    # Sphere: |lap| ≈ l²/(2r) along -n, so H = -2 lap·n / l² = 1/r.
    h = -2 * (lap * n).sum(-1) / l2.clamp_min(1e-6)
    for _ in range(smooth):
        h = 0.5 * h + 0.5 * avg(h)
    return h[0] if unbatched else h


def drawing_faces(model) -> Tensor:
    """The triangles a drawing shows: the head without the neck (whose cut bottom would add a
    line no one draws). (F', 3) int64."""
    from face3d.geometry.topology import faces_within

    if "neck" not in model.regions:
        return model.faces
    return faces_within(model.faces, ~model.region_mask("neck"))


def drawing_camera(model, size: int = RENDER_SIZE, fill: float = 0.85):
    """The frontal camera synthetic drawings of ``model`` are rendered with (one per model)."""
    from face3d.viz import PreviewConfig, head_framing, orbit_cameras

    c, r = head_framing(model, fill=fill)
    return orbit_cameras(c, r, torch.tensor([0.0]), PreviewConfig(size=size))


def _edges(mask: Tensor) -> Tensor:
    """(B, H, W) bool -> pixels of ``mask`` with a 4-neighbour outside it (the image border
    counts as outside)."""
    p = F.pad(mask.float()[:, None], (1, 1, 1, 1), value=0.0)[:, 0]
    out_nb = (p[:, :-2, 1:-1] == 0) | (p[:, 2:, 1:-1] == 0) | (p[:, 1:-1, :-2] == 0) | (p[:, 1:-1, 2:] == 0)
    return mask & out_nb


def _jumps(img: Tensor, thresh: float) -> Tensor:
    """(B, H, W, C) -> (B, H, W) bool where the change to the right or lower neighbour exceeds
    ``thresh`` (the stroke is put on the nearer... both sides' first pixel)."""
    dx = (img[:, :, 1:] - img[:, :, :-1]).norm(dim=-1) > thresh
    dy = (img[:, 1:] - img[:, :-1]).norm(dim=-1) > thresh
    out = torch.zeros(img.shape[:3], dtype=torch.bool)
    out[:, :, :-1] |= dx
    out[:, :-1] |= dy
    return out


@dataclass(frozen=True)
class LayerConfig:
    """Thresholds of the stroke extraction (mm, 1/mm, unitless cosines)."""

    depth_jump_mm: float = 8.0
    grazing_cos: float = 0.12  # |n·v| below this is the turning-away band of a contour
    crease_jump: float = 0.9  # |n1 - n2| between neighbouring pixels (0.9 ≈ 53°)
    ridge: float = 0.07  # mean curvature, 1/mm
    valley: float = -0.06


def stroke_layers(vertices: Tensor, faces: Tensor, camera, labels: Tensor | None = None,
                  curvature: Tensor | None = None, cfg: LayerConfig = LayerConfig()) -> dict[str, Tensor]:
    """Render the stroke layers of a batch of meshes sharing one topology.

    Args:
        vertices: (B, V, 3) float mm. faces: (F, 3) int.
        camera: a :class:`face3d.render.Camera` (batch 1 or B).
        labels: optional (V,) int part label per vertex (0 = plain skin); borders between labels
            become feature lines.
        curvature: optional (B, V) mean curvature (1/mm), default :func:`mean_curvature`.
    Returns:
        ``{name: (B, H, W) bool}`` for every name in :data:`LAYERS`, plus ``"mask"`` (coverage),
        ``"depth"`` (B, H, W) mm and ``"normals"`` (B, H, W, 3) camera frame.
    """
    from face3d.render import Renderer

    if vertices.dim() != 3 or vertices.shape[-1] != 3:
        raise ValueError(f"vertices: expected shape (B, V, 3) mm, got {tuple(vertices.shape)}")
    B = vertices.shape[0]
    if curvature is None:
        curvature = mean_curvature(vertices, faces)
    attrs = [curvature[..., None]]
    if labels is not None:
        attrs.append(F.one_hot(labels.long(), int(labels.max()) + 1).float()[None].expand(B, -1, -1))
    with torch.no_grad():
        out = Renderer()(vertices, faces, camera, vertex_colors=None, antialias=False)
        from face3d.render.primitives import interpolate

        extra, _ = interpolate(torch.cat(attrs, -1), out.rast, faces.to(torch.int32))
    mask = out.triangle_id >= 0
    R = camera.R.to(vertices).expand(B, 3, 3)
    n_cam = torch.einsum("bij,bhwj->bhwi", R, out.normals)
    # View direction per pixel ~ the camera axis (narrow field of view): n·v = -n_cam.z.
    ndotv = -n_cam[..., 2]
    sil = _edges(mask)
    depth = out.depth[..., None]
    dj = _jumps(torch.where(mask[..., None], depth, torch.full_like(depth, 1e5)), cfg.depth_jump_mm) & mask
    grazing = mask & (ndotv.abs() < cfg.grazing_cos)
    contour = (dj | grazing) & ~sil
    feature = _jumps(n_cam, cfg.crease_jump) & mask
    if labels is not None:
        lab = extra[..., 1:].argmax(-1)
        onehot = F.one_hot(lab, extra.shape[-1] - 1).float()
        feature |= _jumps(onehot, 0.5) & mask
    feature &= ~sil
    curv = extra[..., 0]
    ridge = _thin(mask & (curv > cfg.ridge) & (ndotv > 0.3))
    valley = _thin(mask & (curv < cfg.valley) & (ndotv > 0.3))
    return {"silhouette": sil, "contour": contour, "feature": feature, "ridge": ridge, "valley": valley,
            "mask": mask, "depth": out.depth, "normals": n_cam * mask[..., None]}


def _thin(m: Tensor) -> Tensor:
    """Skeletonise each (H, W) band to 1-pixel lines (scikit-image), dropping specks."""
    from skimage.morphology import remove_small_objects, skeletonize

    out = []
    for x in m.numpy():
        x = remove_small_objects(x, max_size=6)
        out.append(skeletonize(x))
    return torch.from_numpy(np.stack(out))


def model_labels(model) -> Tensor:
    """(V,) int64 part labels of a morphable model from its regions: 0 skin, 1 lips, 2 eyeballs,
    3 irises, 4 mouth interior (regions the model lacks are skipped)."""
    lab = torch.zeros(model.n_vertices, dtype=torch.int64)
    for i, names in enumerate((("lips",), ("eyes", "eyeball_left", "eyeball_right"), ("iris",), ("mouth_interior",)), 1):
        m = model.region_mask(*names, missing_ok=True)
        lab[m] = i
    return lab


# ----------------------------------------------------------------------------- style


@dataclass(frozen=True)
class StyleConfig:
    """Ranges of the random drawing style (pixels at :data:`RENDER_SIZE`, probabilities)."""

    wobble_px: float = 1.5  # amplitude of the smooth random warp of every stroke
    gap_rate: float = 0.15  # fraction of stroke length lost to small gaps (up to)
    missing_rate: float = 0.15  # fraction of strokes dropped in large pieces (up to)
    overstroke_p: float = 0.4  # probability of a second, slightly shifted pass
    thick_p: float = 0.3  # probability of 2-3 px lines instead of 1-2 px
    no_colour_p: float = 0.3  # probability of a drawing without red/green strokes
    grey_p: float = 0.15  # probability of a grey-scale scan (curvature strokes then absent)
    paper_p: float = 0.6  # probability of a scanned-paper look (tint, noise, blur)


def _smooth_noise(B: int, H: int, W: int, cells: int, gen: torch.Generator) -> Tensor:
    """(B, 1, H, W) smooth noise in ~[-1, 1] (bicubic upsampling of a cells x cells grid)."""
    z = torch.rand(B, 1, cells, cells, generator=gen) * 2 - 1
    return F.interpolate(z, size=(H, W), mode="bicubic", align_corners=False).clamp(-1, 1)


def _warp(x: Tensor, amp_px: Tensor, gen: torch.Generator) -> Tensor:
    B, C, H, W = x.shape
    d = torch.cat([_smooth_noise(B, H, W, 6, gen), _smooth_noise(B, H, W, 6, gen)], 1).permute(0, 2, 3, 1)
    d = d * (amp_px.view(B, 1, 1, 1) * 2 / H)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, H), torch.linspace(-1, 1, W), indexing="ij")
    grid = torch.stack((xs, ys), -1)[None] + d
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def stylize(layers: dict[str, Tensor], seed: int | torch.Generator = 0, cfg: StyleConfig = StyleConfig()) -> Tensor:
    """Random hand-drawn look for stroke layers.

    Args:
        layers: ``{name: (B, H, W) bool}`` with the names in :data:`LAYERS`.
        seed: an int or a ``torch.Generator`` (every random choice comes from it).
    Returns:
        (B, H, W, 3) float RGB in [0, 1]: dark strokes for contours and features, red ridges and
        green valleys, on white or scanned-looking paper.
    """
    gen = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed))
    x = torch.stack([layers[k].float() for k in LAYERS], 1)  # (B, 5, H, W)
    B, C, H, W = x.shape
    u = lambda *s: torch.rand(*s, generator=gen)  # noqa: E731
    # Missing strokes (large pieces) and gaps (small ones), independently per layer.
    keep = torch.cat([_smooth_noise(B, H, W, 5, gen) for _ in range(C)], 1)
    x = x * (keep * 0.5 + 0.5 > u(B, 1, 1, 1) * cfg.missing_rate).float()
    gaps = torch.cat([_smooth_noise(B, H, W, 24, gen) for _ in range(C)], 1)
    x = x * (gaps * 0.5 + 0.5 > u(B, 1, 1, 1) * cfg.gap_rate).float()
    # Line width: dilate, then a soft edge.
    thick = u(B) < cfg.thick_p
    wide = F.max_pool2d(x, 3, 1, 1)
    x = torch.where(thick.view(B, 1, 1, 1), wide, torch.maximum(x, 0.5 * wide * (u(B, 1, 1, 1) < 0.5)))
    y = _warp(x, u(B) * cfg.wobble_px, gen)
    over = (u(B) < cfg.overstroke_p).view(B, 1, 1, 1).float()
    y = torch.maximum(y, over * 0.8 * _warp(x, 0.5 + u(B) * cfg.wobble_px, gen))
    y = y.clamp(0, 1)
    black = y[:, :3].amax(1)
    red, green = y[:, 3], y[:, 4]
    no_col = (u(B) < cfg.no_colour_p).view(B, 1, 1).float()
    red, green = red * (1 - no_col), green * (1 - no_col)
    ink = (0.6 + 0.4 * u(B, 1, 1))
    pencil = torch.stack([ink * 0.15] * 3, -1) * (u(B, 1, 1, 1) * 0.8)  # stroke colour, dark grey
    img = torch.ones(B, H, W, 3)
    img = img * (1 - (black * ink)[..., None]) + pencil * (black * ink)[..., None]
    redc = torch.tensor([0.85, 0.1, 0.1])
    greenc = torch.tensor([0.1, 0.65, 0.15])
    img = img * (1 - red[..., None]) + redc * red[..., None]
    img = img * (1 - green[..., None]) + greenc * green[..., None]
    # Scanned paper: tint, brightness, noise, blur; some scans are grey-scale.
    paper = (u(B) < cfg.paper_p).view(B, 1, 1, 1).float()
    tint = 1 - u(B, 1, 1, 3) * 0.12
    noise = (torch.randn(B, H, W, 1, generator=gen) * 0.03 + _smooth_noise(B, H, W, 4, gen).permute(0, 2, 3, 1) * 0.04)
    scanned = (img * tint + noise).clamp(0, 1)
    k = torch.tensor([1.0, 2.0, 1.0])
    k = (k[:, None] * k[None]) / 16
    # Replicate padding: zero padding would draw a dark frame round the page.
    flat = F.pad(scanned.permute(0, 3, 1, 2).reshape(B * 3, 1, H, W), (1, 1, 1, 1), mode="replicate")
    blurred = F.conv2d(flat, k[None, None]).reshape(B, 3, H, W).permute(0, 2, 3, 1)
    img = paper * blurred + (1 - paper) * img
    grey = (u(B) < cfg.grey_p).view(B, 1, 1, 1).float()
    img = grey * img.mean(-1, keepdim=True).expand_as(img) + (1 - grey) * img
    return img.clamp(0, 1)


# ----------------------------------------------------------------------------- reading drawings


@dataclass(frozen=True)
class Crop:
    """Where the network input lies in the original picture: input pixel centre ``(x, y)``
    (OpenCV convention) is original pixel ``(x0 + x * scale, y0 + y * scale)``."""

    x0: float
    y0: float
    scale: float  # original pixels per input pixel


def _to_rgb(image) -> Tensor:
    """Anything image-like -> (H, W, 3) float [0, 1]."""
    from PIL import Image

    if isinstance(image, (str, bytes)) or hasattr(image, "__fspath__"):
        try:
            with Image.open(image) as im:
                image = np.asarray(im.convert("RGB"))
        except Exception as e:  # PIL raises several types for non-images
            raise SketchInputError(f"expected an image file (PNG, JPEG, ...), could not read {image!r}: {e}") from None
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    if isinstance(image, np.ndarray):
        if image.dtype == np.uint8:
            image = torch.from_numpy(image.astype(np.float32) / 255)
        elif np.issubdtype(image.dtype, np.floating):
            image = torch.from_numpy(image.astype(np.float32))
        else:
            raise SketchInputError(f"expected a uint8 or float image array, got dtype {image.dtype}")
    if not isinstance(image, Tensor):
        raise SketchInputError(f"expected an image (path, PIL image, array or tensor), got {type(image).__name__}")
    x = image.to(torch.float32)
    if x.dim() == 2:
        x = x[..., None]
    if x.dim() != 3 or x.shape[-1] not in (1, 3, 4) or min(x.shape[:2]) < 16:
        raise SketchInputError(f"expected an (H, W), (H, W, 1|3|4) image of at least 16x16 pixels, got shape {tuple(x.shape)}")
    if x.shape[-1] == 4:  # transparent pixels are paper
        a = x[..., 3:]
        x = x[..., :3] * a + (1 - a)
    if x.shape[-1] == 1:
        x = x.expand(-1, -1, 3)
    if x.max() > 1.5:
        x = x / 255
    return x.clamp(0, 1)


def ink_maps(image) -> Tensor:
    """(H, W, 3) picture -> (3, H, W) ink maps in [0, 1]: black (any dark stroke), red, green.

    The paper colour is estimated (the 80th percentile of each channel) and divided out, so
    off-white or tinted scans read like white paper.
    """
    x = _to_rgb(image)
    flat = x.reshape(-1, 3)
    if flat.shape[0] > 200_000:
        flat = flat[:: flat.shape[0] // 200_000 + 1]
    paper = torch.quantile(flat, 0.8, dim=0).clamp_min(0.2)
    x = (x / paper).clamp(0, 1)
    r, g, b = x.unbind(-1)
    red = ((r - torch.maximum(g, b)) - 0.2).clamp(0, 0.4) / 0.4
    green = ((g - torch.maximum(r, b)) - 0.15).clamp(0, 0.3) / 0.3
    dark = ((1 - x.mean(-1)) - 0.12).clamp(0, 0.5) / 0.5
    black = (dark * (1 - torch.maximum(red, green))).clamp(0, 1)
    return torch.stack((black, red, green))


def read_drawing(image, size: int = SIZE, margin: float = 1.08, crop: Crop | None = None) -> tuple[Tensor, Crop]:
    """A picture of a head drawing -> the network input and where it was cut from.

    Args:
        image: a path, PIL image, (H, W[, C]) uint8/float array or tensor; any size, grey or
            colour, white or off-white paper; black strokes, optionally red ridges and green
            valleys.
        size: output size in pixels.
        margin: the square crop's side as a multiple of the ink's bounding box.
        crop: cut here instead (a local edit re-reads a drawing where it was first read).
    Returns:
        ``(ink (3, size, size) float in [0, 1], crop)``.
    Raises:
        SketchInputError: for a blank page, a photo or anything that is not a line drawing.
    """
    x = _to_rgb(image)
    H, W = x.shape[:2]
    grey = x.mean(-1)
    # A line drawing is mostly paper: a photo has most pixels far from the paper tone.
    paper_tone = torch.quantile(grey.reshape(-1)[:: max(1, grey.numel() // 200_000)], 0.8)
    near_paper = ((grey - paper_tone).abs() < 0.12).float().mean()
    ink = ink_maps(x)
    any_ink = ink.amax(0) > 0.3
    frac = float(any_ink.float().mean())
    if frac < 0.002:
        raise SketchInputError(f"the page is blank: expected strokes covering at least 0.2% of the picture, found {100 * frac:.3f}%")
    if float(near_paper) < 0.55 or frac > 0.4:
        raise SketchInputError(
            f"this looks like a photo or a filled picture, not a line drawing: expected mostly paper "
            f"(>= 55% of pixels near the paper tone, <= 40% ink), found {100 * float(near_paper):.0f}% paper, {100 * frac:.0f}% ink")
    if crop is None:
        crop = square_crop(any_ink, size, margin)
    scale = crop.scale
    # Sample the crop: max-pool first when shrinking, so thin lines survive.
    t = ink[None]
    k = int(math.floor(scale))
    if k >= 2:
        t = F.max_pool2d(t, k, 1, padding=k // 2)[..., :H, :W]
    g = torch.arange(size, dtype=torch.float32) * scale
    gx = 2 * (crop.x0 + g + 0.5) / W - 1
    gy = 2 * (crop.y0 + g + 0.5) / H - 1
    grid = torch.stack((gx[None, :].expand(size, size), gy[:, None].expand(size, size)), -1)
    out = F.grid_sample(t, grid[None], mode="bilinear", padding_mode="zeros", align_corners=False)[0]
    return out.clamp(0, 1), crop


def square_crop(ink: Tensor, size: int = SIZE, margin: float = 1.08) -> Crop:
    """The square around the (robust, 0.2-99.8 percentile) bounding box of the True pixels of
    ``ink`` (H, W) bool, ``margin`` times its larger side, sampled at ``size`` pixels."""
    ys, xs = torch.nonzero(ink, as_tuple=True)
    q = torch.tensor([0.002, 0.998])
    lo_y, hi_y = torch.quantile(ys.float(), q)
    lo_x, hi_x = torch.quantile(xs.float(), q)
    side = float(max(hi_y - lo_y, hi_x - lo_x)) * margin + 2
    cy, cx = float(lo_y + hi_y) / 2, float(lo_x + hi_x) / 2
    scale = side / size
    return Crop(x0=cx - side / 2 + 0.5 * scale, y0=cy - side / 2 + 0.5 * scale, scale=scale)


def crop_camera(camera, crop: Crop, size: int = SIZE):
    """The camera whose image is the network input cut from ``camera``'s image by ``crop``."""
    from dataclasses import replace

    K = camera.K.clone()
    s = 1.0 / crop.scale
    K[:, 0, 0] *= s
    K[:, 1, 1] *= s
    K[:, 0, 2] = (K[:, 0, 2] - crop.x0) * s
    K[:, 1, 2] = (K[:, 1, 2] - crop.y0) * s
    return replace(camera, K=K, width=size, height=size)
