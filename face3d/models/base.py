"""The morphable head model every part of the toolkit works on.

A :class:`MorphableModel` is a linear shape model (identity + expression blendshapes) followed by
linear blend skinning with FLAME's joint layout. All lengths are **millimetres**, all angles
**radians** (axis-angle vectors), coordinates are right-handed with +x to the subject's left,
+y up and +z out of the face (towards a frontal camera).

Joints, in this order for every model: ``root`` (global rotation, at the base of the neck),
``neck`` (the head joint: the skull is rigidly attached to it), ``jaw``, ``eye_left``,
``eye_right``. Parents: ``[-1, 0, 1, 1, 1]``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from face3d.geometry.rotations import axis_angle_to_matrix

JOINT_NAMES = ("root", "neck", "jaw", "eye_left", "eye_right")
JOINT_PARENTS = (-1, 0, 1, 1, 1)
HEAD_JOINT = 1  # "neck": the joint the skull moves with

# Regions every model must name (vertex index sets).
REQUIRED_REGIONS = ("face", "scalp_back", "upper_face", "lips", "eyes", "neck")


class ModelFormatError(ValueError):
    """A model file is missing, truncated or not in the expected format."""


@dataclass(frozen=True)
class LandmarkSet:
    """Landmarks as barycentric points on the mesh.

    ``vertex_ids`` (L, 3) int64 and ``weights`` (L, 3) float32 (rows sum to 1). A landmark that
    sits on a vertex ``i`` is ``([i, i, i], [1, 0, 0])``.
    """

    vertex_ids: Tensor
    weights: Tensor

    @staticmethod
    def from_vertices(ids: Sequence[int] | np.ndarray | Tensor) -> "LandmarkSet":
        ids = torch.as_tensor(np.asarray(ids), dtype=torch.int64).reshape(-1)
        w = torch.zeros(len(ids), 3)
        w[:, 0] = 1
        return LandmarkSet(ids[:, None].repeat(1, 3), w)

    def __len__(self) -> int:
        return int(self.vertex_ids.shape[0])

    def gather(self, vertices: Tensor) -> Tensor:
        """(B, V, 3) vertices -> (B, L, 3) landmark positions (same units)."""
        v = vertices[:, self.vertex_ids.to(vertices.device)]  # (B, L, 3, 3)
        return (v * self.weights.to(vertices)[None, :, :, None]).sum(-2)


@dataclass(frozen=True)
class ModelOutput:
    """Result of a :class:`MorphableModel` forward pass (batch first, millimetres).

    - ``vertices`` (B, V, 3): posed mesh.
    - ``shaped`` (B, V, 3): identity + expression applied, before any joint rotation or
      translation (the "rest pose" the skinning maps from).
    - ``joints`` (B, J, 3): posed joint centres.
    - ``joint_transforms`` (B, J, 4, 4): per-joint maps from the rest pose (``shaped``) to posed
      space, translation included; a vertex skinned 100% to joint j moves by this.
    - ``skull_transform`` (B, 4, 4): ``joint_transforms[:, HEAD_JOINT]``, the rigid motion of the
      skull. Everything a stabilizer removes.
    """

    vertices: Tensor
    shaped: Tensor
    joints: Tensor
    joint_transforms: Tensor
    skull_transform: Tensor


def _as_tensor(name: str, x, dtype, shape_tail: tuple[int, ...] | None = None, source: str = "") -> Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x).to(dtype)
    if shape_tail is not None and tuple(t.shape[-len(shape_tail):]) != shape_tail:
        raise ModelFormatError(
            f"{name}: expected trailing shape {shape_tail}, got {tuple(t.shape)}{' in ' + source if source else ''}"
        )
    return t


class MorphableModel(nn.Module):
    """Linear identity/expression model + LBS with FLAME's five joints, in millimetres.

    Attributes (tensors are registered buffers, so ``.to(device)`` moves them):

    - ``template`` (V, 3) float32 mm; ``faces`` (F, 3) int64; ``uvs`` (T, 2) float32 in [0, 1]
      (v up) and ``uv_faces`` (F, 3) int64 indexing ``uvs`` (UV seams allowed).
    - ``identity_basis`` (V, 3, n_identity) mm per unit coefficient; identity coefficients have
      prior N(0, ``identity_std``²) per component (``identity_std`` (n_identity,), 1 for models
      whose basis is already scaled by the PCA standard deviations, which all loaders here do).
    - ``expression_basis`` (V, 3, n_expression) mm per unit coefficient; ``expression_names``;
      ``expression_std`` (n_expression,): the prior scale. ARKit-style blendshape models
      (built-in, ICT) use weights in [0, 1] (std 0.5 documents the typical range); FLAME's PCA
      expressions are ~N(0, 1).
    - ``joint_regressor`` (J, V) float32: joint centres as weighted vertex sums of the shaped mesh.
    - ``skin_weights`` (V, J) float32, rows sum to 1.
    - ``pose_basis`` optional (36, V*3) mm: FLAME-style pose correctives driven by the flattened
      ``R - I`` of joints 1..4.
    - ``landmarks``: name -> :class:`LandmarkSet` (at least ``"ibug68"``).
    - ``regions``: name -> (n,) int64 sorted vertex indices (at least :data:`REQUIRED_REGIONS`).
    - ``albedo`` optional (V, 3) float32 in [0, 1]: a default per-vertex skin/eye/lip colour
      (sRGB-ish display values) for previews and synthetic renders; ``None`` when the model has none.
    """

    def __init__(
        self,
        *,
        name: str,
        template,
        faces,
        identity_basis,
        expression_basis,
        expression_names: Sequence[str],
        joint_regressor,
        skin_weights,
        landmarks: Mapping[str, LandmarkSet],
        regions: Mapping[str, Sequence[int] | np.ndarray | Tensor],
        uvs=None,
        uv_faces=None,
        identity_std=None,
        expression_std=None,
        pose_basis=None,
        albedo=None,
        source: str = "",
    ) -> None:
        super().__init__()
        self.name = name
        self.source = source
        src = source or name
        template = _as_tensor("template", template, torch.float32, (3,), src)
        if template.dim() != 2:
            raise ModelFormatError(f"template: expected shape (V, 3), got {tuple(template.shape)} in {src}")
        V = template.shape[0]
        faces = _as_tensor("faces", faces, torch.int64, (3,), src)
        if faces.dim() != 2:
            raise ModelFormatError(f"faces: expected shape (F, 3), got {tuple(faces.shape)} in {src}")
        if faces.numel() and (faces.min() < 0 or faces.max() >= V):
            raise ModelFormatError(
                f"faces: expected indices in [0, {V}), found [{int(faces.min())}, {int(faces.max())}] in {src}"
            )
        idb = _as_tensor("identity_basis", identity_basis, torch.float32, None, src)
        exb = _as_tensor("expression_basis", expression_basis, torch.float32, None, src)
        for nm, b in (("identity_basis", idb), ("expression_basis", exb)):
            if b.dim() != 3 or b.shape[:2] != (V, 3):
                raise ModelFormatError(f"{nm}: expected shape ({V}, 3, K), got {tuple(b.shape)} in {src}")
        expression_names = list(expression_names)
        if len(expression_names) != exb.shape[2]:
            raise ModelFormatError(
                f"expression_names: expected {exb.shape[2]} names (one per expression component), got {len(expression_names)} in {src}"
            )
        jr = _as_tensor("joint_regressor", joint_regressor, torch.float32, None, src)
        if tuple(jr.shape) != (len(JOINT_NAMES), V):
            raise ModelFormatError(f"joint_regressor: expected shape ({len(JOINT_NAMES)}, {V}), got {tuple(jr.shape)} in {src}")
        sw = _as_tensor("skin_weights", skin_weights, torch.float32, None, src)
        if tuple(sw.shape) != (V, len(JOINT_NAMES)):
            raise ModelFormatError(f"skin_weights: expected shape ({V}, {len(JOINT_NAMES)}), got {tuple(sw.shape)} in {src}")
        if uvs is None:
            uvs = torch.zeros(1, 2)
            uv_faces = torch.zeros_like(faces)
        uvs = _as_tensor("uvs", uvs, torch.float32, (2,), src)
        uv_faces = _as_tensor("uv_faces", uv_faces, torch.int64, (3,), src)
        if uv_faces.shape != faces.shape:
            raise ModelFormatError(f"uv_faces: expected shape {tuple(faces.shape)} (like faces), got {tuple(uv_faces.shape)} in {src}")
        ids = torch.ones(idb.shape[2]) if identity_std is None else _as_tensor("identity_std", identity_std, torch.float32)
        exs = torch.ones(exb.shape[2]) if expression_std is None else _as_tensor("expression_std", expression_std, torch.float32)
        self.register_buffer("template", template)
        self.register_buffer("faces", faces)
        self.register_buffer("uvs", uvs)
        self.register_buffer("uv_faces", uv_faces)
        self.register_buffer("identity_basis", idb)
        self.register_buffer("expression_basis", exb)
        self.register_buffer("identity_std", ids.reshape(-1))
        self.register_buffer("expression_std", exs.reshape(-1))
        self.register_buffer("joint_regressor", jr)
        self.register_buffer("skin_weights", sw)
        if pose_basis is not None:
            pb = _as_tensor("pose_basis", pose_basis, torch.float32, None, src)
            if tuple(pb.shape) != (36, V * 3):
                raise ModelFormatError(f"pose_basis: expected shape (36, {V * 3}), got {tuple(pb.shape)} in {src}")
            self.register_buffer("pose_basis", pb)
        else:
            self.pose_basis = None
        if albedo is not None:
            alb = _as_tensor("albedo", albedo, torch.float32, None, src)
            if tuple(alb.shape) != (V, 3):
                raise ModelFormatError(f"albedo: expected shape ({V}, 3), got {tuple(alb.shape)} in {src}")
            self.register_buffer("albedo", alb)
        else:
            self.albedo = None
        self.expression_names = expression_names
        self.landmarks = dict(landmarks)
        for k, lm in self.landmarks.items():
            if lm.vertex_ids.numel() and (lm.vertex_ids.min() < 0 or lm.vertex_ids.max() >= V):
                raise ModelFormatError(f"landmarks[{k!r}]: vertex index out of range [0, {V}) in {src}")
        self.regions = {k: torch.as_tensor(np.unique(np.asarray(v)), dtype=torch.int64) for k, v in regions.items()}
        for k, r in self.regions.items():
            if r.numel() and (r.min() < 0 or r.max() >= V):
                raise ModelFormatError(f"regions[{k!r}]: vertex index out of range [0, {V}) in {src}")
        self.register_buffer("parents", torch.tensor(JOINT_PARENTS, dtype=torch.int64))

    # ------------------------------------------------------------------ attributes
    @property
    def n_vertices(self) -> int:
        return int(self.template.shape[0])

    @property
    def n_faces(self) -> int:
        return int(self.faces.shape[0])

    @property
    def n_identity(self) -> int:
        return int(self.identity_basis.shape[2])

    @property
    def n_expression(self) -> int:
        return int(self.expression_basis.shape[2])

    @property
    def joint_names(self) -> tuple[str, ...]:
        return JOINT_NAMES

    def expression_index(self, name: str) -> int:
        try:
            return self.expression_names.index(name)
        except ValueError:
            raise KeyError(f"expression {name!r} not in model {self.name!r}; it has {self.expression_names}") from None

    def region(self, name: str) -> Tensor:
        if name not in self.regions:
            raise KeyError(f"region {name!r} not in model {self.name!r}; it has {sorted(self.regions)}")
        return self.regions[name]

    def region_mask(self, *names: str, missing_ok: bool = False) -> Tensor:
        """(V,) bool: True on the vertices of any of the named regions. A name the model lacks
        raises ``KeyError`` unless ``missing_ok`` (then it adds nothing)."""
        mask = torch.zeros(self.n_vertices, dtype=torch.bool, device=self.template.device)
        for name in names:
            if missing_ok and name not in self.regions:
                continue
            mask[self.region(name)] = True
        return mask

    def landmark_positions(self, vertices: Tensor, name: str = "ibug68") -> Tensor:
        """(B, V, 3) vertices -> (B, L, 3) positions of landmark set ``name``."""
        if name not in self.landmarks:
            raise KeyError(f"landmark set {name!r} not in model {self.name!r}; it has {sorted(self.landmarks)}")
        self.check_vertices(vertices, "vertices")
        return self.landmarks[name].gather(vertices)

    def check_vertices(self, vertices: Tensor, what: str = "mesh") -> None:
        """Raise unless ``vertices`` is (..., V, 3) with this model's V."""
        if vertices.dim() < 2 or vertices.shape[-1] != 3 or vertices.shape[-2] != self.n_vertices:
            raise ValueError(
                f"expected a mesh with {self.n_vertices} vertices (the {self.name} topology), "
                f"got shape {tuple(vertices.shape)} for {what}"
            )

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        identity: Tensor | None = None,
        expression: Tensor | None = None,
        neck: Tensor | None = None,
        jaw: Tensor | None = None,
        eyes: Tensor | None = None,
        rotation: Tensor | None = None,
        translation: Tensor | None = None,
        batch_size: int | None = None,
    ) -> ModelOutput:
        """Evaluate the model. Every argument is optional and zero by default.

        Args:
            identity: (B, n_identity) coefficients (prior N(0, identity_std²)).
            expression: (B, n_expression) coefficients (blendshape weights for ARKit-style models).
            neck: (B, 3) axis-angle (radians) of the head about the neck joint.
            jaw: (B, 3) axis-angle of the jaw; opening the mouth is a positive rotation about +x.
            eyes: (B, 6) axis-angle of the left then the right eyeball.
            rotation: (B, 3) global axis-angle about the root joint.
            translation: (B, 3) global translation in mm.
            batch_size: B when no argument is given (default 1).

        Returns:
            :class:`ModelOutput` with vertices (B, V, 3) mm, differentiable w.r.t. every input.
        """
        sizes = {
            "identity": self.n_identity, "expression": self.n_expression, "neck": 3, "jaw": 3,
            "eyes": 6, "rotation": 3, "translation": 3,
        }
        given = {"identity": identity, "expression": expression, "neck": neck, "jaw": jaw,
                 "eyes": eyes, "rotation": rotation, "translation": translation}
        B = batch_size
        ref = self.template
        for k, v in given.items():
            if v is None:
                continue
            if not isinstance(v, Tensor):
                raise TypeError(f"{k}: expected a torch.Tensor of shape (B, {sizes[k]}), got {type(v).__name__}")
            if v.dim() != 2 or v.shape[1] != sizes[k]:
                raise ValueError(
                    f"{k}: expected shape (B, {sizes[k]}) for model {self.name!r}, got {tuple(v.shape)}"
                )
            if B is None:
                B = v.shape[0]
            elif v.shape[0] != B:
                raise ValueError(f"{k}: batch size {v.shape[0]} does not match the others ({B})")
            if v.is_floating_point():
                ref = v
        B = 1 if B is None else B
        dtype = ref.dtype if ref.is_floating_point() else torch.float32
        device = self.template.device

        def get(k: str) -> Tensor:
            v = given[k]
            return torch.zeros(B, sizes[k], dtype=dtype, device=device) if v is None else v.to(dtype)

        tmpl = self.template.to(dtype)
        v = tmpl.expand(B, -1, -1)
        if identity is not None:
            v = v + torch.einsum("vck,bk->bvc", self.identity_basis.to(dtype), get("identity"))
        if expression is not None:
            v = v + torch.einsum("vck,bk->bvc", self.expression_basis.to(dtype), get("expression"))
        shaped = v
        joints_rest = torch.einsum("jv,bvc->bjc", self.joint_regressor.to(dtype), shaped)  # (B, J, 3)

        eyes_t = get("eyes")
        aa = torch.stack([get("rotation"), get("neck"), get("jaw"), eyes_t[:, :3], eyes_t[:, 3:]], dim=1)
        R = axis_angle_to_matrix(aa)  # (B, J, 3, 3)
        if self.pose_basis is not None:
            eye3 = torch.eye(3, dtype=dtype, device=device)
            feat = (R[:, 1:] - eye3).reshape(B, -1)  # (B, 36)
            shaped_posed = shaped + (feat @ self.pose_basis.to(dtype)).reshape(B, -1, 3)
        else:
            shaped_posed = shaped

        # Forward kinematics: world transform of each joint, then relative to its rest position.
        G = []
        for j, p in enumerate(JOINT_PARENTS):
            t = joints_rest[:, j] if p < 0 else joints_rest[:, j] - joints_rest[:, p]
            local = _rt(R[:, j], t)
            G.append(local if p < 0 else G[p] @ local)
        G = torch.stack(G, dim=1)  # (B, J, 4, 4)
        posed_joints = G[..., :3, 3]
        A = G.clone()
        A[..., :3, 3] = G[..., :3, 3] - (G[..., :3, :3] @ joints_rest[..., None])[..., 0]
        trans = get("translation")
        A[..., :3, 3] = A[..., :3, 3] + trans[:, None]
        T = torch.einsum("vj,bjmn->bvmn", self.skin_weights.to(dtype), A)  # (B, V, 4, 4)
        verts = (T[..., :3, :3] @ shaped_posed[..., None])[..., 0] + T[..., :3, 3]
        return ModelOutput(
            vertices=verts,
            shaped=shaped,
            joints=posed_joints + trans[:, None],
            joint_transforms=A,
            skull_transform=A[:, HEAD_JOINT],
        )

    # ------------------------------------------------------------------ persistence
    def save_npz(self, path: str | Path, quantum_mm: float | None = None) -> None:
        """Write the model in this toolkit's ``.npz`` model format (read back with :func:`load_npz`).

        The file is byte-identical for identical models (fixed zip timestamps and member order),
        so a build command can be checked by its checksum. ``quantum_mm``: store the identity and
        expression bases as int16 multiples of this many mm (with ``<name>.quantum`` beside them),
        which halves the file; every value must fit in int16 at that quantum.
        """
        arrays = {
            "format": np.array("face3d-morphable-model-v1"),
            "name": np.array(self.name),
            "template": self.template.cpu().numpy(),
            "faces": self.faces.cpu().numpy().astype(np.int32),
            "uvs": self.uvs.cpu().numpy(),
            "uv_faces": self.uv_faces.cpu().numpy().astype(np.int32),
            "identity_basis": self.identity_basis.cpu().numpy(),
            "expression_basis": self.expression_basis.cpu().numpy(),
            "identity_std": self.identity_std.cpu().numpy(),
            "expression_std": self.expression_std.cpu().numpy(),
            "expression_names": np.array(self.expression_names),
            "joint_regressor": self.joint_regressor.cpu().numpy(),
            "skin_weights": self.skin_weights.cpu().numpy(),
        }
        if quantum_mm is not None:
            for k in ("identity_basis", "expression_basis"):
                q = np.round(arrays[k].astype(np.float64) / quantum_mm)
                if q.size and np.abs(q).max() > np.iinfo(np.int16).max:
                    raise ValueError(f"{k}: values up to {np.abs(arrays[k]).max():.1f} mm do not fit int16 at "
                                     f"quantum {quantum_mm} mm; use a larger quantum")
                arrays[k] = q.astype(np.int16)
                arrays[k + ".quantum"] = np.array(quantum_mm, np.float64)
        if self.pose_basis is not None:
            arrays["pose_basis"] = self.pose_basis.cpu().numpy()
        if self.albedo is not None:
            arrays["albedo"] = self.albedo.cpu().numpy()
        for k, lm in self.landmarks.items():
            arrays[f"landmarks/{k}/vertex_ids"] = lm.vertex_ids.cpu().numpy().astype(np.int32)
            arrays[f"landmarks/{k}/weights"] = lm.weights.cpu().numpy()
        for k, r in self.regions.items():
            arrays[f"regions/{k}"] = r.cpu().numpy().astype(np.int32)
        from face3d.fileio import atomic_write

        atomic_write(path, lambda f: write_npz_deterministic(f, arrays))


def write_npz_deterministic(f, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` as a compressed ``.npz`` into the binary file ``f``, reproducibly:
    members in sorted order, each with the zip epoch as its timestamp (``np.savez`` stamps the
    current time, so two saves of one model differ)."""
    import io
    import zipfile

    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as z:
        for k in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(arrays[k]), allow_pickle=False)
            info = zipfile.ZipInfo(k + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, buf.getvalue(), compresslevel=6)


def _rt(R: Tensor, t: Tensor) -> Tensor:
    """(B, 3, 3), (B, 3) -> (B, 4, 4) homogeneous transform."""
    B = R.shape[0]
    out = torch.zeros(B, 4, 4, dtype=R.dtype, device=R.device)
    out[:, :3, :3] = R
    out[:, :3, 3] = t
    out[:, 3, 3] = 1
    return out


def load_npz(path: str | Path) -> MorphableModel:
    """Read a model written by :meth:`MorphableModel.save_npz`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        data = np.load(path, allow_pickle=False)
        files = set(data.files)
    except Exception as e:  # zipfile.BadZipFile, EOFError, ValueError, ...
        raise ModelFormatError(f"could not read {path} as a face3d .npz model ({type(e).__name__}: {e}); "
                               "the file is truncated or not an .npz archive") from e
    required = ["template", "faces", "identity_basis", "expression_basis", "expression_names",
                "joint_regressor", "skin_weights"]
    missing = [k for k in required if k not in files]
    if missing or "format" not in files or str(data["format"]) != "face3d-morphable-model-v1":
        raise ModelFormatError(
            f"{path} is not a face3d model file: expected format 'face3d-morphable-model-v1' with arrays "
            f"{required}, found arrays {sorted(files)}"
        )
    try:
        arrays = {k: data[k] for k in data.files}
    except Exception as e:
        raise ModelFormatError(f"{path} is truncated or corrupt ({type(e).__name__}: {e})") from e
    for k in [k for k in arrays if k.endswith(".quantum")]:  # int16 bases written with quantum_mm
        base = k[: -len(".quantum")]
        arrays[base] = (arrays[base].astype(np.float32) * np.float32(arrays.pop(k)))
    landmarks = {}
    for k in files:
        if k.startswith("landmarks/") and k.endswith("/vertex_ids"):
            nm = k.split("/")[1]
            landmarks[nm] = LandmarkSet(torch.as_tensor(arrays[k].astype(np.int64)),
                                        torch.as_tensor(arrays[f"landmarks/{nm}/weights"].astype(np.float32)))
    regions = {k.split("/", 1)[1]: arrays[k].astype(np.int64) for k in files if k.startswith("regions/")}
    return MorphableModel(
        name=str(arrays.get("name", path.stem)),
        template=arrays["template"],
        faces=arrays["faces"].astype(np.int64),
        uvs=arrays.get("uvs"),
        uv_faces=arrays["uv_faces"].astype(np.int64) if "uv_faces" in arrays else None,
        identity_basis=arrays["identity_basis"],
        expression_basis=arrays["expression_basis"],
        identity_std=arrays.get("identity_std"),
        expression_std=arrays.get("expression_std"),
        expression_names=[str(s) for s in arrays["expression_names"]],
        joint_regressor=arrays["joint_regressor"],
        skin_weights=arrays["skin_weights"],
        pose_basis=arrays.get("pose_basis"),
        albedo=arrays.get("albedo"),
        landmarks=landmarks,
        regions=regions,
        source=str(path),
    )
