"""Bad input to the model layer: MorphableModel construction and forward, load_npz, and the
FLAME/ICT loaders. Every error names what was expected and what was found (and the file)."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import scipy.sparse
import torch

from face3d.models import load_model
from face3d.models.base import LandmarkSet, ModelFormatError, MorphableModel, load_npz
from face3d.models.flame import load_flame
from tests.test_flame_loader import write_fake_flame

V = 5


def _kwargs(**over):
    rng = np.random.default_rng(0)
    kw = dict(
        name="tiny", template=rng.normal(0, 10, (V, 3)), faces=[[0, 1, 2], [2, 3, 4]],
        identity_basis=np.zeros((V, 3, 2)), expression_basis=np.zeros((V, 3, 1)), expression_names=["e"],
        joint_regressor=np.full((5, V), 1 / V), skin_weights=np.tile([0, 1.0, 0, 0, 0], (V, 1)),
        landmarks={"ibug68": LandmarkSet.from_vertices([0, 1])}, regions={"face": [0, 1, 2]},
    )
    kw.update(over)
    return kw


@pytest.mark.parametrize("over,pattern", [
    (dict(template=np.zeros((V, 2))), r"template: expected trailing shape \(3,\), got \(5, 2\)"),
    (dict(template=np.zeros((2, V, 3))), r"template: expected shape \(V, 3\), got \(2, 5, 3\)"),
    (dict(faces=[[0, 1, 5]]), r"faces: expected indices in \[0, 5\), found \[0, 5\]"),
    (dict(identity_basis=np.zeros((V, 2))), r"identity_basis: expected shape \(5, 3, K\), got \(5, 2\)"),
    (dict(expression_names=["a", "b"]), r"expected 1 names .* got 2"),
    (dict(joint_regressor=np.zeros((4, V))), r"joint_regressor: expected shape \(5, 5\), got \(4, 5\)"),
    (dict(skin_weights=np.zeros((V, 4))), r"skin_weights: expected shape \(5, 5\), got \(5, 4\)"),
    (dict(uvs=np.zeros((3, 2)), uv_faces=[[0, 1, 2]]), r"uv_faces: expected shape \(2, 3\)"),
    (dict(pose_basis=np.zeros((36, 14))), r"pose_basis: expected shape \(36, 15\), got \(36, 14\)"),
    (dict(landmarks={"x": LandmarkSet.from_vertices([7])}), r"landmarks\['x'\]: vertex index out of range \[0, 5\)"),
    (dict(regions={"face": [0, 9]}), r"regions\['face'\]: vertex index out of range \[0, 5\)"),
])
def test_constructor_errors(over, pattern):
    with pytest.raises(ModelFormatError, match=pattern):
        MorphableModel(**_kwargs(**over), source="model.npz")


def test_forward_errors():
    m = MorphableModel(**_kwargs())
    with pytest.raises(ValueError, match=r"identity: expected shape \(B, 2\) for model 'tiny', got \(1, 3\)"):
        m(identity=torch.zeros(1, 3))
    with pytest.raises(ValueError, match=r"eyes: expected shape \(B, 6\)"):
        m(eyes=torch.zeros(6))
    with pytest.raises(TypeError, match=r"jaw: expected a torch.Tensor of shape \(B, 3\), got ndarray"):
        m(jaw=np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"expected a mesh with 5 vertices .* got shape \(1, 4, 3\)"):
        m.landmark_positions(torch.zeros(1, 4, 3))
    with pytest.raises(KeyError, match="region 'lips' not in model 'tiny'"):
        m.region("lips")


def test_npz_round_trip_and_errors(tmp_path):
    m = MorphableModel(**_kwargs(pose_basis=np.ones((36, 15))))
    m.save_npz(tmp_path / "m.npz")
    r = load_npz(tmp_path / "m.npz")
    assert torch.equal(r.template, m.template) and torch.equal(r.pose_basis, m.pose_basis)
    assert r.expression_names == ["e"] and r.region("face").tolist() == [0, 1, 2]
    assert torch.equal(r.landmarks["ibug68"].vertex_ids, m.landmarks["ibug68"].vertex_ids)
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        load_npz(tmp_path / "nope.npz")
    data = (tmp_path / "m.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFormatError, match="cut.npz .*truncated"):
        load_model(f"npz:{tmp_path / 'cut.npz'}")
    np.savez(tmp_path / "other.npz", template=np.zeros((3, 3)))
    with pytest.raises(ModelFormatError, match=r"other.npz is not a face3d model file: .*found arrays \['template'\]"):
        load_npz(tmp_path / "other.npz")
    with pytest.raises(ValueError, match="model spec"):
        load_model("obj:thing")


def test_flame_missing_truncated_and_not_a_dict(tmp_path):
    with pytest.raises(FileNotFoundError, match="generic_model.pkl"):
        load_flame(tmp_path / "generic_model.pkl")
    path, _ = write_fake_flame(tmp_path, with_landmarks=False)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelFormatError, match=r"generic_model.pkl .*truncated"):
        load_flame(path)
    path.write_bytes(b"this is not a pickle at all")
    with pytest.raises(ModelFormatError, match="not a Python pickle"):
        load_flame(path)
    path.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(ModelFormatError, match="expected a pickled dict .* found list"):
        load_flame(path)


def test_flame_refuses_foreign_classes(tmp_path):
    class Evil:
        def __reduce__(self):
            import os

            return (os.getcwd, ())

    (tmp_path / "generic_model.pkl").write_bytes(pickle.dumps({"v_template": Evil()}))
    with pytest.raises(ModelFormatError, match="refusing to load class posix.getcwd"):
        load_flame(tmp_path)


def test_flame_missing_keys_and_wrong_shapes(tmp_path):
    write_fake_flame(tmp_path, drop=("posedirs", "weights"), with_landmarks=False)
    with pytest.raises(ModelFormatError, match=r"missing keys \['posedirs', 'weights'\]"):
        load_flame(tmp_path)
    write_fake_flame(tmp_path, data_override={"posedirs": np.zeros((66, 3, 35))}, with_landmarks=False)
    with pytest.raises(ModelFormatError, match=r"posedirs: expected shape \(66, 3, 36\), found \(66, 3, 35\)"):
        load_flame(tmp_path)
    write_fake_flame(tmp_path, data_override={"J_regressor": scipy.sparse.csc_matrix(np.ones((5, 60)))},
                     with_landmarks=False)
    with pytest.raises(ModelFormatError, match=r"J_regressor: expected shape \(5, 66\), found \(5, 60\)"):
        load_flame(tmp_path)
    write_fake_flame(tmp_path, data_override={"kintree_table": np.array([[-1, 0, 1, 2, 1], [0, 1, 2, 3, 4]])},
                     with_landmarks=False)
    with pytest.raises(ModelFormatError, match=r"parents \[-1, 0, 1, 1, 1\]\), found ids .*parents \[-1, 0, 1, 2, 1\]"):
        load_flame(tmp_path)
    write_fake_flame(tmp_path, data_override={"weights": np.full((66, 5), 0.3)}, with_landmarks=False)
    with pytest.raises(ModelFormatError, match="weights: expected rows summing to 1"):
        load_flame(tmp_path)


def test_flame_bad_landmark_embedding(tmp_path):
    path, _ = write_fake_flame(tmp_path, with_landmarks=False)
    np.save(tmp_path / "landmark_embedding.npy", {"full_lmk_faces_idx": np.full((1, 68), 10**6),
                                                  "full_lmk_bary_coords": np.ones((1, 68, 3)) / 3})
    with pytest.raises(ModelFormatError, match=r"landmark_embedding.npy: full_lmk: expected face indices in \[0, 120\)"):
        load_flame(path)
    np.save(tmp_path / "landmark_embedding.npy", {"something": 1})
    with pytest.raises(ModelFormatError, match="expected keys full_lmk_faces_idx"):
        load_flame(path)
    with pytest.raises(FileNotFoundError, match="lmk.npy"):
        load_flame(path, landmark_embedding=tmp_path / "lmk.npy")


def test_ict_unreadable_neutral(tmp_path):
    (tmp_path / "generic_neutral_mesh.obj").write_text("# no vertices here\n")
    with pytest.raises(ModelFormatError, match=r"generic_neutral_mesh.obj: no vertices"):
        load_model(f"ict:{tmp_path}")
