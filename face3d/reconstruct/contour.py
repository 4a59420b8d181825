"""Sliding jaw contour: where the 17 iBUG-68 contour landmarks (0-16) lie on a posed head.

A detector's contour landmarks are not points on the skin: they mark the face's *outline* in the
image at a given height, so when the head turns they move across the cheek to the silhouette
(and the skin points the model's fixed contour vertices sit on go out of sight behind it). A fit
that ties them to fixed vertices either turns the head too little or bends the jaw.

:class:`SlidingContour` gives each contour landmark a band of candidate vertices (any
:class:`~face3d.models.MorphableModel` with an ``ibug68`` landmark set and a ``face`` region):
face vertices (nose, eyes, lips and mouth left out) near the line that leaves the nose's centre
through the landmark (frontal view, rest pose) and in the outer part of it: lateral for the
upper contour, downward near the chin (horizontal lines, as the iBUG annotation protocol implies
for the cheeks, would cut the nearly horizontal outline near the chin at the wrong place). For the
current pose the landmark is the band's outermost point along the image direction of that line,
i.e. the silhouette on it (after Zhu et al., "High-Fidelity Pose and Expression Normalization",
CVPR 2015, who slide contour landmarks along parallel lines). The chin (8) stays
a fixed vertex. A soft maximum (temperature ``tau`` in units of the outer-eye distance) keeps the
choice differentiable and stable under small pose changes.
"""
from __future__ import annotations

import torch
from torch import Tensor

from face3d.geometry.rotations import axis_angle_to_matrix
from face3d.models.base import MorphableModel

CONTOUR = tuple(range(17))
CHIN = 8
_EXCLUDE = ("nose", "eyes", "lips", "mouth_interior", "eyeball_left", "eyeball_right")


class SlidingContour:
    """Candidate bands of the 17 contour landmarks of ``model`` and their silhouette points.

    Args:
        model: the full morphable model (mm; head frame: +x the head's left, +y up, +z forward).
        band: half-width of each landmark's band, as a fraction of the rest-pose eye-to-chin
            height (landmark 8 to the eyes' centre).
        inner: a candidate must be at least this fraction of the landmark's own distance from the
            nose's centre along the line (keeps the nose and mouth out of the bands).
        outer: ... and at most (1 + ``outer``) times it, so that a frontal face's contour is the
            model's own contour landmarks.
        tau: soft-maximum temperature, fraction of the outer-eye distance in the image.
        name: the landmark set (default ``ibug68``).

    Attributes:
        ids: (16, K) int64 full-model vertex ids of the bands (-1 = padding), one row per sliding
            landmark (:attr:`landmarks`, i.e. 0-16 without the chin).
        outward: (16, 3) head-frame unit vectors (z = 0): each band's outward direction.
    """

    def __init__(self, model: MorphableModel, band: float = 0.05, inner: float = 0.5, outer: float = 0.02,
                 tau: float = 0.01, name: str = "ibug68") -> None:
        t = model.template
        lm = model.landmark_positions(t[None], name)[0]  # (68, 3) rest pose
        if lm.shape[0] != 68:
            raise ValueError(f"SlidingContour: expected a 68-point landmark set {name!r}, got {lm.shape[0]} points")
        pool = model.region_mask("face") & ~model.region_mask(*_EXCLUDE, missing_ok=True)
        centre = lm[27:36, :2].mean(0)  # the nose: the centre the contour's outward lines leave from
        height = float((lm[36:48].mean(0) - lm[CHIN]).norm())
        self.landmarks = torch.tensor([j for j in CONTOUR if j != CHIN])
        rows, dirs = [], []
        for j in self.landmarks.tolist():  # 16 landmarks, not vertices
            r = lm[j, :2] - centre
            n = r / r.norm()
            rel = t[:, :2] - lm[j, :2]
            across = (rel[:, 0] * n[1] - rel[:, 1] * n[0]).abs()  # distance from the outward line
            along = (t[:, :2] - centre) @ n
            # Not beyond the landmark's own vertex (plus ``outer``): facing the camera, the band's
            # outermost point is then the model's annotated contour point, not the edge of the
            # face region (which reaches past the visible cheek towards the ears).
            ok = (pool & (across <= band * height) & (along >= inner * float(r.norm()))
                  & (along <= (1 + outer) * float(r.norm())))
            rows.append(ok.nonzero()[:, 0])
            dirs.append(torch.cat([n, torch.zeros(1)]))
        K = max(1, max(r.numel() for r in rows))
        self.ids = torch.full((len(rows), K), -1, dtype=torch.int64)
        for i, r in enumerate(rows):
            self.ids[i, : r.numel()] = r
        self.outward = torch.stack(dirs)
        self.tau = tau
        self.n_vertices = model.n_vertices
        self._maps: dict[int, Tensor] = {}

    @property
    def vertex_ids(self) -> Tensor:
        """(n,) int64 sorted unique full-model ids of all band vertices (for :func:`restrict_model`)."""
        v = self.ids[self.ids >= 0]
        return torch.unique(v)

    def _ids_in(self, mdl: MorphableModel) -> Tensor:
        """The bands in ``mdl``'s vertex numbering: the full model, or a sub-model made by
        :func:`~face3d.reconstruct.synthetic.restrict_model` (which records ``parent_vertex_ids``).
        Band vertices the sub-model lacks become padding (-1)."""
        key = id(mdl)
        if key not in self._maps:
            parent = getattr(mdl, "parent_vertex_ids", None)
            if parent is None:
                if mdl.n_vertices != self.n_vertices:
                    raise ValueError(f"SlidingContour: model {mdl.name!r} has {mdl.n_vertices} vertices, neither the "
                                     f"full model's {self.n_vertices} nor a restrict_model sub-model")
                self._maps[key] = self.ids
            else:
                pos = torch.searchsorted(parent, self.ids.clamp_min(0)).clamp_max(parent.numel() - 1)
                hit = (parent[pos] == self.ids) & (self.ids >= 0)
                self._maps[key] = torch.where(hit, pos, torch.full_like(pos, -1))
        return self._maps[key]

    def slide(self, mdl: MorphableModel, vertices: Tensor, landmarks2d: Tensor, project_fn, rotation: Tensor,
              iod: Tensor) -> Tensor:
        """Replace the contour landmarks of ``landmarks2d`` by their silhouette points.

        Args:
            mdl: the model ``vertices`` belong to (full or a sub-model).
            vertices: (B, V_mdl, 3) posed vertices, mm.
            landmarks2d: (B, 68, 2) px, the fixed-vertex landmarks' projections.
            project_fn: (B, N, 3) mm -> (B, N, 2) px, the fit's camera.
            rotation: (B, 3) axis-angle head rotation (rad): its x axis gives the image's
                left-right direction of the face.
            iod: (B,) px outer-eye distance (scales the soft maximum).

        Returns:
            (B, 68, 2) px; a landmark whose band is empty in ``mdl`` keeps its fixed vertex.
        """
        ids = self._ids_in(mdl)
        B = vertices.shape[0]
        L, K = ids.shape
        q = project_fn(vertices[:, ids.clamp_min(0).reshape(-1)]).reshape(B, L, K, 2)
        a = torch.einsum("bij,lj->bli", axis_angle_to_matrix(rotation), self.outward)  # (B, L, 3) world
        d = torch.stack([a[..., 0], -a[..., 1]], -1)  # image x = world x, image y = -world y
        d = d / d.norm(dim=-1, keepdim=True).clamp_min(1e-8)
        score = (q * d[:, :, None]).sum(-1)  # (B, L, K) px along each landmark's outward direction
        score = score.masked_fill((ids < 0)[None], float("-inf"))
        w = torch.softmax(score / (self.tau * iod[:, None, None]).clamp_min(1e-3), dim=-1)
        pts = (w[..., None] * q).sum(-2)  # (B, L, 2)
        has = (ids >= 0).any(-1)
        out = landmarks2d.clone()
        idx = self.landmarks[has]
        out[:, idx] = pts[:, has]
        return out
