"""The Python API: a drawing in, a mesh of the model and its coefficients out.

>>> from avatars.sketch import SketchModeler
>>> modeler = SketchModeler.load()                       # doctest: +SKIP
>>> result = modeler("drawing.png")                      # doctest: +SKIP
>>> result.vertices.shape, result.identity.shape         # doctest: +SKIP
(torch.Size([24591, 3]), torch.Size([1, 100]))
>>> modeler.save(result, "head.obj")                     # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from avatars.sketch import drawing as dr
from avatars.sketch.coarse import CoarseConfig, CoarseNet, coefficients_to_mesh
from avatars.sketch.fine import CoarseRender, FineNet, RefineConfig, predict_maps, refine_mesh, render_coarse

ASSETS = Path(__file__).resolve().parents[2] / "assets"
DEFAULT_WEIGHTS = ASSETS / "sketch_builtin.pt"
# What the fine network's output means (see fine.FineNet); weights made for another meaning are refused.
FINE_OUTPUT = "change from the coarse render: depth (5 mm units) and normal"


@dataclass(frozen=True)
class SketchResult:
    """One drawing's reconstruction.

    - ``vertices`` (V, 3) mm: the final mesh (coarse + fine) in the model's topology.
    - ``coarse_vertices`` (V, 3) mm: the coarse stage's mesh (the model evaluated at the coefficients).
    - ``identity`` (1, n_id) (model units, i.e. multiplied by ``identity_std``), ``expression``
      (1, n_ex), ``neck`` (1, 3) rad: the coarse coefficients.
    - ``ink`` (3, 128, 128): the network input read from the drawing; ``crop``: where it was cut.
    - ``render``: the coarse mesh seen by the fine stage's camera (the frame edits use).
    """

    vertices: Tensor
    coarse_vertices: Tensor
    identity: Tensor
    expression: Tensor
    neck: Tensor
    ink: Tensor
    crop: dr.Crop | None
    render: CoarseRender


class SketchModeler:
    """Coarse and fine networks for one morphable model. Build with :meth:`load`."""

    def __init__(self, model, coarse: CoarseNet, fine: FineNet, refine: RefineConfig = RefineConfig()):
        self.model = model
        self.coarse = coarse.eval()
        self.fine = fine.eval()
        self.refine = refine
        self.faces = dr.drawing_faces(model)
        self.editable = model.region_mask("face", missing_ok=True)
        if not bool(self.editable.any()):
            self.editable = torch.ones(model.n_vertices, dtype=torch.bool)

    @classmethod
    def load(cls, path: str | Path = DEFAULT_WEIGHTS, model=None) -> "SketchModeler":
        """Weights written by :func:`save_weights` (default: the committed ones for ``builtin``)."""
        import face3d

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"expected sketch weights at {path}; train them with `avatars sketch-train --out {path}`")
        ck = torch.load(path, map_location="cpu", weights_only=False)
        if model is None:
            model = face3d.load_model(ck["model"])
        if model.n_vertices != ck["n_vertices"] or model.n_identity != ck["n_identity"] or model.n_expression != ck["n_expression"]:
            raise ValueError(
                f"{path} was trained for model {ck['model']!r} ({ck['n_vertices']} vertices, {ck['n_identity']} identity, "
                f"{ck['n_expression']} expression components), got {model.name!r} ({model.n_vertices}, {model.n_identity}, {model.n_expression})")
        if ck.get("fine_output") != FINE_OUTPUT:
            raise ValueError(f"{path}: its fine network predicts {ck.get('fine_output', 'depth relief and absolute normals')!r}, "
                             f"this code expects {FINE_OUTPUT!r}; retrain with `avatars sketch-train --out {path}`")
        coarse = CoarseNet(ck["n_identity"], ck["n_expression"], CoarseConfig(**ck["coarse_config"]))
        coarse.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in ck["coarse"].items()})
        fine = FineNet(ck["fine_width"])
        fine.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in ck["fine"].items()})
        return cls(model, coarse, fine)

    # ------------------------------------------------------------------ stages
    def coarse_from_ink(self, ink: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(3, 128, 128) ink -> (identity (1, n_id) model units, expression, neck, vertices (V, 3) mm)."""
        with torch.no_grad():
            ident, ex, neck = self.coarse(ink[None])
            v = coefficients_to_mesh(self.model, ident, ex, neck)[0]
        return ident * self.model.identity_std, ex, neck, v

    def camera_for(self, vertices: Tensor):
        """The network-input camera for a mesh (its silhouette cut like a drawing's ink)."""
        from avatars.sketch.train import coarse_camera

        return coarse_camera(self.model, vertices)

    def fine_step(self, ink: Tensor, vertices: Tensor, render: CoarseRender, editable: Tensor,
                  refine: RefineConfig | None = None) -> Tensor:
        """Predict depth/normal maps for ``ink`` given ``render`` of ``vertices``, and move the
        ``editable`` vertices towards them (``refine``: the mesh update's weights, default
        ``self.refine``). (V, 3) mm."""
        depth, normals = predict_maps(self.fine, ink, render)
        return refine_mesh(vertices, self.faces, render.camera, depth, normals, editable, refine or self.refine, coarse=render)

    def from_ink(self, ink: Tensor, crop: dr.Crop | None = None, fine: bool = True) -> SketchResult:
        """Both stages on an already read drawing (see :func:`.drawing.read_drawing`)."""
        if ink.shape != (3, dr.SIZE, dr.SIZE):
            raise ValueError(f"ink: expected shape (3, {dr.SIZE}, {dr.SIZE}), got {tuple(ink.shape)}")
        ident, ex, neck, v = self.coarse_from_ink(ink)
        render = render_coarse(v, self.faces, self.camera_for(v))
        out = self.fine_step(ink, v, render, self.editable) if fine else v.clone()
        return SketchResult(out, v, ident, ex, neck, ink, crop, render)

    def __call__(self, image, fine: bool = True) -> SketchResult:
        """A drawing (path, PIL image, array or tensor; see :func:`.drawing.read_drawing`) -> result.

        Raises :class:`.drawing.SketchInputError` for blank pages, photos and non-images.
        """
        ink, crop = dr.read_drawing(image)
        return self.from_ink(ink, crop, fine)

    def save(self, result: SketchResult, path: str | Path, coarse: bool = False) -> None:
        """Write the mesh (OBJ, PLY or GLB by extension); OBJ and PLY carry the model's UVs."""
        from face3d.geometry.mesh_io import Mesh, save_mesh

        from face3d.geometry.normals import vertex_normals

        v = result.coarse_vertices if coarse else result.vertices
        m = self.model
        if str(path).lower().endswith(".glb"):
            # GLB holds one UV per vertex and the model's UVs have seams: keep the vertex order
            # and smooth normals, drop the UVs (OBJ and PLY keep them).
            n = vertex_normals(v.double(), m.faces).numpy()
            save_mesh(path, Mesh(vertices=v.double().numpy(), faces=m.faces.numpy(), normals=n))
            return
        save_mesh(path, Mesh(vertices=v.double().numpy(), faces=m.faces.numpy(), uvs=m.uvs.numpy(), uv_faces=m.uv_faces.numpy()))


def save_weights(path: str | Path, model, coarse: CoarseNet, fine: FineNet, extra: dict | None = None) -> str:
    """Write both networks (float16) with what they were trained for; returns the file's sha256."""
    from face3d.fileio import atomic_write_bytes
    import io

    ck = {
        "model": model.name, "n_vertices": model.n_vertices, "n_identity": model.n_identity,
        "n_expression": model.n_expression, "coarse_config": coarse.cfg.__dict__,
        "coarse": {k: v.half() if v.is_floating_point() else v for k, v in coarse.state_dict().items()},
        "fine_width": fine.e1[0].out_channels, "fine_output": FINE_OUTPUT,
        "fine": {k: v.half() if v.is_floating_point() else v for k, v in fine.state_dict().items()},
        **(extra or {}),
    }
    buf = io.BytesIO()
    torch.save(ck, buf)
    data = buf.getvalue()
    atomic_write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()
