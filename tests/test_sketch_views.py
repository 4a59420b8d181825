"""Detail drawings from side views (avatars.sketch.views)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from avatars.sketch import SketchInputError
from avatars.sketch import drawing as dr
from avatars.sketch.evaluate import face_metrics
from avatars.sketch.fine import render_coarse
from avatars.sketch.train import coarse_camera, make_drawings
from avatars.sketch.views import add_detail, add_synthetic_details, synthetic_detail_inks, view_frame, view_image

CLEAN = dr.StyleConfig(wobble_px=0.0, gap_rate=0.0, missing_rate=0.0, overstroke_p=0.0, thick_p=0.0, paper_p=0.0,
                       grey_p=0.0)


@pytest.fixture(scope="module")
def held_out(builtin_model):
    # Seeds never used in training: unseen heads, unseen strokes.
    return make_drawings(builtin_model, 6, 1, seed=5151, style_seed=5252, log=None)


def test_the_front_view_is_the_fine_stage_frame(builtin_model):
    v = builtin_model.template
    _, cam = view_frame(builtin_model, v, 0.0)
    assert torch.allclose(cam.K, coarse_camera(builtin_model, v).K)
    assert torch.allclose(cam.R, coarse_camera(builtin_model, v).R)


def test_detail_strokes_lie_on_the_frame_meshs_silhouette(builtin_model):
    """A head's side drawing read in its own frame: the black ink lies on the head's render there.
    Read in the frame of the other side, it does not (so the test can fail)."""
    v = builtin_model.template
    gen = torch.Generator().manual_seed(0)

    def on_mask(draw_yaw: float, frame_yaw: float) -> float:
        ink, cams = synthetic_detail_inks(builtin_model, v[None], v[None], torch.tensor([draw_yaw]), gen, CLEAN)
        if frame_yaw != draw_yaw:
            _, cam = view_frame(builtin_model, v, frame_yaw)
        else:
            cam = cams[0]
        mask = render_coarse(v, dr.drawing_faces(builtin_model), cam).mask
        near = F.max_pool2d(mask.float()[None, None], 3, 1, 1)[0, 0] > 0
        black = ink[0, 0] > 0.5
        return float((black & near).sum() / black.sum())

    assert on_mask(50.0, 50.0) > 0.97
    assert on_mask(50.0, -50.0) < 0.9


def test_add_detail_moves_only_editable_vertices_and_rejects_bad_pages(sketch_modeler, held_out, builtin_model):
    true = held_out.vertices[held_out.head[0]].float()
    res = sketch_modeler.from_ink(held_out.ink[0].float() / 255)
    gen = torch.Generator().manual_seed(1)
    ink, _ = synthetic_detail_inks(builtin_model, true[None], res.coarse_vertices[None], torch.tensor([45.0]), gen)
    editable = sketch_modeler.editable & (builtin_model.template[:, 0] > 0)  # the subject's left half of the face
    out = add_detail(sketch_modeler, res, ink[0], 45.0, editable=editable)
    assert bool((out.vertices[~editable] == res.vertices[~editable]).all())
    assert float((out.vertices[editable] - res.vertices[editable]).norm(dim=-1).max()) > 0.1
    assert out.ink is res.ink and out.coarse_vertices is res.coarse_vertices  # the front drawing's frame is kept
    with pytest.raises(SketchInputError, match="blank"):
        add_detail(sketch_modeler, res, np.full((400, 400), 250, np.uint8), 45.0)
    with pytest.raises(ValueError, match="square"):
        add_detail(sketch_modeler, res, np.full((400, 300), 250, np.uint8), 45.0)
    with pytest.raises(ValueError, match="80"):
        add_detail(sketch_modeler, res, ink[0], 95.0)
    page = view_image(sketch_modeler, res, -45.0, size=256)
    assert page.shape == (256, 256, 3) and page.dtype == np.uint8
    assert (page < 250).any(axis=-1).mean() > 0.2  # the head is on the page


def test_committed_weights_use_side_detail_drawings(sketch_modeler, held_out, builtin_model):
    """Two side detail drawings of the held-out head lower the face error of the front result."""
    gen = torch.Generator().manual_seed(2)
    coarse, detail = [], []
    for k in range(held_out.ink.shape[0]):
        true = held_out.vertices[held_out.head[k]].float()
        res = sketch_modeler.from_ink(held_out.ink[k].float() / 255)
        out, _ = add_synthetic_details(sketch_modeler, res, true, (-45.0, 45.0), gen)
        coarse.append(face_metrics(builtin_model, res.coarse_vertices, true).chamfer_mm)
        detail.append(face_metrics(builtin_model, out.vertices, true).chamfer_mm)
    assert np.mean(detail) < 0.93 * np.mean(coarse), (np.mean(coarse), np.mean(detail))


def test_sketch_command_takes_detail_drawings(tmp_path, builtin_model):
    from PIL import Image

    from avatars.cli import main
    from avatars.sketch.views import view_camera
    from face3d.geometry.mesh_io import load_mesh

    v = builtin_model.template[None]
    faces, labels = dr.drawing_faces(builtin_model), dr.model_labels(builtin_model)
    front = dr.stylize(dr.stroke_layers(v, faces, dr.drawing_camera(builtin_model), labels=labels), 7)[0]
    Image.fromarray((front.numpy() * 255).astype(np.uint8)).save(tmp_path / "front.png")
    side = dr.stylize(dr.stroke_layers(v, faces, view_camera(builtin_model, 45.0, size=400), labels=labels), 8)[0]
    Image.fromarray((side.numpy() * 255).astype(np.uint8)).save(tmp_path / "side.png")
    assert main(["sketch", str(tmp_path / "front.png"), "--out", str(tmp_path / "a.obj"),
                 "--views-out", str(tmp_path / "views")]) == 0
    assert sorted(p.name for p in (tmp_path / "views").iterdir()) == ["view_+45.png", "view_-45.png"]
    assert main(["sketch", str(tmp_path / "front.png"), "--out", str(tmp_path / "b.obj"),
                 "--detail", f"{tmp_path / 'side.png'}@45"]) == 0
    a, b = load_mesh(tmp_path / "a.obj").vertices, load_mesh(tmp_path / "b.obj").vertices
    assert np.abs(a - b).max() > 0.1
    assert main(["sketch", str(tmp_path / "front.png"), "--out", str(tmp_path / "c.obj"), "--detail", "side.png"]) == 2
    assert main(["sketch", str(tmp_path / "front.png"), "--out", str(tmp_path / "c.obj"),
                 "--detail", f"{tmp_path / 'side.png'}@120"]) == 2
    assert not (tmp_path / "c.obj").exists()


def test_page_session_side_view_adds_detail_and_keeps_it(sketch_modeler, builtin_model, tmp_path):
    """What the page runs (SketchSession, no browser): turn to a side view, strokes drawn over its
    picture move only face vertices, and back at the front the same drawing keeps the detail."""
    from avatars.sketch.app import PAGE, SketchSession, _strokes

    v = builtin_model.template[None]
    faces, labels = dr.drawing_faces(builtin_model), dr.model_labels(builtin_model)
    front = (dr.stylize(dr.stroke_layers(v, faces, dr.drawing_camera(builtin_model, size=PAGE), labels=labels), 7)[0]
             .numpy() * 255).astype(np.uint8)
    s = SketchSession(sketch_modeler, tmp_path)
    _, status = s.set_view(45.0, None)
    assert "front view first" in status and s.yaw == 0.0
    glb, obj, status = s.update(front, False)
    assert "whole head" in status and obj is not None
    front_value = {"composite": front}  # what the editor held
    value, status = s.set_view(45.0, front_value)
    assert s.yaw == 45.0 and "side view" in status and value["background"].shape == (PAGE, PAGE, 3)
    before = s.result.vertices.clone()
    assert _strokes(value, s.page) is None  # nothing drawn yet
    # Strokes over the picture: the turned head's own side drawing, in black where it has ink.
    from avatars.sketch.views import view_camera

    side = dr.stylize(dr.stroke_layers(v, faces, view_camera(builtin_model, 45.0, size=PAGE), labels=labels), 8, CLEAN)[0]
    comp = s.page.copy()
    comp[side.numpy().min(-1) < 0.5] = 0
    glb, obj, status = s.detail(_strokes({"composite": comp}, s.page))
    assert "detail" in status and obj is not None
    moved = (s.result.vertices - before).norm(dim=-1) > 0
    assert int(moved.sum()) > 100 and not bool(moved[~sketch_modeler.editable].any())
    detailed = s.result.vertices.clone()
    value, status = s.set_view(0.0, value)
    assert s.yaw == 0.0 and value is front_value
    _, _, status = s.update(front, False)
    assert "unchanged" in status and torch.equal(s.result.vertices, detailed)
