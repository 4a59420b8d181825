"""The procedural character head (assets/character_head.npz, model "character"): dimensions, rig,
bases, landmarks, regions."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from face3d.models import REQUIRED_REGIONS, CHARACTER_PATH, MorphableModel

REQUIRED_EXPRESSIONS = (
    "jawOpen", "mouthClose", "mouthFunnel", "mouthPucker", "mouthSmile_L", "mouthSmile_R", "mouthFrown_L",
    "mouthFrown_R", "mouthStretch_L", "mouthStretch_R", "mouthRollLower", "mouthRollUpper", "cheekPuff",
    "browInnerUp", "browDown_L", "browDown_R", "browOuterUp_L", "browOuterUp_R", "eyeBlink_L", "eyeBlink_R",
    "eyeSquint_L", "eyeSquint_R", "noseSneer_L", "noseSneer_R",
)
BROW_NOSE = ("browInnerUp", "browDown_L", "browDown_R", "browOuterUp_L", "browOuterUp_R", "noseSneer_L", "noseSneer_R")


@pytest.fixture(scope="module")
def model(character_model) -> MorphableModel:
    return character_model


@pytest.fixture(scope="module")
def model64(character_model) -> MorphableModel:
    import copy

    return copy.deepcopy(character_model).double()


def _breadth(v: torch.Tensor, skin: torch.Tensor) -> float:
    """Maximum head breadth (euryon to euryon) above the ears, mm."""
    s = v[skin]
    s = s[s[:, 1] > 20.0]
    return float(s[:, 0].max() - s[:, 0].min())


def test_loads_with_required_contents(model):
    assert isinstance(model, MorphableModel)
    assert model.n_vertices >= 5000
    assert model.n_identity >= 40 and model.n_expression >= 20
    assert torch.equal(model.identity_std, torch.ones(model.n_identity))
    assert torch.allclose(model.expression_std, torch.full((model.n_expression,), 0.5))
    assert set(REQUIRED_EXPRESSIONS) <= set(model.expression_names)
    assert set(REQUIRED_REGIONS) <= set(model.regions)
    assert len(model.landmarks["ibug68"]) == 68 and len(model.landmarks["now7"]) == 7
    assert model.uvs.min() >= 0 and model.uvs.max() <= 1 and model.uv_faces.shape == model.faces.shape
    assert CHARACTER_PATH.stat().st_size <= 10 * 2**20


def test_skin_uv_layout_has_no_flipped_or_seam_stretched_triangles(model):
    skin = torch.zeros(model.n_vertices, dtype=torch.bool)
    skin[model.region("skin")] = True
    fs = skin[model.faces].all(1)
    uv = model.uvs[model.uv_faces[fs]]  # (F, 3, 2)
    e1, e2 = uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0]
    area = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    assert torch.all(area > 0)  # counter-clockwise in UV like in 3-D: no mirrored or wrapped faces
    span = (uv.max(1).values - uv.min(1).values)[:, 0]
    off_pole = uv[:, :, 1].max(1).values < 0.999  # the crown pole's fan (v = 1) spans all of u
    assert float(span[off_pole].max()) < 0.1  # no triangle is stretched across the seam


def test_dimensions_are_adult_mm(model):
    out = model()
    v = out.vertices[0]
    lm = model.landmark_positions(out.vertices, "ibug68")[0]
    assert abs(_breadth(v, model.region("skin")) - 150.0) < 8.0
    nasion_menton = float((lm[27] - lm[8]).norm())
    assert abs(nasion_menton - 120.0) < 10.0, nasion_menton
    ipd = float((out.joints[0, 3] - out.joints[0, 4]).norm())
    assert abs(ipd - 63.0) < 2.0, ipd
    # head length: glabella (front-most point of the midline at brow height) to opisthocranion
    mid = v[(v[:, 0].abs() < 4) & ((v[:, 1] - 13).abs() < 6)]
    length = float(mid[:, 2].max() - v[model.region("skin")][:, 2].min())
    assert abs(length - 190.0) < 10.0, length
    # the head is centred near the origin so a camera at z = +500..600 mm frames it
    skull = v[model.region("skin")]
    skull = skull[skull[:, 1] > -120]
    centre = (skull.max(0).values + skull.min(0).values) / 2
    assert centre.abs().max() < 20.0


def test_landmark_layout_is_ibug_order(model):
    lm = model.landmark_positions(model.template[None])[0]
    x, y, z = lm[:, 0], lm[:, 1], lm[:, 2]
    assert torch.all(x[:8] < 0) and torch.all(x[9:17] > 0) and y[8] == y[:17].min()  # jaw: right -> chin -> left
    assert torch.all(x[17:22] < 0) and torch.all(x[22:27] > 0)  # brows
    assert torch.all(x[36:42] < 0) and torch.all(x[42:48] > 0)  # right eye then left eye
    assert x[36] < x[39] < x[42] < x[45]  # outer/inner corners, image left to right
    assert y[37] > y[41] and y[43] > y[47]  # upper lid above lower lid (eyes open)
    assert int(z.argmax()) == 30  # nose tip is the front-most landmark
    assert x[48] < x[51] < x[54] and y[51] > y[62] and y[57] < y[66]
    assert torch.allclose(lm[62], lm[66], atol=1e-4)  # lips closed in the neutral pose
    now = model.landmark_positions(model.template[None], "now7")[0]
    assert torch.allclose(now, lm[[36, 39, 42, 45, 33, 48, 54]])


def test_forward_shapes_and_gradients(model64):
    m = model64
    g = torch.Generator().manual_seed(0)
    B = 2
    inputs = {
        "identity": torch.randn(B, m.n_identity, generator=g, dtype=torch.float64) * 0.5,
        "expression": torch.rand(B, m.n_expression, generator=g, dtype=torch.float64) * 0.5,
        "neck": torch.randn(B, 3, generator=g, dtype=torch.float64) * 0.1,
        "jaw": torch.rand(B, 3, generator=g, dtype=torch.float64) * 0.1,
        "eyes": torch.randn(B, 6, generator=g, dtype=torch.float64) * 0.1,
        "rotation": torch.randn(B, 3, generator=g, dtype=torch.float64) * 0.1,
        "translation": torch.randn(B, 3, generator=g, dtype=torch.float64) * 10,
    }
    for t in inputs.values():
        t.requires_grad_(True)
    out = m(**inputs)
    assert out.vertices.shape == (B, m.n_vertices, 3) and out.joints.shape == (B, 5, 3)
    assert out.joint_transforms.shape == (B, 5, 4, 4) and out.skull_transform.shape == (B, 4, 4)
    target = torch.randn(out.vertices.shape, generator=g, dtype=torch.float64)
    (out.vertices * target).sum().backward()
    for k, t in inputs.items():
        assert torch.isfinite(t.grad).all(), k
        assert t.grad.abs().max() > 1e-6, k


def test_expressions_never_move_scalp_back(model):
    sb = model.region("scalp_back")
    assert len(sb) > 500
    assert torch.count_nonzero(model.expression_basis[sb]) == 0
    g = torch.Generator().manual_seed(1)
    e = torch.rand(4, model.n_expression, generator=g)
    shaped = model(expression=e).shaped
    assert torch.equal(shaped[:, sb], model.template[sb].expand(4, -1, -1))
    # skull vertices are 100% on the head joint
    assert torch.equal(model.skin_weights[sb, 1], torch.ones(len(sb)))


def test_brow_and_nose_expressions_slide_upper_face(model):
    uf = model.region("upper_face")
    for name in BROW_NOSE:
        d = model.expression_basis[uf, :, model.expression_index(name)].norm(dim=1)
        assert 1.0 < float(d.max()) < 12.0, (name, float(d.max()))
    inner = model.expression_basis[uf, 1, model.expression_index("browInnerUp")]
    assert 5.0 <= float(inner.max()) <= 9.0  # forehead skin rises by a realistic amount


def test_skull_follows_head_joint(model64):
    m = model64
    g = torch.Generator().manual_seed(2)
    B = 3
    out = m(
        identity=torch.randn(B, m.n_identity, generator=g, dtype=torch.float64),
        expression=torch.rand(B, m.n_expression, generator=g, dtype=torch.float64),
        neck=torch.randn(B, 3, generator=g, dtype=torch.float64) * 0.4,
        jaw=torch.rand(B, 3, generator=g, dtype=torch.float64) * 0.3,
        rotation=torch.randn(B, 3, generator=g, dtype=torch.float64) * 0.5,
        translation=torch.randn(B, 3, generator=g, dtype=torch.float64) * 50,
    )
    sb = m.region("scalp_back")
    T = out.skull_transform
    expect = torch.einsum("bij,bvj->bvi", T[:, :3, :3], out.shaped[:, sb]) + T[:, None, :3, 3]
    assert (expect - out.vertices[:, sb]).abs().max() < 1e-4
    assert torch.equal(T, out.joint_transforms[:, 1])


def test_jaw_rotation_opens_the_mouth(model):
    lm0 = model.landmark_positions(model().vertices)[0]
    out = model(jaw=torch.tensor([[0.3, 0.0, 0.0]]))
    lm = model.landmark_positions(out.vertices)[0]
    gap = (lm[65:68] - lm[[63, 62, 61]]).norm(dim=1)
    assert torch.all(gap > 5.0), gap
    assert lm[66, 1] < lm0[66, 1] - 5.0  # the lower lip moves down
    assert (lm[62] - lm0[62]).norm() < 0.5  # the upper lip stays with the skull
    assert (lm[36:48] - lm0[36:48]).norm(dim=1).max() < 1e-3  # eyes do not move with the jaw


def test_expressions_are_local(model):
    x = model.template[:, 0]
    E = model.expression_basis
    for name, other in (("eyeBlink_L", x < -10), ("eyeBlink_R", x > 10), ("mouthSmile_L", x < -10),
                        ("browDown_R", x > 10), ("noseSneer_L", x < -10)):
        d = E[:, :, model.expression_index(name)]
        assert torch.count_nonzero(d[other]) == 0, name
        assert d.norm(dim=1).max() > 2.0, name
    # a blink closes the lids: upper and lower lid landmarks meet
    e = torch.zeros(1, model.n_expression)
    e[0, model.expression_index("eyeBlink_L")] = 1.0
    lm = model.landmark_positions(model(expression=e).vertices)[0]
    assert (lm[[43, 44]] - lm[[47, 46]]).norm(dim=1).max() < 1.0
    assert (lm[[37, 38]] - lm[[41, 40]]).norm(dim=1).min() > 5.0  # right eye still open


def test_joints_ignore_expressions_and_eyeballs_are_rigid(model):
    J = model.joint_regressor
    assert torch.allclose(J.sum(1), torch.ones(5), atol=1e-5)
    assert (J @ model.expression_basis.reshape(model.n_vertices, -1)).abs().max() < 1e-4
    assert torch.allclose(model.skin_weights.sum(1), torch.ones(model.n_vertices), atol=1e-6)
    for name, j in (("eyeball_left", 3), ("eyeball_right", 4)):
        ids = model.region(name)
        assert torch.equal(model.skin_weights[ids, j], torch.ones(len(ids)))
        z = torch.randn(1, model.n_identity, generator=torch.Generator().manual_seed(3)) * 3
        out = model(identity=z)
        r = (out.vertices[0, ids] - out.joints[0, j]).norm(dim=1)
        assert torch.allclose(r, torch.full_like(r, 12.0), atol=0.01)


def test_identity_extremes_change_breadth_and_stay_plausible(model):
    skin = model.region("skin")
    b0 = _breadth(model.template, skin)
    z = torch.zeros(2, model.n_identity)
    z[0, 1], z[1, 1] = 3.0, -3.0  # component 1: head breadth
    v = model(identity=z).vertices
    assert _breadth(v[0], skin) > b0 + 8.0 and _breadth(v[1], skin) < b0 - 8.0
    z = torch.zeros(2, model.n_identity)
    z[0, 0], z[1, 0] = 3.0, -3.0  # component 0: overall size
    out = model(identity=z)
    ipd = (out.joints[:, 3] - out.joints[:, 4]).norm(dim=1)
    assert ipd[0] > 63.0 + 3.0 and ipd[1] < 63.0 - 3.0
    # no component moves any vertex absurdly far at 3 sigma
    assert model.identity_basis.norm(dim=1).max() * 3 < 45.0


def test_generator_reproduces_the_committed_file():
    from face3d.models.base import load_npz
    from face3d.models.builtin_generator import build_character_model

    fresh = build_character_model()
    saved = load_npz(CHARACTER_PATH)
    for name in ("template", "faces", "uvs", "uv_faces", "identity_basis", "expression_basis", "joint_regressor",
                 "skin_weights"):
        assert torch.equal(getattr(fresh, name), getattr(saved, name)), name
    assert fresh.expression_names == saved.expression_names
    assert all(torch.equal(fresh.regions[k], saved.regions[k]) for k in saved.regions)
    assert torch.equal(fresh.landmarks["ibug68"].vertex_ids, saved.landmarks["ibug68"].vertex_ids)


def test_contact_sheet_shows_every_item(tmp_path, character_model):
    from PIL import Image

    from face3d.models.contact_sheet import ContactSheetConfig, make_contact_sheet

    cfg = ContactSheetConfig(tile=32, n_identity=1)
    path = make_contact_sheet(character_model, tmp_path / "sheet.png", cfg)
    img = np.asarray(Image.open(path).convert("RGB")).astype(int)
    items = 1 + 2 + character_model.n_expression + 1  # mean, +-sigma of one component, expressions, jaw
    rows = -(-items // 4)
    assert img.shape == (rows * (32 + 16), 4 * 3 * 32, 3)
    # every rendered view of every item contains the head (non-white pixels)
    for i in range(items):
        r, c = divmod(i, 4)
        for k in range(3):
            tile = img[r * 48 + 16:(r + 1) * 48, (c * 3 + k) * 32:(c * 3 + k + 1) * 32]
            assert (tile.sum(-1) < 600).mean() > 0.05, (i, k)
