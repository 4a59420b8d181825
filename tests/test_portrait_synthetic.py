"""Synthetic portrait clips (avatars.portrait.synthetic) and trimap foreground masks
(avatars.portrait.masks), on the procedural "character" head and tiny clips."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy import ndimage

import face3d
from avatars.portrait.masks import MaskConfig, foreground_masks
from avatars.portrait.synthetic import EVENTS, SyntheticClipConfig, heldout_novelty, synthetic_clip, write_clip
from face3d.reconstruct.camera import make_camera
from face3d.render import Renderer

SMALL = SyntheticClipConfig(frames=8, size=80, seed=3)


@pytest.fixture(scope="module")
def character():
    return face3d.load_model("character")


@pytest.fixture(scope="module")
def clip(character):
    return synthetic_clip(character, SMALL)


def _bare(model, clip):
    """The model alone (no hair, no texture) rendered with the clip's true parameters."""
    T = clip.n_frames
    with torch.no_grad():
        out = model(identity=torch.as_tensor(clip.identity)[None].expand(T, -1),
                    expression=torch.as_tensor(clip.expression), jaw=torch.as_tensor(clip.jaw),
                    rotation=torch.as_tensor(clip.rotation), translation=torch.as_tensor(clip.translation))
        cam = make_camera(torch.full((T,), clip.focal), clip.width, clip.height)
        return Renderer()(out.vertices, model.faces, cam, antialias=False)


def test_clip_shapes_split_and_background(clip):
    T, S = SMALL.frames, SMALL.size
    assert clip.frames.shape == (T, S, S, 3) and clip.frames.dtype == np.uint8
    assert clip.masks.shape == (T, S, S) and clip.masks.dtype == bool
    for a in (clip.jaw, clip.rotation, clip.translation):
        assert a.shape == (T, 3)
    assert clip.n_train == round(0.8 * T)
    assert np.isclose(np.linalg.norm(clip.light_dir), 1.0)
    assert clip.background.min() >= 0.2 * 255 - 1  # non-black
    # Away from the silhouette (antialiasing touches one pixel on each side), non-head pixels are
    # exactly the fixed background: the masks are the rendered coverage.
    st = np.zeros((1, 3, 3), bool)
    st[0] = True
    far = ~ndimage.binary_dilation(clip.masks, st, iterations=1)
    assert np.array_equal(clip.frames[far], np.broadcast_to(clip.background, clip.frames.shape)[far])
    core = ndimage.binary_erosion(clip.masks, st, iterations=1)
    differs = (clip.frames[core].astype(int) - np.broadcast_to(clip.background, clip.frames.shape)[core]).any(-1)
    assert differs.mean() > 0.99
    assert 0.1 < clip.masks.mean() < 0.6  # the head fills a good part of the frame


def test_hair_covers_pixels_outside_the_bare_model(character, clip):
    bare = (_bare(character, clip).triangle_id >= 0).numpy()
    # The truth reproduces the render: every pixel of the bare model is in the mask...
    assert not (bare & ~clip.masks).any()
    # ...and the hair adds pixels the 3DMM never covers, on top of the head in every frame.
    hair = clip.masks & ~bare
    assert (hair.sum((1, 2)) > 0.04 * clip.masks.sum((1, 2))).all()
    top_mask = np.array([np.nonzero(m.any(1))[0][0] for m in clip.masks])
    top_bare = np.array([np.nonzero(m.any(1))[0][0] for m in bare])
    assert (top_bare - top_mask >= 2).all(), (top_mask, top_bare)
    # Hair is dark: much darker than the skin in the same frame.
    skin = ndimage.binary_erosion(bare, np.ones((1, 3, 3), bool))
    assert clip.frames[hair].mean() < 0.7 * clip.frames[skin].mean()


def _face_pixels(character, ro):
    face = set(np.nonzero(np.isin(character.faces.numpy(), character.region("face").numpy()).all(1))[0].tolist())
    tid = ro.triangle_id.numpy()
    inner = ndimage.binary_erosion(tid >= 0, np.ones((1, 5, 5), bool))
    return inner & np.isin(tid, list(face))


def test_lighting_is_fixed_in_the_world(character):
    # Lambert only (ratio to the unshaded albedo = ambient + diffuse * max(n.l, 0)); the same seed
    # gives the same texture, so the per-pixel ratio is the shading alone.
    cfg = replace(SMALL, specular=0.0, hair_specular=0.0, size=96, frames=10)
    lit = synthetic_clip(character, cfg)
    flat = synthetic_clip(character, replace(cfg, ambient=1.0, diffuse=0.0))
    ro = _bare(character, lit)
    px = _face_pixels(character, ro)
    n = ro.normals.numpy()
    l = lit.light_dir
    world = cfg.ambient + cfg.diffuse * np.clip(n @ l, 0, None)
    # A light that turned with the head: l rotated by each frame's head rotation.
    from face3d.geometry.rotations import axis_angle_to_matrix

    R = axis_angle_to_matrix(torch.as_tensor(lit.rotation)).numpy()
    head = cfg.ambient + cfg.diffuse * np.clip(np.einsum("thwc,tc->thw", n, R @ l), 0, None)
    a, f = lit.frames.astype(float), flat.frames.astype(float)
    ok = px & (f.min(-1) > 40) & (a.max(-1) < 250)
    ratio = (a / np.maximum(f, 1)).mean(-1)
    turned = np.abs(np.degrees(lit.yaw_pitch_roll[:, 0])) > 15
    assert turned.sum() >= 3
    for t in np.nonzero(turned)[0]:
        m = ok[t]
        assert m.sum() > 100
        err_world = np.median(np.abs(ratio[t][m] - world[t][m]))
        err_head = np.median(np.abs(ratio[t][m] - head[t][m]))
        assert err_world < 0.03, (t, err_world)
        assert err_head > 0.06, (t, err_head)


def test_specular_highlight_follows_blinn_phong(character):
    cfg = replace(SMALL, size=96, frames=6, specular=0.5, shininess=16.0, hair_specular=0.0)
    shiny = synthetic_clip(character, cfg)
    matte = synthetic_clip(character, replace(cfg, specular=0.0))
    diff = (shiny.frames.astype(float) - matte.frames.astype(float)).mean(-1) / 255
    assert diff.min() > -2 / 255  # a specular term only adds light
    ro = _bare(character, shiny)
    n = ro.normals.numpy()
    S, f = cfg.size, shiny.focal
    j = (np.arange(S) - (S - 1) / 2) / f
    z = ro.depth.numpy()
    p = np.stack([np.broadcast_to(j[None, None, :], z.shape) * z, -np.broadcast_to(j[None, :, None], z.shape) * z, -z], -1)
    v = -p / np.maximum(np.linalg.norm(p, axis=-1, keepdims=True), 1e-9)
    h = shiny.light_dir + v
    h /= np.linalg.norm(h, axis=-1, keepdims=True)
    pred = 0.5 * np.clip((n * h).sum(-1), 0, None) ** 16 * ((n @ shiny.light_dir) > 0)
    m = _face_pixels(character, ro) & (shiny.frames.max(-1) < 250)
    assert pred[m].max() > 0.2  # a real highlight on the face
    assert np.median(np.abs(diff[m] - pred[m])) < 0.01
    strong = m & (pred > 0.1)
    assert np.abs(diff[strong] - pred[strong]).mean() < 0.03


def test_heldout_combinations_are_unseen_in_training(character):
    cfg = replace(SMALL, frames=60, size=16)
    c = synthetic_clip(character, cfg)
    nov = heldout_novelty(c)
    assert nov.shape == (60 - c.n_train,)
    assert nov.max() > 0.8
    assert (nov > 0.5).sum() >= 3
    # Training: each event at full strength only with a near-frontal head; held out: a full-
    # strength event with the head turned by (nearly) the full yaw amplitude.
    yaw = np.abs(np.degrees(c.yaw_pitch_roll[:, 0])) / cfg.yaw_deg
    strong = c.events.max(1) > 0.9
    assert yaw[: c.n_train][strong[: c.n_train]].max() < 0.35
    assert yaw[c.n_train:][strong[c.n_train:]].max() > 0.9
    # The expression coefficients carry the events (ARKit names of the character model).
    i = character.expression_index("mouthSmile_L")
    assert np.allclose(c.expression[:, i], EVENTS["smile"]["mouthSmile_L"] * c.events[:, c.event_names.index("smile")])
    assert c.jaw[:, 0].max() > 0.05
    blink = c.expression[:, character.expression_index("eyeBlink_L")]
    assert blink.max() > 0.9


def test_write_clip_roundtrip(character, tmp_path):
    from PIL import Image

    c = synthetic_clip(character, replace(SMALL, frames=3, size=32))
    out = write_clip(c, tmp_path / "clip")
    assert out == tmp_path / "clip"
    pngs = sorted((out / "frames").glob("*.png"))
    assert [p.name for p in pngs] == ["000000.png", "000001.png", "000002.png"]
    assert np.array_equal(np.asarray(Image.open(pngs[1])), c.frames[1])
    truth = np.load(out / "truth.npz")
    assert np.array_equal(truth["masks"], c.masks) and np.allclose(truth["rotation"], c.rotation)
    assert int(truth["n_train"]) == c.n_train and float(truth["focal"]) == c.focal
    assert (out / "clip.mp4").stat().st_size > 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="train_fraction"):
        SyntheticClipConfig(train_fraction=1.0)
    with pytest.raises(ValueError, match="events"):
        SyntheticClipConfig(events=("wink",))


# ------------------------------------------------------------------------------ masks


def _trimap(masks, erode, dilate):
    st = np.zeros((1, 3, 3), bool)
    st[0] = True
    inside = ndimage.binary_erosion(masks, st, iterations=erode)
    outside = ~ndimage.binary_dilation(masks, st, iterations=dilate)
    return inside, outside


def _iou(a, b):
    return (a & b).sum((1, 2)) / (a | b).sum((1, 2))


def test_foreground_masks_recover_the_true_mask(clip):
    inside, outside = _trimap(clip.masks, 4, 12)
    assert _iou(inside, clip.masks).max() < 0.9  # the band holds a real part of the head
    soft = foreground_masks(clip.frames, inside, outside)
    assert soft.shape == clip.masks.shape and soft.dtype == np.float32
    assert soft.min() >= 0 and soft.max() <= 1
    assert (soft[inside] == 1).all() and (soft[outside] == 0).all()
    iou = _iou(soft > 0.5, clip.masks)
    assert iou.min() >= 0.9, iou


def test_foreground_masks_drop_blobs_not_connected_to_inside(clip):
    frames = clip.frames.copy()
    inside, outside = _trimap(clip.masks, 4, 14)
    # A skin-coloured patch in the band but away from the head must not become foreground.
    band = ~inside & ~outside & ~ndimage.binary_dilation(clip.masks, np.ones((1, 9, 9), bool))
    t = 0
    ys, xs = np.nonzero(band[t])
    y, x = ys[len(ys) // 2], xs[len(xs) // 2]
    patch = (slice(max(y - 2, 0), y + 3), slice(max(x - 2, 0), x + 3))
    skin = clip.frames[t][ndimage.binary_erosion(inside[t], iterations=2)].mean(0)
    frames[t][patch] = skin.astype(np.uint8)
    band_patch = band[t][patch]
    soft = foreground_masks(frames, inside, outside, MaskConfig(prior_bias=3.0, distance_scale=1.0))
    assert (soft[t][patch][band_patch] < 0.5).all()


def test_foreground_masks_reject_bad_inputs(clip):
    f = clip.frames
    inside, outside = _trimap(clip.masks, 4, 12)
    with pytest.raises(ValueError, match=r"inside: expected a \(8, 80, 80\) bool"):
        foreground_masks(f, inside[:, :-1], outside)
    with pytest.raises(ValueError, match="outside: expected .* bool array .* got .* uint8"):
        foreground_masks(f, inside, outside.astype(np.uint8))
    with pytest.raises(ValueError, match=r"frames: expected a \(T, H, W, 3\) uint8"):
        foreground_masks(f.astype(np.float32), inside, outside)
    with pytest.raises(ValueError, match="disjoint"):
        foreground_masks(f, inside, outside | inside)
