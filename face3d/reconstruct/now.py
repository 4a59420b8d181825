"""The NoW benchmark protocol (Sanyal et al. 2019), for users who have the NoW scans.

Steps for one predicted mesh and one scan:

1. Rigid alignment **with scale** (non-metric NoW) or **without** (metric NoW, as in MICA) of the
   prediction's 7 landmarks onto the scan's 7 landmarks (Umeyama, :func:`face3d.geometry.procrustes`).
2. Crop the scan to a sphere: centre = nose_bottom + 0.3 (nose_bridge - nose_bottom), radius =
   1.4 (outer-eye distance + nose distance) / 2, where nose_bridge is the midpoint of the inner eye
   corners and the nose distance is |nose_bridge - nose_bottom| (scan landmarks).
3. Refine the alignment ICP-style on the scan-to-mesh distance: each cropped scan point's closest
   point on the current mesh surface is taken back to the unaligned mesh (same triangle, same
   barycentric coordinates) and the similarity / rigid transform is re-solved, until it settles.
4. The error is the distance of every cropped scan point to the aligned mesh surface (mm);
   report median / mean / std, pooled over all scans for a whole benchmark.

Landmark order (both meshes): right eye outer corner, right eye inner corner, left eye inner corner,
left eye outer corner, nose bottom (subnasale), right mouth corner, left mouth corner ("right" is
the subject's right). From iBUG-68 that is points 36, 39, 42, 45, 33, 48, 54.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from face3d.geometry.closest import closest_point_on_triangles  # noqa: F401 (re-exported)
from face3d.geometry.procrustes import procrustes

IBUG68_TO_NOW7 = (36, 39, 42, 45, 33, 48, 54)


def point_mesh_distance(points: Tensor, vertices: Tensor, faces: Tensor, k: int = 24,
                        chunk: int = 4096) -> tuple[Tensor, Tensor, Tensor]:
    """Distance from each point to a triangle mesh's surface.

    Candidate triangles per point are the ``k`` whose centroids are nearest (scipy cKDTree), then
    the exact point-triangle distance is taken over the candidates. Exact unless a point's true
    closest triangle is not among its ``k`` nearest centroids (only with very uneven triangle
    sizes); points are processed in chunks of ``chunk`` to bound memory (chunk·k·3 floats).

    Args:
        points: (N, 3) float (mm). vertices: (V, 3) float. faces: (F, 3) int64.

    Returns:
        ``dist`` (N,) mm, ``tri`` (N,) int64 closest triangle, ``bary`` (N, 3) barycentric
        coordinates of the closest point in that triangle.
    """
    from scipy.spatial import cKDTree

    faces = faces.long()
    tri_v = vertices[faces]  # (F, 3, 3)
    cent = tri_v.mean(1)
    k = min(k, faces.shape[0])
    tree = cKDTree(cent.detach().cpu().numpy())
    _, cand = tree.query(points.detach().cpu().numpy(), k=k)
    cand = torch.as_tensor(np.asarray(cand).reshape(points.shape[0], k), dtype=torch.int64)
    dists, tris, barys = [], [], []
    for s in range(0, points.shape[0], chunk):  # chunks of points, bounded memory
        p = points[s:s + chunk, None]  # (n, 1, 3)
        c = cand[s:s + chunk]  # (n, k)
        tv = tri_v[c]  # (n, k, 3, 3)
        q, bary = closest_point_on_triangles(p, tv[..., 0, :], tv[..., 1, :], tv[..., 2, :])
        d = (q - p).norm(dim=-1)  # (n, k)
        best = d.argmin(-1)
        idx = torch.arange(p.shape[0])
        dists.append(d[idx, best])
        tris.append(c[idx, best])
        barys.append(bary[idx, best])
    return torch.cat(dists), torch.cat(tris), torch.cat(barys)


@dataclass(frozen=True)
class NowConfig:
    """NoW protocol settings: ``scale`` (False = metric NoW), ICP ``iterations`` and ``tol`` (mm
    change of the mean distance that stops the refinement), crop factors."""

    scale: bool = True
    iterations: int = 30
    tol: float = 1e-5
    crop_centre: float = 0.3
    crop_radius: float = 1.4


@dataclass(frozen=True)
class NowResult:
    """``distances`` (N,) mm of the cropped scan points; ``median``/``mean``/``std`` mm;
    ``R`` (3, 3), ``t`` (3,) mm, ``s`` the similarity applied to the prediction; ``n_points``."""

    distances: Tensor
    median: float
    mean: float
    std: float
    R: Tensor
    t: Tensor
    s: float
    n_points: int


def crop_scan(scan_points: Tensor, scan_landmarks: Tensor, cfg: NowConfig = NowConfig()) -> Tensor:
    """(N, 3) scan points, (7, 3) landmarks -> (M,) bool mask of points kept by NoW's crop."""
    lm = scan_landmarks
    bridge = (lm[1] + lm[2]) / 2
    bottom = lm[4]
    centre = bottom + cfg.crop_centre * (bridge - bottom)
    radius = cfg.crop_radius * ((lm[0] - lm[3]).norm() + (bridge - bottom).norm()) / 2
    return (scan_points - centre).norm(dim=-1) <= radius


def now_error(pred_vertices: Tensor, pred_faces: Tensor, pred_landmarks: Tensor, scan_points: Tensor,
              scan_landmarks: Tensor, cfg: NowConfig = NowConfig()) -> NowResult:
    """Scan-to-mesh error of one prediction under the NoW protocol (module docstring).

    Args:
        pred_vertices: (V, 3) mm predicted mesh. pred_faces: (F, 3) int64.
        pred_landmarks: (7, 3) mm on the predicted mesh (order in the module docstring).
        scan_points: (N, 3) mm scan vertices. scan_landmarks: (7, 3) mm.
        cfg: :class:`NowConfig` (``scale=False`` for metric NoW).

    Returns:
        :class:`NowResult` (float64 tensors).
    """
    for nm, x, n in (("pred_landmarks", pred_landmarks, 7), ("scan_landmarks", scan_landmarks, 7)):
        if tuple(x.shape) != (n, 3):
            raise ValueError(f"{nm}: expected shape (7, 3) mm (NoW's 7 landmarks), got {tuple(x.shape)}")
    V = pred_vertices.double()
    S = scan_points.double()
    R, t, s = procrustes(pred_landmarks.double(), scan_landmarks.double(), scale=cfg.scale)
    S = S[crop_scan(S, scan_landmarks.double(), cfg)]
    if S.shape[0] == 0:
        raise ValueError("now_error: the crop around the scan's nose left no scan points; check the scan landmarks' order and units (mm)")
    faces = pred_faces.long()
    prev = None
    for _ in range(cfg.iterations):
        Va = s * V @ R.T + t
        d, tri, bary = point_mesh_distance(S, Va, faces)
        mean = float(d.mean())
        if prev is not None and abs(prev - mean) < cfg.tol:
            break
        prev = mean
        # Closest points expressed on the unaligned mesh, then re-solve the transform (ICP step).
        q0 = (V[faces[tri]] * bary[..., None]).sum(1)
        R, t, s = procrustes(q0, S, scale=cfg.scale)
    Va = s * V @ R.T + t
    d, _, _ = point_mesh_distance(S, Va, faces)
    return NowResult(d, float(d.median()), float(d.mean()), float(d.std()), R, t, float(s), int(S.shape[0]))


def model_now_landmarks(model, vertices: Tensor) -> Tensor:
    """(V, 3) mm mesh of ``model``'s topology -> (7, 3) NoW landmarks (``now7`` set if the model
    has one, else iBUG-68 points 36, 39, 42, 45, 33, 48, 54)."""
    v = vertices[None].float()
    if "now7" in model.landmarks:
        return model.landmark_positions(v, "now7")[0]
    return model.landmark_positions(v, "ibug68")[0, list(IBUG68_TO_NOW7)]
