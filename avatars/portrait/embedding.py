"""Mesh-embedded coordinates: a point near a posed mesh -> the same place near the canonical mesh.

A point ``x`` near frame ``t``'s posed mesh is described by its closest point on the mesh
(triangle ``f``, barycentrics ``b``) and the offset ``x - p`` written in ``f``'s local frame
(edge, in-plane perpendicular, face normal). The canonical point is the same barycentric point
on the canonical mesh (identity only: no expression, no pose) plus the same local offset in the
canonical triangle's frame. So a point on the mesh of any frame maps exactly to the canonical
point with the same barycentrics, whatever that frame's expression and pose, and a point 5 mm
above the cheek stays 5 mm above the cheek.

Closest triangles are found among the ``k`` triangles whose centroids are nearest (a k-d tree per
frame, :class:`scipy.spatial.cKDTree`), then exactly by point-triangle distance among those.
Everything is float32 torch on the device of the inputs except the tree query (CPU numpy).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from face3d.geometry.closest import closest_point_on_triangles


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
    """

    def __init__(self, faces: Tensor, canonical: Tensor, k: int = 8):
        if faces.dim() != 2 or faces.shape[1] != 3:
            raise ValueError(f"faces: expected (F, 3) int, got {tuple(faces.shape)}")
        if canonical.dim() != 2 or canonical.shape[1] != 3:
            raise ValueError(f"canonical: expected (V, 3) mm, got {tuple(canonical.shape)}")
        if k < 1:
            raise ValueError(f"k: expected at least 1 candidate triangle, got {k}")
        self.faces = faces.long()
        self.canonical = canonical.float()
        self.k = int(min(k, faces.shape[0]))
        self.canonical_frames = triangle_frames(self.canonical, self.faces)
        self._trees: dict = {}

    def tree(self, vertices: Tensor, key=None):
        """The k-d tree of ``vertices``' triangle centroids (cached under ``key`` if given)."""
        from scipy.spatial import cKDTree

        if key is not None and key in self._trees:
            return self._trees[key]
        cent = vertices.detach().float()[self.faces].mean(1).cpu().numpy()
        t = cKDTree(cent)
        if key is not None:
            self._trees[key] = t
        return t

    def forget(self, key=None) -> None:
        """Drop the cached tree under ``key`` (all trees if None)."""
        if key is None:
            self._trees.clear()
        else:
            self._trees.pop(key, None)

    def query(self, points: Tensor, vertices: Tensor, key=None) -> Embedded:
        """Closest points of ``points`` (N, 3) on the mesh ``vertices`` (V, 3) (same topology)."""
        if points.dim() != 2 or points.shape[1] != 3:
            raise ValueError(f"points: expected (N, 3) mm, got {tuple(points.shape)}")
        if vertices.shape != self.canonical.shape:
            raise ValueError(f"vertices: expected {tuple(self.canonical.shape)} like the canonical mesh, "
                             f"got {tuple(vertices.shape)}")
        dev = points.device
        p = points.detach().float()
        _, idx = self.tree(vertices, key).query(p.cpu().numpy(), k=self.k, workers=-1)
        cand = torch.from_numpy(np.asarray(idx, dtype=np.int64).reshape(len(p), self.k)).to(dev)  # (N, k)
        v = vertices.detach().float().to(dev)
        tri = self.faces.to(dev)[cand]  # (N, k, 3)
        a, b, c = v[tri[..., 0]], v[tri[..., 1]], v[tri[..., 2]]
        q, bary = closest_point_on_triangles(p[:, None], a, b, c)
        d2 = ((q - p[:, None]) ** 2).sum(-1)
        best = d2.argmin(1)
        r = torch.arange(len(p), device=dev)
        f = cand[r, best]
        q, bary = q[r, best], bary[r, best]
        ia, ib, ic = (self.faces.to(dev)[f, i] for i in range(3))
        fr = _frames_of(v[ia], v[ib], v[ic])
        off = p - q
        local = (fr @ off[..., None])[..., 0]
        return Embedded(triangle=f, bary=bary, closest=q, distance=d2[r, best].clamp_min(0).sqrt(),
                        height=local[:, 2], local=local)

    def to_canonical(self, e: Embedded) -> tuple[Tensor, Tensor]:
        """Canonical points (N, 3) of :meth:`query` results and the rotations (N, 3, 3) that take
        posed-frame directions to canonical ones (``d_canonical = R @ d_posed``)."""
        dev = e.bary.device
        faces = self.faces.to(dev)
        cv = self.canonical.to(dev)
        tri = faces[e.triangle]
        pc = (cv[tri] * e.bary[..., None]).sum(1)
        fc = self.canonical_frames.to(dev)[e.triangle]  # rows: canonical frame axes
        xc = pc + (fc.transpose(1, 2) @ e.local[..., None])[..., 0]
        return xc, fc

    def map(self, points: Tensor, vertices: Tensor, key=None) -> tuple[Tensor, Embedded, Tensor]:
        """``points`` (N, 3) near the posed mesh ``vertices`` -> ``(canonical (N, 3), embedded,
        R (N, 3, 3))`` where ``R`` rotates posed directions into the canonical frame."""
        e = self.query(points, vertices, key)
        xc, fc = self.to_canonical(e)
        dev = points.device
        tri = self.faces.to(dev)[e.triangle]
        v = vertices.detach().float().to(dev)
        fp = _frames_of(v[tri[:, 0]], v[tri[:, 1]], v[tri[:, 2]])
        R = fc.transpose(1, 2) @ fp  # posed -> local -> canonical
        return xc, e, R


def _frames_of(a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    e1 = torch.nn.functional.normalize(b - a, dim=-1, eps=1e-12)
    n = torch.nn.functional.normalize(torch.linalg.cross(b - a, c - a, dim=-1), dim=-1, eps=1e-12)
    e2 = torch.linalg.cross(n, e1, dim=-1)
    return torch.stack((e1, e2, n), -2)
