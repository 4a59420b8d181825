"""FLAME loader on a small synthetic FLAME-format pickle (metres, chumpy-like arrays, sparse
J_regressor), written with a fake ``chumpy`` that is removed again before loading."""
from __future__ import annotations

import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
import torch

from face3d.geometry.rotations import axis_angle_to_matrix
from face3d.models import load_model
from face3d.models.base import ModelFormatError
from face3d.models.flame import load_flame

N_COMP = 305  # 300 identity + 5 expression


def _head():
    """A 66-vertex 'head' in metres: an icosphere (r = 0.1 m) plus two octahedral eyeballs."""
    import trimesh

    sphere = trimesh.creation.icosphere(subdivisions=1, radius=0.1)
    head_v = np.asarray(sphere.vertices)
    head_f = np.asarray(sphere.faces)
    octa = trimesh.creation.icosphere(subdivisions=0, radius=0.012)  # 12 vertices
    eyes_v, eyes_f = [], []
    n = len(head_v)
    for k, x in enumerate((0.032, -0.032)):  # left (+x) first
        eyes_v.append(np.asarray(octa.vertices) + [x, 0.02, 0.085])
        eyes_f.append(np.asarray(octa.faces) + n + k * len(octa.vertices))
    v = np.concatenate([head_v, *eyes_v])
    f = np.concatenate([head_f, *eyes_f]).astype(np.uint32)
    return v, f, n, len(octa.vertices)


def _fake_chumpy():
    """Install a minimal importable ``chumpy.ch.Ch`` (value pickled under 'x', like chumpy)."""
    ch_mod = types.ModuleType("chumpy.ch")
    pkg = types.ModuleType("chumpy")

    class Ch:
        def __init__(self, x):
            self.x = np.asarray(x)
            self._dirty_vars = set()  # chumpy keeps bookkeeping beside the value
            self.label = None

    Ch.__module__ = "chumpy.ch"
    Ch.__qualname__ = "Ch"
    ch_mod.Ch = Ch
    pkg.ch = ch_mod
    return pkg, ch_mod, Ch


def write_fake_flame(folder: Path, *, n_comp: int = N_COMP, seed: int = 0, with_landmarks: bool = True,
                     data_override: dict | None = None, drop: tuple[str, ...] = ()) -> tuple[Path, dict]:
    """Write ``generic_model.pkl`` (+ ``landmark_embedding.npy``) into ``folder``; returns the path
    and the raw arrays (metres) for hand computations."""
    rng = np.random.default_rng(seed)
    v, f, n_head, n_eye = _head()
    V = len(v)
    W = np.zeros((V, 5))
    y = v[:, 1]
    head = np.arange(n_head)
    W[head, 1] = 1.0
    low = head[y[head] < -0.06]
    W[low, 1], W[low, 0] = 0.3, 0.7  # the neck base: mostly on the root
    jaw = head[(y[head] < 0) & (y[head] >= -0.06) & (v[head, 2] > 0.03)]
    W[jaw, 1], W[jaw, 2] = 0.0, 1.0  # 100% on the jaw
    W[n_head:n_head + n_eye] = [0, 0, 0, 1, 0]
    W[n_head + n_eye:] = [0, 0, 0, 0, 1]
    J = np.zeros((5, V))
    J[0, low] = 1 / len(low)
    J[1, head] = 1 / n_head
    J[2, jaw] = 1 / len(jaw)
    J[3, n_head:n_head + n_eye] = 1 / n_eye
    J[4, n_head + n_eye:] = 1 / n_eye
    shapedirs = rng.normal(0, 0.002, (V, 3, n_comp))
    shapedirs[v[:, 2] < 0, :, 300:] = 0  # expressions leave the back of the head alone, as in FLAME
    arrays = {
        "v_template": v,
        "f": f,
        "shapedirs": shapedirs,
        "posedirs": rng.normal(0, 0.001, (V, 3, 36)),
        "J_regressor": J,
        "weights": W,
        "kintree_table": np.array([[2**32 - 1, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.uint32),
    }
    pkg, ch_mod, Ch = _fake_chumpy()
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = pkg, ch_mod
    try:
        data = {
            "v_template": Ch(arrays["v_template"]),
            "f": arrays["f"],
            "shapedirs": Ch(arrays["shapedirs"]),
            "posedirs": Ch(arrays["posedirs"]),
            "J_regressor": scipy.sparse.csc_matrix(J),
            "weights": Ch(W),
            "kintree_table": arrays["kintree_table"],
            "bs_style": "lbs",
            "J": Ch(J @ v),
        }
        data.update(data_override or {})
        for k in drop:
            data.pop(k)
        path = folder / "generic_model.pkl"
        with open(path, "wb") as fh:
            pickle.dump(data, fh, protocol=2)
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch"]
    if with_landmarks:
        fi = rng.integers(0, len(f), 68)
        bc = rng.dirichlet([1, 1, 1], 68)
        np.save(folder / "landmark_embedding.npy",
                {"full_lmk_faces_idx": fi[None], "full_lmk_bary_coords": bc[None],
                 "static_lmk_faces_idx": fi[17:], "static_lmk_bary_coords": bc[17:]},
                allow_pickle=True)
        arrays["lmk_faces"], arrays["lmk_bary"] = fi, bc
    return path, arrays


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    folder = tmp_path_factory.mktemp("flame")
    path, arrays = write_fake_flame(folder)
    assert "chumpy" not in sys.modules  # loading must not need it
    return path, arrays, load_flame(path)


def test_units_and_component_split(fake):
    path, a, m = fake
    assert m.n_vertices == 66 and m.n_identity == 300 and m.n_expression == 5
    np.testing.assert_allclose(m.template.numpy(), a["v_template"] * 1000, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(m.identity_basis[..., 299].numpy(), a["shapedirs"][..., 299] * 1000, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(m.expression_basis[..., 0].numpy(), a["shapedirs"][..., 300] * 1000, rtol=1e-5, atol=1e-5)
    assert m.expression_names[0] == "exp000" and float(m.expression_std[0]) == 1.0
    np.testing.assert_allclose(m.joint_regressor.numpy(), a["J_regressor"], atol=1e-7)
    assert m.faces.dtype == torch.int64 and int(m.faces.max()) == 65
    # identity coefficient 1 on component 3 moves vertex 7 by shapedirs[7, :, 3] m -> mm
    out = m(identity=torch.eye(300)[3:4])
    np.testing.assert_allclose((out.vertices[0, 7] - m.template[7]).numpy(), a["shapedirs"][7, :, 3] * 1000, rtol=1e-4, atol=1e-4)


def test_pose_correctives_and_jaw_lbs_match_hand_computation(fake):
    _, a, m = fake
    jaw_aa = np.array([0.3, -0.1, 0.05])
    out = m(jaw=torch.tensor(jaw_aa[None], dtype=torch.float64))
    R = axis_angle_to_matrix(torch.tensor(jaw_aa)).numpy()
    feat = np.zeros(36)
    feat[9:18] = (R - np.eye(3)).reshape(-1)  # joints 1..4, jaw is the second block
    v_mm = a["v_template"] * 1000
    pose_off = np.einsum("vck,k->vc", a["posedirs"] * 1000, feat)  # FLAME: posedirs (V,3,36)
    shaped_posed = v_mm + pose_off
    J_jaw = a["J_regressor"][2] @ v_mm
    jaw_v = np.nonzero(a["weights"][:, 2] == 1)[0]
    assert len(jaw_v) > 0
    expected = (shaped_posed[jaw_v] - J_jaw) @ R.T + J_jaw
    np.testing.assert_allclose(out.vertices[0, jaw_v].numpy(), expected, atol=1e-4)
    # a vertex fully on the neck only gets the corrective offset
    neck_v = np.nonzero(a["weights"][:, 1] == 1)[0][0]
    np.testing.assert_allclose(out.vertices[0, neck_v].numpy(), shaped_posed[neck_v], atol=1e-4)


def test_landmarks_from_embedding(fake):
    _, a, m = fake
    lm = m.landmark_positions(m.template[None].double())[0].numpy()
    tri = a["f"][a["lmk_faces"]].astype(int)
    expected = (a["v_template"][tri] * a["lmk_bary"][..., None]).sum(1) * 1000
    np.testing.assert_allclose(lm, expected, atol=1e-3)


def test_regions_from_skinning(fake):
    _, a, m = fake
    np.testing.assert_array_equal(m.region("eyes").numpy(), np.arange(42, 66))
    np.testing.assert_array_equal(m.region("neck").numpy(), np.nonzero(a["weights"][:, 0] >= 0.5)[0])
    for r in ("face", "scalp_back", "upper_face", "lips"):
        assert set(m.region(r).tolist()).isdisjoint(range(42, 66))
    # face is the front: its mean z is well ahead of the back-of-head region's
    z = m.template[:, 2]
    assert float(z[m.region("face")].mean()) > 30 > -30 > float(z[m.region("scalp_back")].mean())
    # scalp_back is rigid: no expression moves it
    assert float(m.expression_basis[m.region("scalp_back")].abs().max()) == 0


def test_masks_file_preferred(tmp_path):
    path, a = write_fake_flame(tmp_path, with_landmarks=False)
    with open(tmp_path / "FLAME_masks.pkl", "wb") as fh:
        pickle.dump({"face": np.array([1, 2, 3]), "scalp": np.array([5, 6]), "forehead": np.array([9]),
                     "nose": np.array([10]), "lips": np.array([4])}, fh, protocol=2)
    m = load_flame(tmp_path)  # a folder works too
    assert m.region("face").tolist() == [1, 2, 3]
    assert m.region("scalp_back").tolist() == [5, 6]
    assert m.region("upper_face").tolist() == [9, 10]
    assert m.region("flame_lips").tolist() == [4]
    assert m.landmarks == {}


def test_fewer_components_not_padded(tmp_path):
    path, _ = write_fake_flame(tmp_path, n_comp=250, with_landmarks=False)
    m = load_model(f"flame:{path}")
    assert (m.n_identity, m.n_expression) == (250, 0)


def test_eye_joints_swapped_to_subject_left(tmp_path):
    _, a = write_fake_flame(tmp_path, with_landmarks=False)
    # Mirror the file's eye joints: joint 3 on the subject's right. The loader must swap back.
    J = a["J_regressor"][[0, 1, 2, 4, 3]]
    W = a["weights"][:, [0, 1, 2, 4, 3]]
    write_fake_flame(tmp_path, with_landmarks=False,
                     data_override={"J_regressor": scipy.sparse.csc_matrix(J), "weights": W})
    m = load_flame(tmp_path / "generic_model.pkl")
    joints = m.joint_regressor @ m.template
    assert float(joints[3, 0]) == pytest.approx(32.0, abs=1e-3)
    assert float(joints[4, 0]) == pytest.approx(-32.0, abs=1e-3)
    # the correctives of the two eye joints (blocks 3 and 4 of 9 rows) swap with them
    pb = a["posedirs"].reshape(-1, 36).T * 1000
    np.testing.assert_allclose(m.pose_basis[18:27].numpy(), pb[27:36], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m.pose_basis[27:36].numpy(), pb[18:27], rtol=1e-5, atol=1e-6)
    assert m.skin_weights[45, 3] == 1  # an eyeball vertex of the subject's left eye


def test_python2_era_module_paths(tmp_path):
    """Files pickled in 2017-2020 name numpy.core / scipy.sparse.csc / copy_reg / __builtin__."""
    path, a = write_fake_flame(tmp_path, with_landmarks=False)
    data = path.read_bytes()
    for new, old in ((b"numpy._core.multiarray", b"numpy.core.multiarray"), (b"scipy.sparse._csc", b"scipy.sparse.csc")):
        assert new in data
        data = data.replace(new, old)  # GLOBAL opcodes are newline-terminated text in protocol 2
    path.write_bytes(data)
    m = load_flame(path)
    np.testing.assert_allclose(m.joint_regressor.numpy(), a["J_regressor"], atol=1e-7)
    np.testing.assert_allclose(m.template.numpy(), a["v_template"] * 1000, rtol=1e-6, atol=1e-4)


def test_uvs_from_template_obj(tmp_path):
    from face3d.geometry.mesh_io import Mesh, save_mesh

    path, a = write_fake_flame(tmp_path, with_landmarks=False)
    rng = np.random.default_rng(1)
    F = len(a["f"])
    uvs, uv_faces = rng.random((F * 3, 2)), np.arange(F * 3).reshape(F, 3)  # a seam everywhere
    save_mesh(tmp_path / "head_template.obj", Mesh(a["v_template"], a["f"], uvs, uv_faces))
    m = load_flame(path, uv_obj=tmp_path / "head_template.obj")
    np.testing.assert_allclose(m.uvs[m.uv_faces].numpy(), uvs[uv_faces], atol=1e-6)
    save_mesh(tmp_path / "other.obj", Mesh(a["v_template"], a["f"][::-1], uvs, uv_faces))
    with pytest.raises(ModelFormatError, match=r"other.obj: expected an OBJ with the model's 66 vertices, its 120 faces in the same order"):
        load_flame(path, uv_obj=tmp_path / "other.obj")
