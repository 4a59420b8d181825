"""ICT-FaceKit loader: a tiny synthetic folder (quads, cm) and, when present, the real sample."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from face3d.models import REQUIRED_REGIONS, load_model
from face3d.models.base import ModelFormatError
from face3d.models.ict import ICT_IBUG68, load_ict

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "ict_facekit_sample"

# A 2 x 2 x 2 cm box: 8 vertices, 6 quads, per-corner UVs (a seam at every corner).
BOX_V = np.array([[-1, -1, -1], [1, -1, -1], [1, 1, -1], [-1, 1, -1],
                  [-1, -1, 1], [1, -1, 1], [1, 1, 1], [-1, 1, 1]], dtype=float)
BOX_Q = np.array([[0, 3, 2, 1], [4, 5, 6, 7], [0, 1, 5, 4], [2, 3, 7, 6], [1, 2, 6, 5], [0, 4, 7, 3]])
UV = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=float)


def _write_obj(path: Path, v: np.ndarray, with_faces: bool = True) -> None:
    lines = ["# test mesh", "mtllib x.mtl"] + [f"v {a:.6f} {b:.6f} {c:.6f}" for a, b, c in v]
    if with_faces:
        lines += [f"vt {a} {b}" for a, b in UV] + ["usemtl M_Face"]
        lines += ["f " + " ".join(f"{i + 1}/{k + 1}" for k, i in enumerate(q)) for q in BOX_Q]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture()
def tiny(tmp_path):
    rng = np.random.default_rng(0)
    _write_obj(tmp_path / "generic_neutral_mesh.obj", BOX_V)
    offs = {}
    for name in ("identity000", "identity001", "jawOpen", "mouthSmile_L"):
        offs[name] = rng.normal(0, 0.1, BOX_V.shape)
        _write_obj(tmp_path / f"{name}.obj", BOX_V + offs[name])
    # listed but absent (eyeBlink_L) and present but unlisted (mouthSmile_L): both skipped
    (tmp_path / "vertex_indices.json").write_text(json.dumps({"expressions": ["eyeBlink_L", "jawOpen"]}))
    return tmp_path, offs


def test_tiny_folder_units_triangulation_and_bases(tiny):
    folder, offs = tiny
    m = load_ict(folder)
    np.testing.assert_allclose(m.template.numpy(), BOX_V * 10, atol=1e-5)
    assert m.n_faces == 12
    # fan triangulation in file order: quad (0 3 2 1) -> (0 3 2), (0 2 1)
    assert m.faces[:2].tolist() == [[0, 3, 2], [0, 2, 1]]
    assert m.uv_faces[:2].tolist() == [[0, 1, 2], [0, 2, 3]]
    np.testing.assert_allclose(m.uvs[:4].numpy(), UV)
    assert (m.n_identity, m.n_expression, m.expression_names) == (2, 1, ["jawOpen"])
    np.testing.assert_allclose(m.identity_basis[..., 1].numpy(), offs["identity001"] * 10, atol=1e-4)
    np.testing.assert_allclose(m.expression_basis[..., 0].numpy(), offs["jawOpen"] * 10, atol=1e-4)
    assert float(m.expression_std[0]) == 0.5 and float(m.identity_std[0]) == 1.0
    out = m(expression=torch.tensor([[0.5]]))
    np.testing.assert_allclose(out.vertices[0].numpy(), (BOX_V + 0.5 * offs["jawOpen"]) * 10, atol=1e-4)
    assert set(REQUIRED_REGIONS) <= set(m.regions) and m.landmarks == {}
    np.testing.assert_allclose(m.skin_weights.sum(1).numpy(), 1, atol=1e-6)
    np.testing.assert_allclose(m.joint_regressor.sum(1).numpy(), 1, atol=1e-5)


def test_without_json_uses_arkit_names_found(tiny):
    folder, _ = tiny
    (folder / "vertex_indices.json").unlink()
    m = load_model(f"ict:{folder}")
    assert m.expression_names == ["jawOpen", "mouthSmile_L"]  # ARKit order


def test_missing_neutral_and_vertex_count_mismatch(tiny):
    folder, _ = tiny
    _write_obj(folder / "identity001.obj", BOX_V[:7], with_faces=False)
    with pytest.raises(ModelFormatError, match=r"identity001\.obj: expected 8 vertices .* found 7"):
        load_ict(folder)
    (folder / "generic_neutral_mesh.obj").unlink()
    with pytest.raises(ModelFormatError, match="generic_neutral_mesh.obj"):
        load_ict(folder)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_ict(folder / "nowhere")


@pytest.fixture(scope="module")
def real():
    if not SAMPLE.is_dir():
        pytest.skip(f"ICT-FaceKit sample not found at {SAMPLE}")
    return load_ict(SAMPLE)


def test_real_sample_shape_and_landmarks(real):
    m = real
    assert m.n_vertices == 26719 and m.n_identity == 3 and m.n_expression == 4
    assert m.uvs.shape[0] > m.n_vertices  # UV seams kept
    ids = m.landmarks["ibug68"].vertex_ids[:, 0]
    assert ids.tolist() == list(ICT_IBUG68)
    face = set(m.region("face").tolist())
    assert all(i in face for i in ICT_IBUG68)
    assert set(ids[48:].tolist()) <= set(m.region("lips").tolist())
    lm = m.landmark_positions(m.template[None])[0]
    # subject's left (+x): iBUG point 45 (left eye outer corner) vs 36 (right)
    assert float(lm[45, 0]) > 30 and float(lm[36, 0]) < -30
    assert float(lm[30, 2]) > float(lm[0, 2]) + 50  # nose tip ahead of the jaw contour: +z forward
    scalp = m.region("scalp_back")
    assert len(scalp) > 500 and float(m.expression_basis[scalp].norm(dim=1).max()) < 0.5  # rigid, mm
    assert float(m.template[scalp, 2].mean()) < -20 or float(m.template[scalp, 1].mean()) > 80


def test_real_sample_size_joints_and_jaw(real):
    m = real
    t = m.template
    joints = m.joint_regressor @ t
    eye_dist = float((joints[3] - joints[4]).norm())
    assert 55 < eye_dist < 75  # eyeball centres, mm
    band = (t[:, 1] - joints[3, 1]).abs() < 10
    breadth = float(t[band, 0].max() - t[band, 0].min())
    assert 140 < breadth < 220  # head breadth at eye level incl. ears, mm
    chin = ICT_IBUG68[8]
    jaw_open = m.expression_basis[:, :, m.expression_index("jawOpen")]
    assert float(jaw_open[chin, 1]) < -15  # the chin drops by more than 15 mm
    # the jaw joint (measured from jawOpen) opens the mouth for a positive rotation about +x
    out = m(jaw=torch.tensor([[0.3, 0.0, 0.0]]))
    assert float(out.vertices[0, chin, 1] - t[chin, 1]) < -10
    # "_L" shapes act on the subject's left (+x), like the toolkit's eye_left
    blink = m.expression_basis[:, :, m.expression_index("eyeBlink_L")].norm(dim=1)
    assert float((blink * t[:, 0]).sum() / blink.sum()) > 25
    nose_top = ICT_IBUG68[27]
    # the jaw's pose corrective is ICT's jawOpen, which barely touches the upper face
    assert float((out.vertices[0, nose_top] - t[nose_top]).norm()) < 0.2
