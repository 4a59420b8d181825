"""The committed sketch weights (assets/sketch_builtin.pt) on held-out drawings, editing, the
API's errors and the `avatars sketch` command."""
from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest
import torch

from avatars.sketch import SketchInputError, SketchModeler, edit_region
from avatars.sketch.api import DEFAULT_WEIGHTS
from avatars.sketch.evaluate import face_metrics
from avatars.sketch.train import make_drawings

from .conftest import REPO


@pytest.fixture(scope="module")
def held_out(builtin_model):
    # Seeds never used in training (heads 0, strokes 100): unseen heads, unseen strokes.
    return make_drawings(builtin_model, 6, 1, seed=4242, style_seed=4343, log=None)


def test_weights_checksum_is_recorded():
    text = (REPO / "assets" / "README.md").read_text()
    sec = text.split("## sketch_builtin.pt", 1)[1]
    want = re.search(r"sha256: `([0-9a-f]{64})`", sec).group(1)
    assert hashlib.sha256(DEFAULT_WEIGHTS.read_bytes()).hexdigest() == want


def test_committed_weights_beat_the_mean_head(sketch_modeler, held_out, builtin_model):
    mean_v = builtin_model().vertices[0]
    mean, coarse, fine = [], [], []
    for k in range(held_out.ink.shape[0]):
        true = held_out.vertices[held_out.head[k]].float()
        res = sketch_modeler.from_ink(held_out.ink[k].float() / 255)
        mean.append(face_metrics(builtin_model, mean_v, true).chamfer_mm)
        coarse.append(face_metrics(builtin_model, res.coarse_vertices, true).chamfer_mm)
        fine.append(face_metrics(builtin_model, res.vertices, true).chamfer_mm)
        assert res.vertices.shape == (builtin_model.n_vertices, 3)
        assert res.identity.shape == (1, builtin_model.n_identity) and res.expression.shape == (1, builtin_model.n_expression)
    assert np.mean(coarse) < 0.75 * np.mean(mean), (np.mean(mean), np.mean(coarse))
    # The trained fine stage does not yet lower the error on held-out drawings (see
    # docs/performance.md, "Sketch to mesh"); this only guards that it does not spoil the coarse
    # mesh. Its mesh update is tested with known maps in test_sketch_fine.py.
    assert np.mean(fine) < 1.02 * np.mean(coarse), (np.mean(coarse), np.mean(fine))


def test_local_edit_changes_only_its_region(sketch_modeler, held_out):
    a = held_out.ink[0].float() / 255
    res = sketch_modeler.from_ink(a)
    # Re-draw the mouth area with the strokes of another head.
    b = a.clone()
    region = torch.zeros(128, 128, dtype=torch.bool)
    region[80:110, 40:88] = True
    b[:, region] = held_out.ink[3].float()[:, region] / 255
    edited = edit_region(sketch_modeler, res, b, region)
    from avatars.sketch.editing import region_vertices

    mask = region_vertices(res.render.camera, res.vertices, region, sketch_modeler.editable)
    assert int(mask.sum()) > 100
    assert bool((edited.vertices[~mask] == res.vertices[~mask]).all())
    assert float((edited.vertices[mask] - res.vertices[mask]).norm(dim=-1).max()) > 0.1
    # Without a region, the changed strokes define it.
    again = edit_region(sketch_modeler, res, b)
    assert bool((again.vertices[~sketch_modeler.editable] == res.vertices[~sketch_modeler.editable]).all())


def test_bad_drawings_raise_instead_of_a_mean_head(sketch_modeler, tmp_path):
    with pytest.raises(SketchInputError, match="blank"):
        sketch_modeler(np.full((300, 300), 250, np.uint8))
    from skimage.data import astronaut

    with pytest.raises(SketchInputError, match="photo"):
        sketch_modeler(astronaut())
    p = tmp_path / "x.png"
    p.write_text("not a png")
    with pytest.raises(SketchInputError):
        sketch_modeler(p)


def test_sketch_command_writes_a_mesh(tmp_path, builtin_model):
    from PIL import Image

    from avatars.cli import main
    from avatars.sketch import drawing as dr
    from face3d.geometry.mesh_io import load_mesh

    cam = dr.drawing_camera(builtin_model)
    layers = dr.stroke_layers(builtin_model.template[None], dr.drawing_faces(builtin_model), cam,
                              labels=dr.model_labels(builtin_model))
    img = (dr.stylize(layers, 7)[0].numpy() * 255).astype(np.uint8)
    path = tmp_path / "drawing.png"
    Image.fromarray(img).resize((500, 500)).save(path)
    out = tmp_path / "head.obj"
    assert main(["sketch", str(path), "--out", str(out), "--coefficients", str(tmp_path / "c.json")]) == 0
    mesh = load_mesh(out)
    assert mesh.vertices.shape == (builtin_model.n_vertices, 3)
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((64, 64, 3), 255, np.uint8)).save(blank)
    assert main(["sketch", str(blank), "--out", str(tmp_path / "b.obj")]) == 2
    assert not (tmp_path / "b.obj").exists()


def test_weights_of_another_fine_output_are_refused(tmp_path, builtin_model):
    # Weights whose fine network predicted absolute maps (before it predicted the change from
    # the coarse render) would load and silently give wrong normals.
    from avatars.sketch.api import save_weights
    from avatars.sketch.coarse import CoarseNet
    from avatars.sketch.fine import FineNet

    m = builtin_model
    path = tmp_path / "w.pt"
    save_weights(path, m, CoarseNet(m.n_identity, m.n_expression), FineNet(4))
    SketchModeler.load(path, model=m)
    ck = torch.load(path, weights_only=False)
    del ck["fine_output"]
    torch.save(ck, path)
    with pytest.raises(ValueError, match="retrain"):
        SketchModeler.load(path, model=m)
