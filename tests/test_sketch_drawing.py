"""Sketch synthesis and reading drawings (avatars.sketch.drawing)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from avatars.sketch import drawing as dr


def _near(a: torch.Tensor, b: torch.Tensor, px: int = 1) -> torch.Tensor:
    """Pixels of a (H, W) bool within ``px`` of a True pixel of b."""
    grown = F.max_pool2d(b.float()[None, None], 2 * px + 1, 1, px)[0, 0] > 0
    return a & grown


@pytest.fixture(scope="module")
def mean_layers(builtin_model):
    cam = dr.drawing_camera(builtin_model, size=128)
    v = builtin_model.template[None]
    return cam, dr.stroke_layers(v, dr.drawing_faces(builtin_model), cam, labels=dr.model_labels(builtin_model))


def test_curvature_of_spheres():
    from face3d.models.toy import uv_sphere

    v, f = uv_sphere(40, 60)
    h = dr.mean_curvature(v * 50.0, f)
    assert abs(float(h.median()) - 1 / 50) < 0.002
    inside_out = dr.mean_curvature(v * 50.0, f.flip(1))
    assert abs(float(inside_out.median()) + 1 / 50) < 0.002


def test_silhouette_strokes_lie_on_the_rendered_silhouette(builtin_model, mean_layers):
    from face3d.render import Renderer

    cam, L = mean_layers
    out = Renderer()(builtin_model.template[None], dr.drawing_faces(builtin_model), cam, antialias=False)
    alpha = out.alpha[0, ..., 0] > 0.5
    # Silhouette pixels: covered, with an uncovered 4-neighbour (computed independently here).
    pad = F.pad(alpha.float()[None], (1, 1, 1, 1))[0]
    outside_nb = (pad[:-2, 1:-1] == 0) | (pad[2:, 1:-1] == 0) | (pad[1:-1, :-2] == 0) | (pad[1:-1, 2:] == 0)
    truth = alpha & outside_nb
    sil = L["silhouette"][0]
    assert int(truth.sum()) > 200
    assert bool((sil == truth).all())
    # No other layer draws on the silhouette.
    assert not bool((L["contour"][0] & sil).any()) and not bool((L["feature"][0] & sil).any())


def test_feature_strokes_lie_on_lip_and_eye_borders(builtin_model, mean_layers):
    cam, L = mean_layers
    feat = L["feature"][0]
    uv = cam.project(builtin_model.template[None])[0].round().long()
    for region in ("lips", "iris"):
        ids = builtin_model.region(region)
        p = uv[ids]
        x0, y0 = p.min(0).values - 2
        x1, y1 = p.max(0).values + 2
        box = feat[int(y0):int(y1) + 1, int(x0):int(x1) + 1]
        assert int(box.sum()) >= 15, region  # the part is outlined
    # Every feature pixel is next to a change of part label, normal or depth (not random ink).
    from face3d.render import Renderer
    from face3d.render.primitives import interpolate

    out = Renderer()(builtin_model.template[None], dr.drawing_faces(builtin_model), cam, antialias=False)
    lab = F.one_hot(dr.model_labels(builtin_model), 5).float()[None]
    li, _ = interpolate(lab, out.rast, dr.drawing_faces(builtin_model).to(torch.int32))
    li = li[0].argmax(-1)
    change = torch.zeros_like(feat)
    change[:, :-1] |= li[:, 1:] != li[:, :-1]
    change[:-1] |= li[1:] != li[:-1]
    n = out.normals[0]
    change[:, :-1] |= (n[:, 1:] - n[:, :-1]).norm(dim=-1) > 0.9
    change[:-1] |= (n[1:] - n[:-1]).norm(dim=-1) > 0.9
    assert bool((feat & ~change).sum() == 0)


def test_ridges_are_convex_and_valleys_concave(builtin_model, mean_layers):
    cam, L = mean_layers
    from face3d.render.primitives import interpolate
    from face3d.render import Renderer

    h = dr.mean_curvature(builtin_model.template, builtin_model.faces)
    out = Renderer()(builtin_model.template[None], dr.drawing_faces(builtin_model), cam, antialias=False)
    hi, _ = interpolate(h[None, :, None], out.rast, dr.drawing_faces(builtin_model).to(torch.int32))
    assert int(L["ridge"][0].sum()) > 20 and int(L["valley"][0].sum()) > 3
    assert bool((hi[0, ..., 0][L["ridge"][0]] > 0.07).all())
    assert bool((hi[0, ..., 0][L["valley"][0]] < -0.06).all())


def test_read_drawing_frames_the_head_and_the_camera_matches(builtin_model, mean_layers):
    cam, L = mean_layers
    plain = dr.StyleConfig(wobble_px=0, gap_rate=0, missing_rate=0, overstroke_p=0, thick_p=0, no_colour_p=0, grey_p=0, paper_p=0)
    img = dr.stylize(L, 0, plain)[0]
    # Any size and an off-white, grey page read alike.
    big = F.interpolate(img.permute(2, 0, 1)[None], scale_factor=3, mode="nearest")[0].permute(1, 2, 0)
    grey = (big.mean(-1) * 0.9 + 0.05).numpy()
    # The 3x picture's camera: its pixel centre X is the small one's X/3 - 1/3.
    cam3 = dr.crop_camera(cam, dr.Crop(-1 / 3, -1 / 3, 1 / 3), size=384)
    for picture, pcam in ((img, cam), ((grey * 255).astype(np.uint8), cam3)):
        ink, crop = dr.read_drawing(picture)
        assert ink.shape == (3, dr.SIZE, dr.SIZE)
        # The head's outline (rendered with the cropped camera) is where the ink is.
        from face3d.render import Renderer

        c = dr.crop_camera(pcam, crop)
        out = Renderer()(builtin_model.template[None], dr.drawing_faces(builtin_model), c, antialias=False)
        sil = dr._edges(out.triangle_id >= 0)[0]
        black = ink[0] > 0.3
        assert float(_near(sil, black, 1).sum() / sil.sum()) > 0.9
    # Red and green survive in colour.
    ink, _ = dr.read_drawing(img)
    assert float(ink[1].sum()) > 30 and float(ink[2].sum()) > 3


def test_styles_vary_and_keep_strokes_near_the_layers(mean_layers):
    _, L = mean_layers
    a, b = dr.stylize(L, 1), dr.stylize(L, 2)
    assert float((a - b).abs().mean()) > 0.005
    dark = dr.ink_maps(a[0]).amax(0) > 0.3
    any_layer = torch.stack([L[k][0] for k in dr.LAYERS]).any(0)
    assert float(_near(dark, any_layer, 3).sum() / dark.sum()) > 0.95


def test_bad_input_raises(tmp_path):
    with pytest.raises(dr.SketchInputError, match="blank"):
        dr.read_drawing(np.full((200, 300, 3), 240, np.uint8))
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"this is not an image")
    with pytest.raises(dr.SketchInputError, match="expected an image"):
        dr.read_drawing(bad)
    from skimage.data import astronaut

    with pytest.raises(dr.SketchInputError, match="photo"):
        dr.read_drawing(astronaut())
    with pytest.raises(dr.SketchInputError, match="expected an image"):
        dr.read_drawing("no such file.png")
    with pytest.raises(dr.SketchInputError, match="shape"):
        dr.read_drawing(np.zeros((4, 4, 3), np.uint8))
