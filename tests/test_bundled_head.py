"""The bundled default head (assets/builtin_head.npz, built from ICT-FaceKit by `face3d build-head`)."""
from __future__ import annotations

import copy
import re
import tarfile

import numpy as np
import pytest
import torch

from face3d.fileio import file_sha256
from face3d.models import BUILTIN_PATH, REQUIRED_REGIONS, MorphableModel, load_model
from face3d.models.ict import ICT_IBUG68, ICT_RANGES

from .conftest import REPO, SHARED

ICT_TARBALL = SHARED / "ict_facekit" / "FaceXModel.tar.xz"


@pytest.fixture(scope="module")
def model(builtin_model) -> MorphableModel:
    return builtin_model


@pytest.fixture(scope="module")
def model64(builtin_model) -> MorphableModel:
    return copy.deepcopy(builtin_model).double()


def _recorded_sha(name: str) -> str:
    text = (REPO / "assets" / "README.md").read_text()
    section = text.split(f"## {name}", 1)[1]
    return re.search(r"sha256: `([0-9a-f]{64})`", section).group(1)


def test_build_command_reproduces_the_committed_asset(tmp_path):
    from face3d.cli import main

    assert ICT_TARBALL.is_file(), f"the shared ICT-FaceKit folder is part of the test setup: {ICT_TARBALL}"
    with tarfile.open(ICT_TARBALL) as tar:
        tar.extractall(tmp_path, filter="data")
    out = tmp_path / "head.npz"
    assert main(["build-head", str(tmp_path / "FaceXModel"), "--out", str(out)]) == 0
    assert file_sha256(BUILTIN_PATH) == _recorded_sha("builtin_head.npz")
    if file_sha256(out) == file_sha256(BUILTIN_PATH):
        return  # byte for byte: the build machine's CPU (and any like it)
    # Another CPU's LAPACK/BLAS code paths round differently: on an AVX2-only AMD EPYC the build
    # differed only in 125 jaw skin weights of magnitude < 6e-14, by < 2e-19. Everything else must
    # be identical, and floats within 1e-12 absolute (a real change to the build moves far more).
    got, want = np.load(out, allow_pickle=False), np.load(BUILTIN_PATH, allow_pickle=False)
    assert sorted(got.files) == sorted(want.files)
    for k in want.files:
        a, b = got[k], want[k]
        assert a.shape == b.shape and a.dtype == b.dtype, k
        if a.dtype.kind == "f":
            assert np.abs(a.astype(np.float64) - b).max() <= 1e-12, k
        else:
            assert np.array_equal(a, b), k


def test_contents_budget_and_licence(model):
    assert model.name == "builtin" and load_model().name == "builtin"  # the default
    assert (model.n_vertices, model.n_identity, model.n_expression) == (24591, 100, 53)
    assert BUILTIN_PATH.stat().st_size <= 20 * 2**20
    assert "MIT" in (REPO / "assets" / "ICT-FaceKit-LICENSE").read_text()
    assert set(REQUIRED_REGIONS) | {"iris", "iris_disk_left", "sclera_left", "teeth"} <= set(model.regions)
    assert torch.equal(model.landmarks["ibug68"].vertex_ids[:, 0], torch.tensor(ICT_IBUG68))
    # the shader-only meshes (lacrimal fluid, eye blend/occlusion, eyelashes) are gone
    assert model.n_vertices == ICT_RANGES["lacrimal_fluid"][0] and int(model.faces.max()) == model.n_vertices - 1
    assert model.albedo.shape == (model.n_vertices, 3) and 0 <= float(model.albedo.min()) <= float(model.albedo.max()) <= 1


def test_compact_model_matches_the_full_ict_model(model):
    """The int16 bases differ from ICT's by rounding only (checked against the shared sample)."""
    from face3d.models.ict import load_ict

    sample = SHARED / "ict_facekit_sample"
    assert sample.is_dir(), f"the shared ICT sample is part of the test setup: {sample}"
    full = load_ict(sample)
    ids = torch.arange(model.n_vertices)
    assert torch.allclose(model.template, full.template[ids], atol=1e-4)
    for k in range(full.n_identity):
        assert (model.identity_basis[:, :, k] - full.identity_basis[ids, :, k]).abs().max() <= 2.0**-10 + 1e-6
    for k, name in enumerate(full.expression_names):
        d = model.expression_basis[:, :, model.expression_index(name)] - full.expression_basis[ids, :, k]
        assert d.abs().max() <= 2.0**-10 + 1e-6, name


def test_forward_shapes_and_gradients(model64):
    m = model64
    g = torch.Generator().manual_seed(0)
    jaw = (torch.rand(1, 3, generator=g, dtype=torch.float64) * 0.2).requires_grad_(True)
    neck = (torch.randn(1, 3, generator=g, dtype=torch.float64) * 0.1).requires_grad_(True)
    ident = (torch.randn(1, 3, generator=g, dtype=torch.float64)).requires_grad_(True)
    lips = m.region("lips")[:50]

    def f(jaw, neck, ident):
        z = torch.cat([ident, torch.zeros(1, m.n_identity - 3, dtype=torch.float64)], 1)
        return m(identity=z, jaw=jaw, neck=neck).vertices[:, lips]

    assert f(jaw, neck, ident).shape == (1, 50, 3)
    assert torch.autograd.gradcheck(f, (jaw, neck, ident), eps=1e-6, atol=1e-6)
    out = m(identity=torch.zeros(2, m.n_identity, dtype=torch.float64))
    assert out.vertices.shape == (2, m.n_vertices, 3) and out.skull_transform.shape == (2, 4, 4)


def test_every_expression_leaves_scalp_back_unmoved(model):
    sb = model.region("scalp_back")
    assert len(sb) > 500
    assert model.expression_basis[sb].abs().max() < 0.01  # mm, at weight 1, every expression
    assert torch.equal(model.skin_weights[sb, 1], torch.ones(len(sb)))
    sk = model.region("skull")
    assert sk.numel() > 5000 and torch.isin(sb, sk).all()


def test_jaw_rotation_opens_the_mouth_like_jaw_open(model):
    lm0 = model.landmark_positions(model().vertices)[0]
    out = model(jaw=torch.tensor([[0.3, 0.0, 0.0]]))
    lm = model.landmark_positions(out.vertices)[0]
    assert float((lm[66] - lm[62]).norm()) > (lm0[66] - lm0[62]).norm() + 15.0  # inner lips part
    assert lm[8, 1] < lm0[8, 1] - 15.0  # the chin drops
    # the eyes stay: only ICT's own jawOpen stretch of the lower lids (< 0.1 mm) reaches them
    assert (lm[36:48] - lm0[36:48]).norm(dim=1).max() < 0.2
    teeth = model.region("teeth")
    moved = (out.vertices[0, teeth] - model.template[teeth]).norm(dim=1)
    upper, lower = moved < 1e-3, moved > 5.0
    assert upper.sum() > 1000 and lower.sum() > 1000  # upper teeth stay with the skull, lower ones swing
    # the jaw joint reproduces ICT's own jawOpen at the rotation measured in it (25.3 degrees)
    e = torch.zeros(1, model.n_expression)
    e[0, model.expression_index("jawOpen")] = 1.0
    blend = model(expression=e).vertices
    rot = model(jaw=torch.tensor([[np.radians(25.33), 0.0, 0.0]])).vertices
    assert (blend - rot).norm(dim=-1).max() < 0.5


def test_eyes_rotate_rigidly_and_neck_carries_the_skull(model64):
    m = model64
    out = m(eyes=torch.tensor([[0.3, 0.2, 0.0, -0.1, 0.4, 0.0]], dtype=torch.float64),
            neck=torch.tensor([[0.2, 0.5, 0.1]], dtype=torch.float64))
    for name, j in (("eye_left", 3), ("eye_right", 4)):
        ids = m.region(name)
        rest, posed = m.template[ids], out.vertices[0, ids]
        def pairwise(p):
            return (p[:200, None] - p[None, :200]).norm(dim=-1)

        assert torch.allclose(pairwise(posed), pairwise(rest), atol=1e-9)
        c = m.joint_regressor[j] @ m.template
        assert torch.allclose((posed - out.joints[0, j]).norm(dim=1), (rest - c).norm(dim=1), atol=1e-6)
    sk = m.region("scalp_back")
    T = out.skull_transform[0]
    assert torch.allclose(m.template[sk] @ T[:3, :3].T + T[:3, 3], out.vertices[0, sk], atol=1e-6)
    assert (out.vertices[0, sk] - m.template[sk]).norm(dim=1).mean() > 10.0


def test_dimensions_and_iris_are_human(model):
    lm = model.landmark_positions(model.template[None])[0]
    J = model.joint_regressor @ model.template
    assert 55.0 < float((J[3] - J[4]).norm()) < 70.0  # interpupillary distance, mm
    assert 100.0 < float((lm[27] - lm[8]).norm()) < 130.0  # nasion to menton
    for side in ("left", "right"):
        iris = model.template[model.region(f"iris_disk_{side}")]
        width = float(iris[:, 0].max() - iris[:, 0].min())
        assert 10.0 < width < 12.5, width  # the visible iris, about 11.7 mm across


def test_albedo_paints_lips_brows_and_eyes(model):
    a = model.albedo
    lm_ids = model.landmarks["ibug68"].vertex_ids[:, 0]
    cheek, lip, brow = a[lm_ids[2]], a[model.region("lips")].mean(0), a[lm_ids[19]]
    assert lip[0] - lip[1] > cheek[0] - cheek[1] + 0.05  # lips redder than skin
    assert brow.sum() < cheek.sum() - 0.5  # brows darker
    assert a[model.region("teeth")].mean() > 0.8
    iris = a[model.region("iris_disk_left")]
    assert iris.mean() < 0.4 < a[model.region("sclera_left")].mean()
    # symmetric: mirrored landmarks (eye corners, mouth corners, nostrils, cheeks) get one colour
    assert torch.allclose(a[lm_ids[[36, 39, 48, 31, 2]]], a[lm_ids[[45, 42, 54, 35, 14]]], atol=0.02)
