"""Loader for FLAME 2020/2023 ``generic_model.pkl`` files (the licence forbids redistribution:
users bring their own copy).

The pickle stores several arrays as ``chumpy`` objects, and chumpy does not import on numpy >=
1.24. :class:`_FlameUnpickler` therefore replaces every ``chumpy.*`` class by a stand-in that
keeps the pickled state (a leaf ``Ch`` pickles its value under ``'x'``) and allows only the
classes such a file needs (numpy, scipy.sparse, a few builtins), so loading a model file cannot
run arbitrary code. Python 2 pickles are read with ``encoding='latin1'``.

Conversion to the toolkit's :class:`MorphableModel` (FLAME's frame already is the toolkit's:
+y up, +z out of the face, +x to the subject's left):

- ``v_template`` (V, 3), ``shapedirs`` (V, 3, K) and ``posedirs`` (V, 3, 36): metres -> mm.
- ``shapedirs``: the first ``min(n_shape, K)`` components (``n_shape`` = 300 in FLAME 2020/2023)
  are identity, the remaining ``K - n_identity`` are expression (100 in the standard files). A
  file with fewer components gives fewer (never padded, never truncated); both bases are scaled
  so coefficients are ~N(0, 1) (std 1).
- ``posedirs`` -> ``pose_basis`` (36, V*3) = ``posedirs.reshape(-1, 36).T`` (vertex-major x, y,
  z), driven by the flattened ``R - I`` of joints 1..4 exactly as in FLAME.
- ``J_regressor`` (5, V) (scipy sparse or dense, unitless), ``weights`` (V, 5) -> skin weights;
  ``kintree_table`` must encode parents ``[-1, 0, 1, 1, 1]``.
- Landmarks: ``landmark_embedding.npy`` beside the pkl (or passed in) -> ``"ibug68"`` from its
  ``full_lmk_*`` arrays, or from the 51 static + the frontal (yaw 0) contour of the dynamic ones.
  Without an embedding the model has no landmark sets.
- Regions: ``FLAME_masks.pkl`` beside the pkl (or passed in) when present; otherwise derived
  from the template and the skinning (**approximations**: eyes = vertices skinned to the eye
  joints, neck = vertices mostly on the root joint, the rest by position, see
  :func:`face3d.models.regions.derive_regions`).
- UVs: the pkl has none (FLAME ships them separately); ``uvs`` stay empty unless
  ``uv_obj`` (e.g. FLAME's ``head_template.obj``) is given.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from face3d.models.base import JOINT_PARENTS, LandmarkSet, ModelFormatError, MorphableModel
from face3d.models.regions import derive_regions

M_TO_MM = 1000.0
N_SHAPE = 300
REQUIRED_KEYS = ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table")

# FLAME_masks.pkl names -> toolkit region names (unions); every mask is also kept as "flame_<name>".
_MASK_MAP = {
    "face": ("face",),
    "scalp_back": ("scalp",),
    "upper_face": ("forehead", "eye_region", "nose"),
    "lips": ("lips",),
    "eyes": ("left_eyeball", "right_eyeball"),
    "neck": ("neck",),
}


# ------------------------------------------------------------------------------- unpickling
class _ChumpyStandIn:
    """Holds the pickled state of a chumpy object (chumpy itself is never imported)."""

    chumpy_class = "chumpy.?"

    def __init__(self, *args, **kwargs) -> None:
        self._state: Any = None

    def __setstate__(self, state) -> None:
        # (dict_state, slot_state) when the class defines __slots__; Ch keeps everything in the dict.
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], (dict, type(None))):
            state = {**(state[0] or {}), **(state[1] or {})}
        self._state = state

    def value(self, what: str, source: str) -> np.ndarray:
        st = self._state
        if isinstance(st, dict) and "x" in st:
            return _to_array(st["x"], what, source)
        keys = sorted(st) if isinstance(st, dict) else type(st).__name__
        raise ModelFormatError(
            f"{source}: {what} is a pickled {self.chumpy_class} whose value cannot be read without chumpy "
            f"(expected a leaf chumpy.Ch with its array under 'x', found state {keys})"
        )


_STANDINS: dict[str, type] = {}
_BUILTINS_OK = {"object", "set", "frozenset", "dict", "list", "tuple", "slice", "complex", "int", "float",
                "str", "bytes", "bytearray", "bool", "range"}


class _FlameUnpickler(pickle.Unpickler):
    """Maps chumpy classes to stand-ins and allows only what a FLAME file needs."""

    def find_class(self, module: str, name: str):
        if module == "chumpy" or module.startswith("chumpy."):
            key = f"{module}.{name}"
            if key not in _STANDINS:
                _STANDINS[key] = type(name, (_ChumpyStandIn,), {"chumpy_class": key})
            return _STANDINS[key]
        if module.startswith("scipy.sparse"):
            import scipy.sparse

            if hasattr(scipy.sparse, name):  # old private paths (scipy.sparse.csc) moved
                return getattr(scipy.sparse, name)
            return super().find_class(module, name)
        if module == "numpy.core" or module.startswith("numpy.core."):
            if hasattr(np, "_core"):  # numpy 2 renamed numpy.core
                module = "numpy._core" + module[len("numpy.core"):]
            return super().find_class(module, name)
        if module == "numpy" or module.startswith("numpy."):
            return super().find_class(module, name)
        if (module in ("builtins", "__builtin__") and name in _BUILTINS_OK) or (
            module in ("copyreg", "copy_reg") and name in ("_reconstructor", "__newobj__", "__newobj_ex__")
        ) or (module == "_codecs" and name == "encode") or (
            module == "collections" and name in ("OrderedDict", "defaultdict")
        ):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load class {module}.{name} (not part of a FLAME model file)")


def _unpickle(path: Path, what: str) -> Any:
    try:
        with open(path, "rb") as f:
            return _FlameUnpickler(f, encoding="latin1").load()
    except FileNotFoundError:
        raise
    except Exception as e:  # EOFError, UnpicklingError, ValueError, ...: truncated or not a pickle
        raise ModelFormatError(
            f"could not read {path} as {what} ({type(e).__name__}: {e}); the file is truncated, corrupt or "
            "not a Python pickle"
        ) from e


def _to_array(x, what: str, source: str) -> np.ndarray:
    if isinstance(x, _ChumpyStandIn):
        return x.value(what, source)
    if hasattr(x, "toarray") and hasattr(x, "nnz"):  # scipy sparse
        return np.asarray(x.toarray())
    try:
        a = np.asarray(x)
    except Exception as e:
        raise ModelFormatError(f"{source}: {what}: expected an array, found {type(x).__name__}") from e
    if a.dtype == object:
        raise ModelFormatError(f"{source}: {what}: expected a numeric array, found {type(x).__name__} of objects")
    return a


def _shape_check(a: np.ndarray, expected: tuple, what: str, source: str) -> None:
    ok = a.ndim == len(expected) and all(e is None or e == s for e, s in zip(expected, a.shape))
    if not ok:
        exp = "(" + ", ".join("K" if e is None else str(e) for e in expected) + ")"
        raise ModelFormatError(f"{source}: {what}: expected shape {exp}, found {a.shape}")


# ------------------------------------------------------------------------------- loading
def load_flame(
    path: str | Path,
    *,
    landmark_embedding: str | Path | None = None,
    masks: str | Path | None = None,
    uv_obj: str | Path | None = None,
    n_shape: int = N_SHAPE,
    name: str = "flame",
) -> MorphableModel:
    """Read a FLAME ``generic_model.pkl`` (2020 or 2023) without chumpy.

    Args:
        path: the ``.pkl`` file, or a folder holding ``generic_model.pkl``.
        landmark_embedding: FLAME's ``landmark_embedding.npy``; default: the one beside ``path``
            if present.
        masks: ``FLAME_masks.pkl`` (region name -> vertex indices); default: beside ``path`` if
            present, else regions are derived geometrically (approximate).
        uv_obj: optional OBJ with FLAME's topology and UVs (``head_template.obj``).
        n_shape: how many leading ``shapedirs`` components are identity (FLAME: 300).

    Returns:
        :class:`MorphableModel` in mm: template (5023, 3) for the real files, faces (9976, 3),
        identity_basis (V, 3, 300), expression_basis (V, 3, 100), pose_basis (36, V*3).

    Raises:
        FileNotFoundError: ``path`` (or an explicitly given side file) does not exist.
        ModelFormatError: truncated/corrupt pickle, missing keys, wrong shapes, a kinematic tree
            other than FLAME's, or landmark/mask files that do not fit the mesh.
    """
    path = Path(path)
    if path.is_dir():
        cand = path / "generic_model.pkl"
        if not cand.is_file():
            pkls = sorted(p.name for p in path.glob("*.pkl"))
            raise FileNotFoundError(f"no generic_model.pkl in {path} (found .pkl files: {pkls}); pass the file itself")
        path = cand
    if not path.is_file():
        raise FileNotFoundError(f"FLAME model file not found: {path}")
    src = str(path)
    data = _unpickle(path, "a FLAME model")
    if not isinstance(data, dict):
        raise ModelFormatError(f"{src}: expected a pickled dict with keys {list(REQUIRED_KEYS)}, found {type(data).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise ModelFormatError(
            f"{src} is not a FLAME model: missing keys {missing}; expected {list(REQUIRED_KEYS)}, found {sorted(map(str, data))}"
        )
    arr = {k: _to_array(data[k], k, src) for k in REQUIRED_KEYS}
    v_template = arr["v_template"].astype(np.float64)
    _shape_check(v_template, (None, 3), "v_template", src)
    V = v_template.shape[0]
    faces = arr["f"]
    _shape_check(faces, (None, 3), "f", src)
    if not np.issubdtype(faces.dtype, np.integer):
        raise ModelFormatError(f"{src}: f: expected integer vertex indices, found dtype {faces.dtype}")
    faces = faces.astype(np.int64)
    if faces.size and (faces.min() < 0 or faces.max() >= V):
        raise ModelFormatError(f"{src}: f: expected indices in [0, {V}), found [{faces.min()}, {faces.max()}]")
    shapedirs = arr["shapedirs"].astype(np.float64)
    _shape_check(shapedirs, (V, 3, None), "shapedirs", src)
    posedirs = arr["posedirs"].astype(np.float64)
    _shape_check(posedirs, (V, 3, 36), "posedirs", src)
    J_regressor = arr["J_regressor"].astype(np.float64)
    _shape_check(J_regressor, (5, V), "J_regressor", src)
    weights = arr["weights"].astype(np.float64)
    _shape_check(weights, (V, 5), "weights", src)
    kintree = arr["kintree_table"]
    _shape_check(kintree, (2, 5), "kintree_table", src)
    parents = kintree[0].astype(np.int64)
    parents[(parents < 0) | (parents >= 2**31 - 1)] = -1  # FLAME stores -1 as uint32 4294967295
    if tuple(parents.tolist()) != JOINT_PARENTS or tuple(kintree[1].astype(np.int64).tolist()) != (0, 1, 2, 3, 4):
        raise ModelFormatError(
            f"{src}: kintree_table: expected FLAME's joints (ids 0..4, parents {list(JOINT_PARENTS)}), "
            f"found ids {kintree[1].tolist()}, parents {parents.tolist()}"
        )
    sums = weights.sum(1)
    if np.abs(sums - 1).max() > 1e-3:
        raise ModelFormatError(f"{src}: weights: expected rows summing to 1, found sums in [{sums.min():.4g}, {sums.max():.4g}]")
    weights = weights / sums[:, None]

    K = shapedirs.shape[2]
    n_id = min(int(n_shape), K)
    template = v_template * M_TO_MM
    identity_basis = shapedirs[:, :, :n_id] * M_TO_MM
    expression_basis = shapedirs[:, :, n_id:] * M_TO_MM
    pose_basis = (posedirs * M_TO_MM).reshape(-1, 36).T  # (36, V*3), FLAME's own layout

    # FLAME names joint 3 "left eye"; make sure it is the subject's left (+x) as the toolkit
    # requires, swapping the two eye joints (and their correctives) if a file disagrees.
    joints = J_regressor @ template
    if joints[3, 0] < joints[4, 0]:
        perm = [0, 1, 2, 4, 3]
        J_regressor, weights, joints = J_regressor[perm], weights[:, perm], joints[perm]
        pb = pose_basis.reshape(4, 9, -1)
        pose_basis = pb[[0, 1, 3, 2]].reshape(36, -1)

    side = path.parent
    lm_path = Path(landmark_embedding) if landmark_embedding is not None else side / "landmark_embedding.npy"
    landmarks: dict[str, LandmarkSet] = {}
    if landmark_embedding is not None or lm_path.is_file():
        landmarks = _read_landmarks(lm_path, faces)
    lm68 = _landmark_positions(landmarks["ibug68"], template) if "ibug68" in landmarks else None

    eyes = np.nonzero(weights[:, 3:5].sum(1) > 0.5)[0]
    skin = np.ones(V, bool)
    skin[eyes] = False
    # FLAME expressions are ~N(0, 1): a vertex a 2-sigma expression moves is not rigid scalp
    regions = derive_regions(template, joints[3], joints[4], skin=skin, eyes=eyes, landmarks68=lm68,
                             expression_basis=expression_basis, expression_scale=2.0)
    neck_skinned = np.nonzero(skin & (weights[:, 0] >= 0.5))[0]
    if len(neck_skinned):
        regions["neck"] = neck_skinned
    mask_path = Path(masks) if masks is not None else side / "FLAME_masks.pkl"
    if masks is not None or mask_path.is_file():
        regions.update(_read_masks(mask_path, V))

    uvs = uv_faces = None
    if uv_obj is not None:
        uvs, uv_faces = _read_uvs(Path(uv_obj), V, faces)

    return MorphableModel(
        name=name,
        template=template.astype(np.float32),
        faces=faces,
        uvs=uvs,
        uv_faces=uv_faces,
        identity_basis=identity_basis.astype(np.float32),
        expression_basis=expression_basis.astype(np.float32),
        expression_names=[f"exp{i:03d}" for i in range(expression_basis.shape[2])],
        identity_std=np.ones(n_id, np.float32),
        expression_std=np.ones(expression_basis.shape[2], np.float32),
        joint_regressor=J_regressor.astype(np.float32),
        skin_weights=weights.astype(np.float32),
        pose_basis=pose_basis.astype(np.float32),
        landmarks=landmarks,
        regions=regions,
        source=src,
    )


def _landmark_set(faces: np.ndarray, face_idx: np.ndarray, bary: np.ndarray, src: str, what: str) -> LandmarkSet:
    face_idx = np.asarray(face_idx).reshape(-1).astype(np.int64)
    bary = np.asarray(bary, dtype=np.float64).reshape(-1, 3)
    if len(face_idx) != len(bary):
        raise ModelFormatError(f"{src}: {what}: {len(face_idx)} face indices but {len(bary)} barycentric rows")
    if face_idx.size and (face_idx.min() < 0 or face_idx.max() >= len(faces)):
        raise ModelFormatError(
            f"{src}: {what}: expected face indices in [0, {len(faces)}), found [{face_idx.min()}, {face_idx.max()}]"
        )
    return LandmarkSet(torch.as_tensor(faces[face_idx], dtype=torch.int64), torch.as_tensor(bary, dtype=torch.float32))


def _landmark_positions(lm: LandmarkSet, vertices: np.ndarray) -> np.ndarray:
    """numpy twin of ``LandmarkSet.gather`` for one (V, 3) mesh -> (L, 3)."""
    ids, w = lm.vertex_ids.numpy(), lm.weights.numpy().astype(np.float64)
    return (vertices[ids] * w[..., None]).sum(1)


def _read_landmarks(path: Path, faces: np.ndarray) -> dict[str, LandmarkSet]:
    if not path.is_file():
        raise FileNotFoundError(f"FLAME landmark embedding not found: {path}")
    src = str(path)
    try:
        obj = np.load(path, allow_pickle=True, encoding="latin1")
        emb = obj.item() if isinstance(obj, np.ndarray) and obj.dtype == object and obj.shape == () else obj
    except Exception as e:
        raise ModelFormatError(f"could not read {path} as a FLAME landmark embedding ({type(e).__name__}: {e})") from e
    if not isinstance(emb, dict):
        raise ModelFormatError(f"{src}: expected a pickled dict (landmark_embedding.npy), found {type(emb).__name__}")
    out: dict[str, LandmarkSet] = {}
    if "full_lmk_faces_idx" in emb and "full_lmk_bary_coords" in emb:
        fi = np.asarray(emb["full_lmk_faces_idx"]).reshape(-1)
        if len(fi) != 68:
            raise ModelFormatError(f"{src}: full_lmk_faces_idx: expected 68 landmarks, found {len(fi)}")
        out["ibug68"] = _landmark_set(faces, fi, emb["full_lmk_bary_coords"], src, "full_lmk")
    elif all(k in emb for k in ("static_lmk_faces_idx", "static_lmk_bary_coords", "dynamic_lmk_faces_idx", "dynamic_lmk_bary_coords")):
        sf = np.asarray(emb["static_lmk_faces_idx"]).reshape(-1)
        sb = np.asarray(emb["static_lmk_bary_coords"]).reshape(-1, 3)
        df = np.asarray(emb["dynamic_lmk_faces_idx"])
        db = np.asarray(emb["dynamic_lmk_bary_coords"])
        if len(sf) != 51 or df.ndim != 2 or df.shape[1] != 17 or df.shape[0] % 2 != 1:
            raise ModelFormatError(
                f"{src}: expected static landmarks (51,) and dynamic contours (n_yaw odd, 17), found "
                f"{sf.shape} and {df.shape}"
            )
        mid = df.shape[0] // 2  # the frontal (yaw 0) contour
        fi = np.concatenate([df[mid], sf])
        bc = np.concatenate([np.asarray(db[mid]).reshape(17, 3), sb])
        out["ibug68"] = _landmark_set(faces, fi, bc, src, "static+dynamic lmk")
    else:
        raise ModelFormatError(
            f"{src}: expected keys full_lmk_faces_idx/full_lmk_bary_coords or static_/dynamic_lmk_*, found {sorted(emb)}"
        )
    return out


def _read_masks(path: Path, V: int) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise FileNotFoundError(f"FLAME masks file not found: {path}")
    masks = _unpickle(path, "FLAME_masks.pkl (region name -> vertex indices)")
    if not isinstance(masks, dict):
        raise ModelFormatError(f"{path}: expected a dict of region name -> vertex indices, found {type(masks).__name__}")
    raw: dict[str, np.ndarray] = {}
    for k, idx in masks.items():
        a = _to_array(idx, f"mask {k!r}", str(path)).reshape(-1).astype(np.int64)
        if a.size and (a.min() < 0 or a.max() >= V):
            raise ModelFormatError(f"{path}: mask {k!r}: expected vertex indices in [0, {V}), found [{a.min()}, {a.max()}]")
        raw[str(k)] = a
    out = {f"flame_{k}": v for k, v in raw.items()}
    for ours, theirs in _MASK_MAP.items():
        have = [raw[t] for t in theirs if t in raw]
        if have:
            out[ours] = np.unique(np.concatenate(have))
    return out


def _read_uvs(path: Path, V: int, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from face3d.geometry.mesh_io import MeshFormatError, read_obj

    if not path.is_file():
        raise FileNotFoundError(f"FLAME UV mesh not found: {path}")
    try:
        m = read_obj(path)
    except MeshFormatError as e:
        raise ModelFormatError(str(e)) from e
    if m.n_vertices != V or not np.array_equal(m.faces, faces) or m.uvs is None:
        raise ModelFormatError(
            f"{path}: expected an OBJ with the model's {V} vertices, its {len(faces)} faces in the same order and UVs; "
            f"found {m.n_vertices} vertices, {m.n_faces} faces, UVs {'present' if m.uvs is not None else 'absent'}"
        )
    return m.uvs, m.uv_faces
