"""Classical stabilizers behind the :class:`~face3d.stabilize.api.Stabilizer` protocol.

- :class:`ProcrustesStabilizer` on all visible face vertices (``method="procrustes"``) or on the
  visible upper face (``method="upper"``): least-squares rigid fit on corresponding vertices.
- :class:`ICPStabilizer` (``method="icp"``): point-to-plane ICP on the upper face, started from
  the upper-face Procrustes fit (batched, float64, in torch: deterministic, no open3d needed).
  Closest-point correspondences let skin slide tangentially without pulling the fit, which
  vertex correspondences cannot.
"""
from __future__ import annotations

import torch
from torch import Tensor

from face3d.geometry.normals import vertex_normals
from face3d.geometry.rotations import axis_angle_to_matrix
from face3d.geometry.topology import faces_within
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
    """Point-to-plane ICP on a vertex subset, initialised by Procrustes on it.

    Each iteration matches every transformed source point to its closest target point (exact,
    scipy k-d tree), drops matches farther than ``max_distance``, and solves the linearised
    point-to-plane problem (small rotation + translation, 6x6 normal equations) exactly; the
    update is applied as a proper rotation. One pair at a time (each stops at its own
    convergence; ~25 ms per pair on the built-in model), float64, deterministic.

    Args:
        indices: (N,) int64 vertex indices (the upper face).
        faces: (F, 3) int64 faces of the topology (the target's normals come from the triangles
            whose three vertices are all in ``indices``).
        n_vertices: the topology's vertex count.
        max_distance: correspondence rejection distance, mm.
        iterations: maximum ICP iterations (stops earlier when the update is below 1e-6 rad and
            1e-4 mm).
    """

    def __init__(self, indices: Tensor, faces: Tensor, n_vertices: int, max_distance: float = 5.0,
                 iterations: int = 30, name: str = "icp") -> None:
        self.indices = torch.as_tensor(indices, dtype=torch.int64)
        # Normals only from triangles inside the subset, so hidden vertices never leak in.
        inside = torch.zeros(n_vertices, dtype=torch.bool)
        inside[self.indices] = True
        self.faces = faces_within(faces, inside)
        self.n_vertices = n_vertices
        self.max_distance = max_distance
        self.iterations = iterations
        self.name = name
        self._init = ProcrustesStabilizer(self.indices, n_vertices, name)

    @torch.no_grad()
    def estimate(self, source: Tensor, target: Tensor) -> Tensor:
        """(B, V, 3) source and target meshes (mm) -> (B, 4, 4) source-to-target skull
        transforms (dtype of ``source``)."""
        _check_pair(source, target, self.n_vertices, self.name)
        idx = self.indices.to(source.device)
        init = self._init.estimate(source, target).double()
        src = source[:, idx].double()
        tgt = target.double()
        nrm = vertex_normals(tgt, self.faces.to(tgt.device))[:, idx]
        tgt = tgt[:, idx]
        T = torch.stack([self._icp(src[b], tgt[b], nrm[b], init[b]) for b in range(src.shape[0])])  # pairs
        return T.to(source.dtype)

    def _icp(self, p: Tensor, q: Tensor, n: Tensor, T: Tensor) -> Tensor:
        """One pair: (N, 3) source points, target points and target normals, (4, 4) start."""
        from scipy.spatial import cKDTree

        R, t = T[:3, :3].clone(), T[:3, 3].clone()
        tree = cKDTree(q.cpu().numpy())  # exact nearest neighbours, single-threaded: deterministic
        for _ in range(self.iterations):
            x = p @ R.T + t  # transformed source
            d, j = tree.query(x.cpu().numpy())
            j = torch.as_tensor(j, device=p.device)
            w = torch.as_tensor(d < self.max_distance, dtype=p.dtype, device=p.device)
            qj, nj = q[j], n[j]
            # r(omega, dt) ~ ((x - q) + omega x x + dt) . n = (x - q).n + (x x n).omega + n.dt
            A = torch.cat([torch.cross(x, nj, dim=-1), nj], -1)  # (N, 6)
            r = ((x - qj) * nj).sum(-1)
            H = (A * w[:, None]).T @ A + 1e-9 * torch.eye(6, dtype=p.dtype, device=p.device)
            delta = -torch.linalg.solve(H, (A * w[:, None]).T @ r)
            dR = axis_angle_to_matrix(delta[None, :3])[0]
            R, t = dR @ R, dR @ t + delta[3:]
            if float(delta[:3].norm()) < 1e-6 and float(delta[3:].norm()) < 1e-4:
                break
        return make_transform(R, t)
