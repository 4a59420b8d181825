"""Loader for ICT-FaceKit (MIT licence): a folder of OBJ files sharing one topology.

Layout (the real model: 26,719 vertices, mostly quads, centimetres):

- ``generic_neutral_mesh.obj``: the template.
- ``identity000.obj`` ... ``identity099.obj``: identity PCA modes, stored as full meshes whose
  offset to the neutral is one standard deviation (coefficients ~N(0, 1)).
- 53 ARKit-style expression meshes (``jawOpen.obj``, ``mouthSmile_L.obj``, ...), names listed
  in ``vertex_indices.json`` under ``"expressions"``; offsets to the neutral are the blendshapes
  (weights in [0, 1]).

Whatever identity and expression files are present are used (a folder with 3 identities and 4
expressions gives ``n_identity == 3``, ``n_expression == 4``). Units are converted cm -> mm.
ICT's frame already is the toolkit's (+y up, +z out of the face, +x to the subject's left:
``M_ScleraLeft`` lies at x > 0 and ``eyeBlink_L`` closes that eye), so no axis change is
applied. Polygons are fan triangulated in
file order and vertex order is kept.

ICT has **no skeleton**: the joints and skin weights are built here (:func:`_ict_joints`,
:func:`_ict_skinning`) so that the generic LBS works. Where the folder has ``jawOpen``, the jaw is
measured from it: ICT's ``jawOpen`` moves the lower teeth rigidly (a 25.3 degree rotation about
the x axis, 0.08 mm mean residual on the full model), so the jaw joint is that rotation's pivot
and each vertex's jaw weight is how much of that rotation ``jawOpen`` gives it (smoothed); without
it the jaw pivots at a point placed by proportions. Eyeballs rotate rigidly about their centroids,
the head turns about a point behind the mouth at the skull base, the neck bends from its bottom
ring.
Regions come from ICT's documented vertex ranges (face area 0-9408, eyeballs, teeth, ...) plus
the geometric rules of :mod:`face3d.models.regions`; all are approximations.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from face3d.geometry.mesh_io import MeshFormatError, read_obj
from face3d.models.base import JOINT_NAMES, LandmarkSet, ModelFormatError, MorphableModel
from face3d.models.regions import affine_regressor, derive_regions, head_frame, smoothstep

CM_TO_MM = 10.0
ICT_N_VERTICES = 26719
NEUTRAL_FILE = "generic_neutral_mesh.obj"

# iBUG-68 (Multi-PIE) landmark vertices, from ICT-FaceKit's README.
ICT_IBUG68 = (
    1225, 1888, 1052, 367, 1719, 1722, 2199, 1447, 966, 3661, 4390, 3927, 3924, 2608, 3272, 4088, 3443,
    268, 493, 1914, 2044, 1401, 3615, 4240, 4114, 2734, 2509, 978, 4527, 4942, 4857, 1140, 2075, 1147,
    4269, 3360, 1507, 1542, 1537, 1528, 1518, 1511, 3742, 3751, 3756, 3721, 3725, 3732, 5708, 5695,
    2081, 0, 4275, 6200, 6213, 6346, 6461, 5518, 5957, 5841, 5702, 5711, 5533, 6216, 6207, 6470, 5517,
    5966,
)

# Vertex ranges of the 26,719-vertex topology (inclusive), from ICT-FaceKit's README; they match
# the material groups of generic_neutral_mesh.obj (M_Face, M_BackHead, M_Teeth, M_ScleraLeft...).
ICT_RANGES = {
    "face_area": (0, 9408),
    "head_and_neck": (9409, 11247),
    "mouth_socket": (11248, 13293),
    "eye_socket_left": (13294, 13677),
    "eye_socket_right": (13678, 14061),
    "gums_and_tongue": (14062, 17038),
    "teeth": (17039, 21450),
    "eyeball_left": (21451, 23020),
    "eyeball_right": (23021, 24590),
    "sclera_left": (21451, 22220),
    "iris_left": (22221, 23020),
    "sclera_right": (23021, 23790),
    "iris_right": (23791, 24590),
    "lacrimal_fluid": (24591, 24998),
    "eye_blend": (24999, 25046),
    "eye_occlusion": (25047, 25350),
    "eyelashes": (25351, 26718),
}

# ARKit blendshape names, used when vertex_indices.json is absent.
ARKIT_NAMES = (
    "browDown_L", "browDown_R", "browInnerUp_L", "browInnerUp_R", "browOuterUp_L", "browOuterUp_R",
    "cheekPuff_L", "cheekPuff_R", "cheekSquint_L", "cheekSquint_R", "eyeBlink_L", "eyeBlink_R",
    "eyeLookDown_L", "eyeLookDown_R", "eyeLookIn_L", "eyeLookIn_R", "eyeLookOut_L", "eyeLookOut_R",
    "eyeLookUp_L", "eyeLookUp_R", "eyeSquint_L", "eyeSquint_R", "eyeWide_L", "eyeWide_R",
    "jawForward", "jawLeft", "jawOpen", "jawRight", "mouthClose", "mouthDimple_L", "mouthDimple_R",
    "mouthFrown_L", "mouthFrown_R", "mouthFunnel", "mouthLeft", "mouthLowerDown_L", "mouthLowerDown_R",
    "mouthPress_L", "mouthPress_R", "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper",
    "mouthShrugLower", "mouthShrugUpper", "mouthSmile_L", "mouthSmile_R", "mouthStretch_L",
    "mouthStretch_R", "mouthUpperUp_L", "mouthUpperUp_R", "noseSneer_L", "noseSneer_R",
)

_IDENTITY_RE = re.compile(r"^identity(\d+)\.obj$")
_V_LINE = re.compile(rb"^v[ \t]+([^\r\n]*)", re.M)


def _rng(name: str) -> np.ndarray:
    a, b = ICT_RANGES[name]
    return np.arange(a, b + 1, dtype=np.int64)


def _read_vertices(path: Path) -> np.ndarray:
    """(V, 3) float64 'v' positions of an OBJ (faces ignored: all ICT files share them)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ModelFormatError(f"{path}: unreadable ({e})") from e
    rows = _V_LINE.findall(data)
    if not rows:
        raise ModelFormatError(f"{path}: expected an OBJ mesh, found no 'v' lines")
    try:
        flat = np.array(b" ".join(rows).split(), dtype=np.float64)
    except ValueError as e:
        raise ModelFormatError(f"{path}: could not parse vertex lines ({e})") from None
    if flat.size != 3 * len(rows):
        raise ModelFormatError(f"{path}: expected 3 numbers per 'v' line, found {flat.size} numbers on {len(rows)} lines")
    return flat.reshape(-1, 3)


def _expression_files(folder: Path) -> list[tuple[str, Path]]:
    js = folder / "vertex_indices.json"
    names: list[str] = list(ARKIT_NAMES)
    if js.is_file():
        try:
            meta = json.loads(js.read_text())
        except (OSError, ValueError) as e:
            raise ModelFormatError(f"{js}: not readable JSON ({e})") from e
        listed = meta.get("expressions") if isinstance(meta, dict) else None
        if listed is not None:
            if not isinstance(listed, list) or not all(isinstance(n, str) for n in listed):
                raise ModelFormatError(f"{js}: expected 'expressions' to be a list of names, found {type(listed).__name__}")
            names = listed
    return [(n, folder / f"{n}.obj") for n in names if (folder / f"{n}.obj").is_file()]


def load_ict(folder: str | Path, *, name: str = "ict") -> MorphableModel:
    """Read an ICT-FaceKit folder into a :class:`MorphableModel` (mm, toolkit frame).

    Args:
        folder: directory with ``generic_neutral_mesh.obj`` and any ``identityNNN.obj`` /
            expression OBJ files (see the module docstring).

    Returns:
        A model with ``template`` (V, 3) mm, triangulated ``faces``, OBJ ``uvs``/``uv_faces``,
        ``identity_basis`` (V, 3, n_id) mm per unit coefficient (std 1), ``expression_basis``
        (V, 3, n_exp) mm per unit weight (std 0.5, weights in [0, 1]), heuristic joints/skinning,
        ``landmarks["ibug68"]`` and the regions (for the 26,719-vertex topology; a folder with
        another vertex count gets no landmarks and purely geometric regions).

    Raises:
        FileNotFoundError: ``folder`` does not exist.
        ModelFormatError: the neutral mesh is missing or unreadable, or a file's vertex count
            differs from the neutral's (naming the file, expected and found counts).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"ICT-FaceKit folder not found: {folder}")
    neutral_path = folder / NEUTRAL_FILE
    if not neutral_path.is_file():
        raise ModelFormatError(
            f"{folder} is not an ICT-FaceKit folder: expected {NEUTRAL_FILE} in it, found "
            f"{sorted(p.name for p in folder.iterdir())[:10]}"
        )
    try:
        mesh = read_obj(neutral_path)
    except MeshFormatError as e:
        raise ModelFormatError(str(e)) from e
    neutral = mesh.vertices
    V = len(neutral)
    if mesh.n_faces == 0:
        raise ModelFormatError(f"{neutral_path}: expected faces ('f' lines), found none")

    def offsets(paths: list[Path]) -> np.ndarray:
        out = np.zeros((V, 3, len(paths)), dtype=np.float32)
        for k, p in enumerate(paths):
            v = _read_vertices(p)
            if len(v) != V:
                raise ModelFormatError(
                    f"{p}: expected {V} vertices (the topology of {NEUTRAL_FILE}), found {len(v)}"
                )
            out[:, :, k] = (v - neutral) * CM_TO_MM
        return out

    ids = sorted(
        ((int(m.group(1)), p) for p in folder.iterdir() if (m := _IDENTITY_RE.match(p.name))),
        key=lambda t: t[0],
    )
    identity_basis = offsets([p for _, p in ids])
    exprs = _expression_files(folder)
    expression_basis = offsets([p for _, p in exprs])
    template = neutral * CM_TO_MM

    landmarks = {}
    lm_pos = None
    documented = V == ICT_N_VERTICES
    if documented:
        landmarks["ibug68"] = LandmarkSet.from_vertices(ICT_IBUG68)
        lm_pos = template[list(ICT_IBUG68)]
    names = [n for n, _ in exprs]
    jaw_fit = fit_jaw_rotation(template, expression_basis[:, :, names.index("jawOpen")],
                               _rng("teeth") if documented else None) if "jawOpen" in names else None
    joints_pos, regressor, eyes_idx, skin = _ict_joints(template, lm_pos, documented, jaw_fit)
    # scalp_back must not move with any expression (stabilizers read the skull there): 0.01 mm is
    # below what ICT's six-decimal centimetre files can express, so the region is exactly rigid.
    regions = derive_regions(template, joints_pos[3], joints_pos[4], skin=skin, eyes=eyes_idx, landmarks68=lm_pos,
                             expression_basis=expression_basis, expression_scale=1.0, rigid_tol_mm=0.01)
    if documented:
        face_area = np.zeros(V, bool)
        face_area[_rng("face_area")] = True
        # ICT's face area is the deforming skin; keep geometric face/lips/upper-face inside it.
        for k in ("face", "upper_face", "lips"):
            regions[k] = regions[k][face_area[regions[k]]]
        regions["ict_face_area"] = _rng("face_area")
        regions["mouth_interior"] = np.concatenate([_rng("mouth_socket"), _rng("gums_and_tongue"), _rng("teeth")])
        regions["teeth"] = _rng("teeth")
        regions["ict_gums_and_tongue"] = _rng("gums_and_tongue")
        regions["eye_sockets"] = np.concatenate([_rng("eye_socket_left"), _rng("eye_socket_right")])
        regions["eyelashes"] = _rng("eyelashes")
        regions["eye_left"] = _rng("eyeball_left")
        regions["eye_right"] = _rng("eyeball_right")
        for k in ("sclera_left", "sclera_right", "iris_left", "iris_right"):
            regions[k] = _rng(k)
        regions.update(_iris_disks(template))
        regions["iris"] = np.concatenate([regions["iris_disk_left"], regions["iris_disk_right"]])
        regions["skin"] = np.nonzero(skin)[0]
        regions["skull"] = np.setdiff1d(np.nonzero(skin)[0], regions["neck"])  # the head without the neck
        landmarks["now7"] = LandmarkSet.from_vertices(np.asarray(ICT_IBUG68)[[36, 39, 42, 45, 33, 48, 54]])
    jaw_open = expression_basis[:, :, names.index("jawOpen")] if jaw_fit is not None else None
    skin_weights = _ict_skinning(template, joints_pos, lm_pos, skin, eyes_idx, documented, jaw_fit, jaw_open,
                                 mesh.faces)
    pose_basis = None if jaw_fit is None else jaw_pose_corrective(template, jaw_open, skin_weights[:, 2], jaw_fit)
    return MorphableModel(
        name=name,
        template=template.astype(np.float32),
        faces=mesh.faces,
        uvs=mesh.uvs,
        uv_faces=mesh.uv_faces,
        identity_basis=identity_basis,
        expression_basis=expression_basis,
        expression_names=names,
        identity_std=np.ones(identity_basis.shape[2], np.float32),
        expression_std=np.full(expression_basis.shape[2], 0.5, np.float32),
        joint_regressor=regressor.astype(np.float32),
        skin_weights=skin_weights.astype(np.float32),
        landmarks=landmarks,
        regions=regions,
        pose_basis=pose_basis,
        source=str(folder),
    )


IRIS_RADIUS_MM = 5.85  # half the human horizontal iris diameter, 11.7 +- 0.5 mm


def _iris_disks(template: np.ndarray) -> dict[str, np.ndarray]:
    """``iris_disk_left/right``: the visible iris, vertices of ICT's outer eyeball (sclera and
    cornea) in front of its centre within :data:`IRIS_RADIUS_MM` of its forward (+z) axis.

    ICT's ``M_Iris`` mesh is a whole inner ball that carries the iris in a texture ICT-FaceKit
    does not ship, so the disk's size is the human average, not a measurement of the scan.
    """
    out = {}
    for side in ("left", "right"):
        ids = _rng(f"sclera_{side}")
        p = template[ids]
        c = p.mean(0)
        r = np.linalg.norm(p[:, :2] - c[:2], axis=1)
        out[f"iris_disk_{side}"] = ids[(p[:, 2] > c[2]) & (r < IRIS_RADIUS_MM)]
    return out


def _ict_joints(template: np.ndarray, lm: np.ndarray | None, documented: bool, jaw_fit: "JawFit | None" = None):
    """Joints: positions (5, 3) mm, regressor (5, V), eyeball indices, skin mask.

    - eyes: centroids of the eyeball vertices (exact: uniform regressor weights);
    - jaw: the pivot of ``jawOpen``'s rotation when measured (``jaw_fit``), else on the midline,
      0.1 d above the nose bottom (landmark 33), 0.1 d behind the face contour's ear-side points
      (landmarks 0, 16): about where the condyles' axis crosses it;
    - neck (head joint): midline, 0.5 d below the nose bottom, 0.55 d behind the contour points:
      near the skull base;
    - root: the centroid of a ring around the neck one ``d`` below the chin (skin vertices within
      0.05 d of that height and 1 d of the midline).

    Jaw and neck sit inside the head where no vertex is, so they are minimum-norm affine
    combinations of the 68 landmark vertices (they follow identity changes linearly). Without the
    documented topology, proportions of the bounding box are used instead.
    """
    V = len(template)
    J = len(JOINT_NAMES)
    reg = np.zeros((J, V))
    if documented:
        skin = np.zeros(V, bool)
        skin[: ICT_RANGES["head_and_neck"][1] + 1] = True
        eyes_l, eyes_r = _rng("eyeball_left"), _rng("eyeball_right")
        eyes_idx = np.concatenate([eyes_l, eyes_r])
        reg[3, eyes_l] = 1 / len(eyes_l)
        reg[4, eyes_r] = 1 / len(eyes_r)
        e, d = head_frame(template[eyes_l].mean(0), template[eyes_r].mean(0))
        contour_z = (lm[0, 2] + lm[16, 2]) / 2
        nose_y = lm[33, 1]
        jaw = jaw_fit.pivot if jaw_fit is not None else np.array([e[0], nose_y + 0.1 * d, contour_z - 0.1 * d])
        neck = np.array([e[0], nose_y - 0.5 * d, contour_z - 0.55 * d])
        anchors = np.asarray(ICT_IBUG68)
        reg[2] = affine_regressor(template, anchors, jaw)
        reg[1] = affine_regressor(template, anchors, neck)
        # A horizontal slab through the neck, one d below the chin: its centroid lies inside the
        # neck (the mesh's lowest ring runs over the shoulders and chest instead).
        slab_y = lm[8, 1] - 1.0 * d
        slab = np.nonzero(skin & (np.abs(template[:, 1] - slab_y) < 0.05 * d) & (np.abs(template[:, 0] - e[0]) < 1.0 * d))[0]
        reg[0, slab] = 1 / len(slab)
    else:
        skin = np.ones(V, bool)
        eyes_idx = np.zeros(0, np.int64)
        lo, hi = template.min(0), template.max(0)
        size = np.maximum(hi - lo, 1e-6)
        c = (lo + hi) / 2
        pts = np.stack([
            [c[0], lo[1] + 0.05 * size[1], c[2]],  # root
            [c[0], lo[1] + 0.35 * size[1], c[2] - 0.1 * size[2]],  # neck
            [c[0], lo[1] + 0.5 * size[1], c[2]],  # jaw
            [c[0] + 0.15 * size[0], lo[1] + 0.65 * size[1], c[2] + 0.3 * size[2]],  # eye_left
            [c[0] - 0.15 * size[0], lo[1] + 0.65 * size[1], c[2] + 0.3 * size[2]],  # eye_right
        ])
        for j in range(J):
            try:
                reg[j] = affine_regressor(template, np.arange(V), pts[j])
            except ValueError:  # a flat mesh: fall back to the centroid
                reg[j] = 1 / V
    return reg @ template, reg, eyes_idx, skin


@dataclass(frozen=True)
class JawFit:
    """The rigid jaw motion inside a ``jawOpen`` blendshape: ``x -> R x + t`` on the mandible.

    ``pivot`` (3,) mm is the point on the rotation axis nearest the mandible's centroid (the jaw
    joint), ``angle`` the rotation in radians, ``residual_mm`` the mean distance between the
    rigid motion and the blendshape on the vertices it was fitted to.
    """

    R: np.ndarray
    t: np.ndarray
    pivot: np.ndarray
    angle: float
    residual_mm: float


def fit_jaw_rotation(template: np.ndarray, jaw_open: np.ndarray, candidates: np.ndarray | None = None) -> JawFit:
    """Measure the jaw rotation in a ``jawOpen`` blendshape.

    Args:
        template: (V, 3) mm.
        jaw_open: (V, 3) mm, the blendshape's offsets at weight 1.
        candidates: vertex indices that may belong to the mandible (ICT: the teeth); the ones
            moved by at least half of the largest offset among them are fitted (the lower teeth).
            Default: every vertex.

    Returns:
        :class:`JawFit` from a least-squares rigid fit (Kabsch) of those vertices' motion.
    """
    x = np.asarray(template, np.float64)
    d = np.asarray(jaw_open, np.float64)
    cand = np.arange(len(x)) if candidates is None else np.asarray(candidates, np.int64)
    mag = np.linalg.norm(d[cand], axis=1)
    if not mag.max() > 0:
        raise ValueError("jawOpen moves none of the candidate vertices; cannot measure a jaw rotation")
    idx = cand[mag >= 0.5 * mag.max()]
    X, Y = x[idx], x[idx] + d[idx]
    cx, cy = X.mean(0), Y.mean(0)
    U, _, Vt = np.linalg.svd((Y - cy).T @ (X - cx))
    R = U @ np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))]) @ Vt
    t = cy - R @ cx
    angle = float(np.arccos(np.clip((np.trace(R) - 1) / 2, -1, 1)))
    axis = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
    axis = axis / max(np.linalg.norm(axis), 1e-12)
    # (I - R) p = t has a line of solutions (the axis); take the point nearest the mandible.
    p, *_ = np.linalg.lstsq(np.eye(3) - R, t, rcond=None)
    p = p + axis * float(axis @ (cx - p))
    residual = float(np.linalg.norm(X @ R.T + t - Y, axis=1).mean())
    return JawFit(R=R, t=t, pivot=p, angle=angle, residual_mm=residual)


def jaw_pose_corrective(template: np.ndarray, jaw_open: np.ndarray, w_jaw: np.ndarray, fit: JawFit) -> np.ndarray:
    """FLAME-style pose corrective (36, V*3) mm that makes the jaw joint reproduce ``jawOpen``.

    Skinning blends the jaw's rotation into the skin with weights in [0, 1], which cannot bend the
    chin and cheeks the way ICT's scanned ``jawOpen`` does. The corrective is the rest-pose offset
    that, skinned by the jaw rotation of ``fit.angle``, lands every vertex exactly on
    ``template + jaw_open``; it is driven linearly by ``sin`` of the jaw's rotation about x (the
    (2, 1) entry of ``R - I`` of joint 2, row 16 of the 36 FLAME pose features), so a jaw rotation
    of ``fit.angle`` gives ``jawOpen`` and smaller openings a proportional share.
    """
    x = np.asarray(template, np.float64)
    w = np.asarray(w_jaw, np.float64)[:, None, None]
    R = np.cos(fit.angle) * np.eye(3) + np.sin(fit.angle) * np.array([[0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])
    R[0, 0] = 1.0
    t = fit.pivot - R @ fit.pivot
    M = w * R + (1 - w) * np.eye(3)  # (V, 3, 3) blended rotation part of each vertex's transform
    target = x + np.asarray(jaw_open, np.float64) - w[:, :, 0] * t
    c = np.linalg.solve(M, target[..., None])[..., 0] - x
    pb = np.zeros((36, x.size), np.float32)
    pb[9 + 2 * 3 + 1] = (c / np.sin(fit.angle)).reshape(-1)
    return pb


def _smooth_on_mesh(values: np.ndarray, faces: np.ndarray, free: np.ndarray, iterations: int) -> np.ndarray:
    """Average ``values`` (V,) over mesh neighbours ``iterations`` times, changing only ``free``
    vertices (the others act as fixed boundary values)."""
    import scipy.sparse as sp

    V = len(values)
    f = np.asarray(faces, np.int64)
    i = np.concatenate([f[:, 0], f[:, 1], f[:, 2], f[:, 1], f[:, 2], f[:, 0]])
    j = np.concatenate([f[:, 1], f[:, 2], f[:, 0], f[:, 0], f[:, 1], f[:, 2]])
    A = sp.csr_matrix((np.ones(len(i)), (i, j)), shape=(V, V))
    A.data[:] = 1.0  # duplicate edges count once
    deg = np.asarray(A.sum(1)).ravel()
    w = values.astype(np.float64).copy()
    for _ in range(iterations):
        avg = np.divide(A @ w, deg, out=w.copy(), where=deg > 0)
        w = np.where(free, avg, w)
    return w


def _ict_skinning(template, joints, lm, skin, eyes_idx, documented, jaw_fit: JawFit | None = None,
                  jaw_open: np.ndarray | None = None, faces: np.ndarray | None = None) -> np.ndarray:
    """Heuristic skin weights (V, 5), rows summing to 1 (``d`` = interocular distance).

    - eyeballs: 100% on their eye joint;
    - root: skin below ``chin - 0.3 d`` ramps (smoothstep) to 100% at the bottom of the neck;
    - jaw, measured (``jaw_fit`` and the ``jaw_open`` offsets given): each vertex's share of the
      fitted rotation in ``jawOpen`` (the projection of its offset on the rigid motion's, clipped
      to [0, 1]); vertices the rotation hardly moves (< 2 mm, near the pivot) and the seams
      between the two cases are filled by 30 rounds of neighbour averaging on the skin;
    - jaw, otherwise: skin below the mouth corners (ramp over 0.25 d), in front of the jaw joint
      (ramp over 0.5 d starting 0.1 d behind it) and above the throat (fades out 0.05-0.35 d
      below the chin); lower teeth and gums below the mouth line 100%;
    - neck (head): everything else, so the skull, forehead and upper face move rigidly with it.
    """
    V = len(template)
    W = np.zeros((V, len(JOINT_NAMES)))
    x, y, z = template.T
    e, d = head_frame(joints[3], joints[4])
    if lm is not None:
        chin_y, mouth_y = lm[8, 1], (lm[48, 1] + lm[54, 1]) / 2
    else:
        chin_y, mouth_y = e[1] - 1.8 * d, e[1] - 1.2 * d
    bottom = y[skin].min() if skin.any() else y.min()
    top = chin_y - 0.3 * d
    w_root = np.where(skin, smoothstep((top - y) / max(top - bottom, 1e-6)), 0.0)
    w_jaw = (
        smoothstep((mouth_y + 0.05 * d - y) / (0.25 * d))
        * smoothstep((z - (joints[2, 2] - 0.1 * d)) / (0.5 * d))
        * (1 - smoothstep((chin_y - 0.05 * d - y) / (0.3 * d)))
    )
    if jaw_fit is not None and jaw_open is not None:
        x = np.asarray(template, np.float64)
        r = x @ jaw_fit.R.T + jaw_fit.t - x
        rr = (r * r).sum(1)
        measured = rr > 2.0**2
        w_data = np.clip((np.asarray(jaw_open, np.float64) * r).sum(1) / np.maximum(rr, 1e-12), 0, 1)
        w_jaw = np.where(measured, w_data, w_jaw)
        if faces is not None:
            w_jaw = _smooth_on_mesh(w_jaw, faces, skin & ~measured, 30)
    elif documented:
        for r in ("teeth", "gums_and_tongue"):
            idx = _rng(r)
            w_jaw[idx] = (y[idx] < mouth_y).astype(float)
    if documented:
        w_jaw[_rng("eyeball_left")] = 0
        w_jaw[_rng("eyeball_right")] = 0
    w_jaw = w_jaw * (1 - w_root)
    W[:, 0] = w_root
    W[:, 2] = w_jaw
    W[:, 1] = 1 - w_root - w_jaw
    if documented:
        for j, r in ((3, "eyeball_left"), (4, "eyeball_right")):
            idx = _rng(r)
            W[idx] = 0
            W[idx, j] = 1
    return W
