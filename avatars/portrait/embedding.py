"""Mesh-embedded coordinates: a point near a posed mesh -> the same place near the canonical mesh.

A point ``x`` near frame ``t``'s posed mesh is described by its closest point on the mesh
(triangle ``f``, barycentrics ``b``) and the offset ``x - p`` written in ``f``'s local frame
(edge, in-plane perpendicular, face normal). The canonical point is the same barycentric point
on the canonical mesh (identity only: no expression, no pose) plus the same local offset in the
canonical triangle's frame. So a point on the mesh of any frame maps exactly to the canonical
point with the same barycentrics, whatever that frame's expression and pose, and a point 5 mm
above the cheek stays 5 mm above the cheek.

Closest triangles are found among the ``k`` triangles whose centroids are nearest, then exactly
by point-triangle distance among those. The ``k`` nearest centroids come from one of two exact
searches (the same triangles up to distance ties):

- ``"kdtree"``: a k-d tree per frame (:class:`scipy.spatial.cKDTree`, CPU numpy); for CUDA
  inputs this costs a device -> host copy of the points and a host -> device copy of the result.
- ``"torch"``: brute force in torch on the inputs' device (every centroid's distance, in blocks
  of :data:`CANDIDATE_BUDGET` distances, then ``topk``): no host round trip, O(N F) work.
  (Pruning by bounding spheres of triangle groups was tried: on the bundled head, whose mouth,
  eye and teeth layers overlap, 44-99 % of shell samples still needed the full search.)

``search="auto"`` (default) uses the torch search for CUDA points and the k-d tree otherwise, so
CPU runs are unchanged. Everything else is float32 torch on the device of the inputs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from face3d.geometry.closest import closest_point_on_triangles

Search = Literal["auto", "kdtree", "torch"]
# Most (query, centroid) distances the torch search holds at once: on the CPU 2^24 floats = 64 MB
# (343 queries against the bundled head's 48,836 triangles per block); on CUDA 2^28 = 1 GB
# (5,496 queries), so a 512² frame's ~10^6 samples take ~200 blocks, not thousands of launches.
CANDIDATE_BUDGET = 1 << 24
CUDA_CANDIDATE_BUDGET = 1 << 28


@dataclass(frozen=True)
class Embedded:
    """Where ``N`` query points sit relative to a mesh (all (N, ...) tensors).

    Attributes:
        triangle: (N,) int64 index of the closest triangle.
        bary: (N, 3) barycentrics of the closest point on it.
        closest: (N, 3) the closest point, mm.
        distance: (N,) unsigned distance to the mesh, mm.
        height: (N,) signed offset along the triangle's normal (positive outside), mm.
        local: (N, 3) the offset ``x - closest`` in the triangle's frame, mm.
    """

    triangle: Tensor
    bary: Tensor
    closest: Tensor
    distance: Tensor
    height: Tensor
    local: Tensor


def triangle_frames(vertices: Tensor, faces: Tensor) -> Tensor:
    """(..., V, 3) vertices, (F, 3) faces -> (..., F, 3, 3) orthonormal frames; rows are the first
    edge direction, the in-plane perpendicular and the unit face normal (right-handed)."""
    return _frames_of(*(vertices[..., faces[:, i], :] for i in range(3)))


class MeshEmbedding:
    """Closest-triangle queries and canonical mapping against one mesh topology.

    Args:
        faces: (F, 3) int triangle indices.
        canonical: (V, 3) the canonical mesh (mm), e.g. the model with only the identity applied.
        k: centroids examined per query (more is slower and finds the true closest triangle
            more often far from the surface; on the surface the containing triangle is found
            for any sensible ``k``).
        search: nearest-centroid search (see the module docstring): ``"auto"`` is ``"torch"``
            for CUDA points and ``"kdtree"`` otherwise.
    """

    def __init__(self, faces: Tensor, canonical: Tensor, k: int = 8, search: Search = "auto"):
        if faces.dim() != 2 or faces.shape[1] != 3:
            raise ValueError(f"faces: expected (F, 3) int, got {tuple(faces.shape)}")
        if canonical.dim() != 2 or canonical.shape[1] != 3:
            raise ValueError(f"canonical: expected (V, 3) mm, got {tuple(canonical.shape)}")
        if k < 1:
            raise ValueError(f"k: expected at least 1 candidate triangle, got {k}")
        if search not in ("auto", "kdtree", "torch"):
            raise ValueError(f"search: expected 'auto', 'kdtree' or 'torch', got {search!r}")
        self.faces = faces.long()
        self.canonical = canonical.float()
        self.k = int(min(k, faces.shape[0]))
        self.search = search
        self.canonical_frames = triangle_frames(self.canonical, self.faces)
        self._trees: dict = {}
        self._dev: dict = {}

    def _on(self, dev: torch.device) -> tuple[Tensor, Tensor, Tensor]:
        """``(faces, canonical, canonical_frames)`` on ``dev``, copied there once (not per query)."""
        dev = torch.device(dev)
        if dev == self.faces.device:
            return self.faces, self.canonical, self.canonical_frames
        if dev not in self._dev:
            self._dev[dev] = (self.faces.to(dev), self.canonical.to(dev), self.canonical_frames.to(dev))
        return self._dev[dev]

    def search_for(self, points: Tensor) -> str:
        """The concrete search (``"kdtree"`` or ``"torch"``) used for ``points``."""
        if self.search != "auto":
            return self.search
        return "torch" if points.device.type == "cuda" else "kdtree"

    def tree(self, vertices: Tensor, key=None):
        """The k-d tree of ``vertices``' triangle centroids (cached under ``key`` if given)."""
        from scipy.spatial import cKDTree

        if key is not None and ("kdtree", key) in self._trees:
            return self._trees[("kdtree", key)]
        cent = vertices.detach().float()[self.faces.to(vertices.device)].mean(1).cpu().numpy()
        t = cKDTree(cent)
        if key is not None:
            self._trees[("kdtree", key)] = t
        return t

    def centroid_index(self, vertices: Tensor, key=None) -> "_CentroidIndex":
        """The torch search's per-frame index of ``vertices`` (on their device; cached under ``key``)."""
        if key is not None and ("torch", key) in self._trees:
            return self._trees[("torch", key)]
        faces = self._on(vertices.device)[0]
        idx = _CentroidIndex.build(vertices.detach().float()[faces].mean(1))
        if key is not None:
            self._trees[("torch", key)] = idx
        return idx

    def nearest_centroids(self, points: Tensor, vertices: Tensor, key=None) -> Tensor:
        """(N, k) int64 indices (on ``points``' device) of the triangles of ``vertices`` whose
        centroids are nearest to each of ``points`` (N, 3), nearest first."""
        p = points.detach().float()
        if self.search_for(points) == "torch":
            return self.centroid_index(vertices.to(points.device), key).knn(p, self.k)
        _, idx = self.tree(vertices, key).query(p.cpu().numpy(), k=self.k, workers=-1)
        return torch.from_numpy(np.asarray(idx, dtype=np.int64).reshape(len(p), self.k)).to(points.device)

    def forget(self, key=None) -> None:
        """Drop the cached tree (and torch index) under ``key`` (all of them if None)."""
        if key is None:
            self._trees.clear()
        else:
            self._trees.pop(("kdtree", key), None)
            self._trees.pop(("torch", key), None)

    def query(self, points: Tensor, vertices: Tensor, key=None) -> Embedded:
        """Closest points of ``points`` (N, 3) on the mesh ``vertices`` (V, 3) (same topology)."""
        if points.dim() != 2 or points.shape[1] != 3:
            raise ValueError(f"points: expected (N, 3) mm, got {tuple(points.shape)}")
        if vertices.shape != self.canonical.shape:
            raise ValueError(f"vertices: expected {tuple(self.canonical.shape)} like the canonical mesh, "
                             f"got {tuple(vertices.shape)}")
        dev = points.device
        p = points.detach().float()
        cand = self.nearest_centroids(p, vertices, key)  # (N, k)
        faces = self._on(dev)[0]
        v = vertices.detach().float().to(dev)
        tri = faces[cand]  # (N, k, 3)
        a, b, c = v[tri[..., 0]], v[tri[..., 1]], v[tri[..., 2]]
        q, bary = closest_point_on_triangles(p[:, None], a, b, c)
        d2 = ((q - p[:, None]) ** 2).sum(-1)
        best = d2.argmin(1)
        r = torch.arange(len(p), device=dev)
        f = cand[r, best]
        q, bary = q[r, best], bary[r, best]
        ia, ib, ic = (faces[f, i] for i in range(3))
        fr = _frames_of(v[ia], v[ib], v[ic])
        off = p - q
        local = (fr @ off[..., None])[..., 0]
        return Embedded(triangle=f, bary=bary, closest=q, distance=d2[r, best].clamp_min(0).sqrt(),
                        height=local[:, 2], local=local)

    def to_canonical(self, e: Embedded) -> tuple[Tensor, Tensor]:
        """Canonical points (N, 3) of :meth:`query` results and the rotations (N, 3, 3) that take
        posed-frame directions to canonical ones (``d_canonical = R @ d_posed``)."""
        faces, cv, frames = self._on(e.bary.device)
        tri = faces[e.triangle]
        pc = (cv[tri] * e.bary[..., None]).sum(1)
        fc = frames[e.triangle]  # rows: canonical frame axes
        xc = pc + (fc.transpose(1, 2) @ e.local[..., None])[..., 0]
        return xc, fc

    def map(self, points: Tensor, vertices: Tensor, key=None) -> tuple[Tensor, Embedded, Tensor]:
        """``points`` (N, 3) near the posed mesh ``vertices`` -> ``(canonical (N, 3), embedded,
        R (N, 3, 3))`` where ``R`` rotates posed directions into the canonical frame."""
        e = self.query(points, vertices, key)
        xc, fc = self.to_canonical(e)
        dev = points.device
        tri = self._on(dev)[0][e.triangle]
        v = vertices.detach().float().to(dev)
        fp = _frames_of(v[tri[:, 0]], v[tri[:, 1]], v[tri[:, 2]])
        R = fc.transpose(1, 2) @ fp  # posed -> local -> canonical
        return xc, e, R


def _frames_of(a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    e1 = torch.nn.functional.normalize(b - a, dim=-1, eps=1e-12)
    n = torch.nn.functional.normalize(torch.linalg.cross(b - a, c - a, dim=-1), dim=-1, eps=1e-12)
    e2 = torch.linalg.cross(n, e1, dim=-1)
    return torch.stack((e1, e2, n), -2)


@dataclass(frozen=True)
class _CentroidIndex:
    """One frame's torch search index: triangle ``centroids`` (F, 3) mm relative to ``origin`` (3,)."""

    origin: Tensor
    centroids: Tensor

    @staticmethod
    def build(centroids: Tensor) -> "_CentroidIndex":
        # Relative to the mesh's middle: world coordinates are ~1 m from the camera, and squared
        # distances of such numbers would lose the mm digits in float32.
        origin = centroids.mean(0)
        return _CentroidIndex(origin, centroids - origin)

    def knn(self, points: Tensor, k: int) -> Tensor:
        """(N, 3) points -> (N, k) ids of the nearest centroids, nearest first (exact brute force)."""
        p = points - self.origin
        F = self.centroids.shape[0]
        out = torch.empty(p.shape[0], k, dtype=torch.int64, device=p.device)
        budget = CUDA_CANDIDATE_BUDGET if p.is_cuda else CANDIDATE_BUDGET
        n = max(1, budget // F)  # the (n, F) distance block is the memory bound
        for s in range(0, p.shape[0], n):
            # Differences, not |p|^2 - 2 p.c + |c|^2 (matmul), whose cancellation would reorder
            # centroids a few hundredths of a mm apart.
            d = torch.cdist(p[s:s + n], self.centroids, compute_mode="donot_use_mm_for_euclid_dist")
            out[s:s + n] = d.topk(k, dim=1, largest=False, sorted=True).indices
        return out
