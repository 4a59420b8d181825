"""The fine stage's mesh update (avatars.sketch.fine.refine_mesh) on cases with known maps."""
from __future__ import annotations

import pytest
import torch

from avatars.sketch import drawing as dr
from avatars.sketch.evaluate import face_metrics
from avatars.sketch.fine import FineNet, refine_mesh, render_coarse
from avatars.sketch.train import coarse_camera


@pytest.fixture(scope="module")
def bumped(character_model):
    """A character head with a bump on the cheek and a dent on the brow: no identity or
    expression of the model makes them (the linear head is the 'coarse' fit)."""
    from face3d.geometry.normals import vertex_normals

    m = character_model
    lin = m.template
    face = m.region_mask("face")
    lo, hi = lin[face].min(0).values, lin[face].max(0).values
    c1 = torch.tensor([lo[0] * 0.45, (lo[1] + hi[1]) / 2, hi[2]])
    c2 = torch.tensor([hi[0] * 0.3, lo[1] + 0.8 * (hi[1] - lo[1]), hi[2]])
    r = float((hi - lo)[:2].max()) * 0.12
    d = 3.0 * torch.exp(-((lin - c1)[:, :2].pow(2).sum(-1)) / r**2) - 2.5 * torch.exp(-((lin - c2)[:, :2].pow(2).sum(-1)) / r**2)
    d = d * face.float()
    true = lin + d[:, None] * vertex_normals(lin, m.faces)
    return m, lin, true


def test_refine_recovers_detail_the_linear_model_cannot(bumped):
    m, lin, true = bumped
    faces = dr.drawing_faces(m)
    cam = coarse_camera(m, lin)
    target = render_coarse(true, faces, cam)
    before = face_metrics(m, lin, true).chamfer_mm
    out = refine_mesh(lin, faces, cam, target.depth, target.normals, m.region_mask("face"))
    after = face_metrics(m, out, true).chamfer_mm
    assert before > 0.2
    assert after < 0.5 * before, (before, after)


def test_refine_keeps_a_mesh_given_its_own_maps(bumped):
    m, lin, _ = bumped
    faces = dr.drawing_faces(m)
    cam = coarse_camera(m, lin)
    own = render_coarse(lin, faces, cam)
    out = refine_mesh(lin, faces, cam, own.depth, own.normals, m.region_mask("face"), coarse=own)
    assert float((out - lin).norm(dim=-1).max()) < 1e-3


def test_refine_moves_only_editable_vertices(bumped):
    m, lin, true = bumped
    faces = dr.drawing_faces(m)
    cam = coarse_camera(m, lin)
    target = render_coarse(true, faces, cam)
    editable = m.region_mask("face") & (lin[:, 0] < 0)
    out = refine_mesh(lin, faces, cam, target.depth, target.normals, editable)
    assert bool((out[~editable] == lin[~editable]).all())
    assert float((out[editable] - lin[editable]).norm(dim=-1).max()) > 0.5
    with pytest.raises(ValueError, match="bool mask"):
        refine_mesh(lin, faces, cam, target.depth, target.normals, editable.float())


def test_fine_net_shapes_and_bad_input():
    net = FineNet(8)
    y = net(torch.zeros(2, 8, 32, 48))
    assert y.shape == (2, 4, 32, 48)
    with pytest.raises(ValueError, match="expected shape"):
        net(torch.zeros(1, 3, 32, 32))
