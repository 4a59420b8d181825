"""Classical stabilizers behind the :class:`~face3d.stabilize.api.Stabilizer` protocol.

- :class:`ProcrustesStabilizer` on all visible face vertices (``method="procrustes"``) or on the
  visible upper face (``method="upper"``): least-squares rigid fit on corresponding vertices.
- :class:`ICPStabilizer` (``method="icp"``): open3d point-to-plane ICP on the upper face, started
  from the upper-face Procrustes fit. Closest-point correspondences let skin slide tangentially
  without pulling the fit, which vertex correspondences cannot.
"""
from __future__ import annotations

import torch
from torch import Tensor

from face3d.geometry.normals import vertex_normals
from face3d.stabilize.align import make_transform, rigid_fit


def _check_pair(source: Tensor, target: Tensor, n_vertices: int | None, what: str) -> None:
    for name, x in (("source", source), ("target", target)):
        if not isinstance(x, Tensor) or x.dim() != 3 or x.shape[-1] != 3:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{what}: {name} must be a (B, V, 3) tensor, got {got}")
        if n_vertices is not None and x.shape[1] != n_vertices:
            raise ValueError(f"{what}: expected meshes with {n_vertices} vertices, got {x.shape[1]} for {name}")
    if source.shape != target.shape:
        raise ValueError(f"{what}: source and target shapes differ: {tuple(source.shape)} vs {tuple(target.shape)}")


class ProcrustesStabilizer:
    """Rigid Procrustes fit on a fixed vertex subset.

    Args:
        indices: (N,) int64 vertex indices to fit on (e.g. the visible face or upper face).
        n_vertices: the topology's vertex count (checked on input), or None.
        name: label used in tables.
    """

    def __init__(self, indices: Tensor, n_vertices: int | None = None, name: str = "procrustes") -> None:
        self.indices = torch.as_tensor(indices, dtype=torch.int64)
        self.n_vertices = n_vertices
        self.name = name

    @torch.no_grad()
    def estimate(self, source: Tensor, target: Tensor) -> Tensor:
        """(B, V, 3) source and target meshes (mm) -> (B, 4, 4) transforms mapping the source's
        skull onto the target's (dtype of ``source``)."""
        _check_pair(source, target, self.n_vertices, self.name)
        idx = self.indices.to(source.device)
        return rigid_fit(source[:, idx], target[:, idx].to(source))


class ICPStabilizer:
    """Point-to-plane ICP (open3d) on a vertex subset, initialised by Procrustes on it.

    Args:
        indices: (N,) int64 vertex indices (the upper face).
        faces: (F, 3) int64 faces of the topology (the target's normals come from the triangles
            whose three vertices are all in ``indices``).
        n_vertices: the topology's vertex count.
        max_distance: correspondence rejection distance, mm.
        iterations: ICP iterations.
    """

    def __init__(self, indices: Tensor, faces: Tensor, n_vertices: int, max_distance: float = 5.0,
                 iterations: int = 30, name: str = "icp") -> None:
        self.indices = torch.as_tensor(indices, dtype=torch.int64)
        faces = torch.as_tensor(faces, dtype=torch.int64)
        # Normals only from triangles inside the subset, so hidden vertices never leak in.
        inside = torch.zeros(n_vertices, dtype=torch.bool)
        inside[self.indices] = True
        self.faces = faces[inside[faces].all(1)]
        self.n_vertices = n_vertices
        self.max_distance = max_distance
        self.iterations = iterations
        self.name = name
        self._init = ProcrustesStabilizer(self.indices, n_vertices, name)

    @torch.no_grad()
    def estimate(self, source: Tensor, target: Tensor) -> Tensor:
        """(B, V, 3) source and target meshes (mm) -> (B, 4, 4) source-to-target skull
        transforms (dtype of ``source``). Loops over the batch (open3d works per pair)."""
        try:
            import open3d as o3d
        except ImportError as e:  # optional dependency
            raise ImportError("method 'icp' needs open3d: pip install open3d (or face3d-toolkit[full])") from e
        _check_pair(source, target, self.n_vertices, self.name)
        init = self._init.estimate(source, target).double().cpu().numpy()
        idx = self.indices
        src = source[:, idx].double().cpu().numpy()
        tgt = target.double().cpu()
        nrm = vertex_normals(tgt, self.faces)[:, idx].numpy()
        tgt = tgt[:, idx].numpy()
        reg = o3d.pipelines.registration
        crit = reg.ICPConvergenceCriteria(relative_fitness=1e-9, relative_rmse=1e-9, max_iteration=self.iterations)
        out = []
        for b in range(len(src)):
            ps, pt = o3d.geometry.PointCloud(), o3d.geometry.PointCloud()
            ps.points = o3d.utility.Vector3dVector(src[b])
            pt.points = o3d.utility.Vector3dVector(tgt[b])
            pt.normals = o3d.utility.Vector3dVector(nrm[b])
            res = reg.registration_icp(ps, pt, self.max_distance, init[b], reg.TransformationEstimationPointToPlane(), crit)
            out.append(torch.as_tensor(res.transformation.copy()))
        T = torch.stack(out).to(device=source.device, dtype=source.dtype)
        return make_transform(T[:, :3, :3], T[:, :3, 3])
