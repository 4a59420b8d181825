"""Fine stage (after SketchMetaFace's IDGMM): predict depth and normal maps from the drawing and a
render of the coarse mesh, then move the coarse mesh's vertices towards them.

Both data terms are measured against the coarse mesh's own render, so pixel sampling errors
cancel: a mesh given its own maps does not move. The mesh update keeps topology, vertex order and UVs: each editable vertex moves by a scalar
``s_i`` along its normal ``n_i``; the ``s`` minimise, in one sparse linear least-squares solve,

- depth: ``(s_i - n_i^z (D - D_0)(u_i))²`` (a plane moved by ``s`` along its normal moves by
  ``s / n^z`` along the view ray) for vertices visible at pixel ``u_i`` (``D``: predicted
  depth map, ``D_0``: the coarse mesh's, mm),
- normals: ``(N̂_ij · (x_j + s_j n_j - x_i - s_i n_i) - N_0 · (x_j - x_i))²`` for visible edges
  (``N̂``, ``N_0``: predicted and coarse normals at the edge's midpoint), so edges turn
  perpendicular to the predicted normals,
- smoothness: ``λ (s_i - mean_{j~i} s_j)²`` (uniform Laplacian) and a small ``μ s_i²``,

with ``s = 0`` fixed outside the editable mask, which is what makes local editing exact.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

DEPTH_SCALE_MM = 5.0  # the network's depth output is in units of 5 mm
IN_CHANNELS = 8  # ink (3), coarse normals (3), coarse depth (1), coarse mask (1)


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class FineNet(nn.Module):
    """A small U-Net: (B, 8, H, W) -> (B, 4, H, W) = the change from the coarse render to the
    true head: depth (true minus coarse camera z, in 5 mm units) and a normal change (camera
    frame; added to the coarse normal, then normalised: see :func:`split_output`). Predicting the
    change, not the map, makes "no change" the zero output. H, W divisible by 8."""

    def __init__(self, width: int = 12):
        super().__init__()
        w = width
        self.e1 = _conv(IN_CHANNELS, w)
        self.e2 = nn.Sequential(_conv(w, 2 * w, 2), _conv(2 * w, 2 * w))
        self.e3 = nn.Sequential(_conv(2 * w, 4 * w, 2), _conv(4 * w, 4 * w))
        self.e4 = nn.Sequential(_conv(4 * w, 6 * w, 2), _conv(6 * w, 6 * w))
        self.d3 = _conv(6 * w + 4 * w, 4 * w)
        self.d2 = _conv(4 * w + 2 * w, 2 * w)
        self.d1 = _conv(2 * w + w, w)
        self.out = nn.Conv2d(w, 4, 3, 1, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != IN_CHANNELS or x.shape[2] % 8 or x.shape[3] % 8:
            raise ValueError(f"x: expected shape (B, {IN_CHANNELS}, H, W) with H, W divisible by 8, got {tuple(x.shape)}")
        up = lambda t, ref: F.interpolate(t, size=ref.shape[2:], mode="bilinear", align_corners=False)  # noqa: E731
        a = self.e1(x)
        b = self.e2(a)
        c = self.e3(b)
        d = self.e4(c)
        y = self.d3(torch.cat((up(d, c), c), 1))
        y = self.d2(torch.cat((up(y, b), b), 1))
        y = self.d1(torch.cat((up(y, a), a), 1))
        return self.out(y)


@dataclass(frozen=True)
class CoarseRender:
    """The coarse mesh seen by the fine stage's camera. ``depth`` (H, W) mm, ``normals`` (H, W, 3)
    camera frame, ``mask`` (H, W) bool; ``camera`` the (cropped) camera."""

    depth: Tensor
    normals: Tensor
    mask: Tensor
    camera: object


def render_coarse(vertices: Tensor, faces: Tensor, camera) -> CoarseRender:
    """Render (V, 3) mm vertices with ``camera`` (batch 1) for :func:`fine_input`."""
    from face3d.render import Renderer

    with torch.no_grad():
        out = Renderer()(vertices[None], faces, camera, antialias=False)
    mask = out.triangle_id[0] >= 0
    n = torch.einsum("ij,hwj->hwi", camera.R[0].to(vertices), out.normals[0])
    return CoarseRender(out.depth[0], n * mask[..., None], mask, camera)


def fine_input(ink: Tensor, coarse: CoarseRender) -> Tensor:
    """(3, H, W) ink + the coarse render -> (8, H, W) network input. Depth is given relative to
    its median over the mask, in 50 mm units."""
    m = coarse.mask
    ref = coarse.depth[m].median() if bool(m.any()) else torch.tensor(0.0)
    d = torch.where(m, (coarse.depth - ref) / 50.0, torch.zeros_like(coarse.depth))
    return torch.cat((ink, coarse.normals.permute(2, 0, 1), d[None], m[None].float()), 0)


def split_output(y: Tensor, coarse_normals: Tensor) -> tuple[Tensor, Tensor]:
    """(B, 4, H, W) network output and the (B, 3, H, W) coarse normals (camera frame, 0 off the
    mask) -> depth change (B, H, W) mm and unit normals (B, H, W, 3)."""
    n = coarse_normals + y[:, 1:] + torch.tensor([0.0, 0.0, -1e-3]).view(1, 3, 1, 1)
    return y[:, 0] * DEPTH_SCALE_MM, F.normalize(n, dim=1).permute(0, 2, 3, 1)


def predict_maps(net: FineNet, ink: Tensor, coarse: CoarseRender) -> tuple[Tensor, Tensor]:
    """Predicted depth (H, W) mm (the coarse depth plus the residual) and normals (H, W, 3)
    camera frame. Where the coarse render is empty the depth is 0."""
    with torch.no_grad():
        x = fine_input(ink, coarse)[None]
        res, n = split_output(net(x), x[:, 3:6])
    depth = torch.where(coarse.mask, coarse.depth + res[0], torch.zeros_like(coarse.depth))
    return depth, n[0]


@dataclass(frozen=True)
class RefineConfig:
    """Weights of the least-squares mesh update (see the module docstring)."""

    depth_weight: float = 1.0
    normal_weight: float = 4.0
    laplacian_weight: float = 3.0
    damping: float = 0.01
    visible_cos: float = 0.3  # vertices seen more obliquely than this get no data term
    max_step_mm: float = 12.0  # depth targets further than this from the mesh are ignored


def unique_edges(faces: Tensor) -> Tensor:
    """(F, 3) int -> (E, 2) int64 undirected edges, each once, smaller index first. (A 1-D
    unique over ``a * V + b`` keys: ``torch.unique(dim=0)`` is ~20x slower.)"""
    f = faces.to(torch.int64)
    e = torch.sort(torch.cat((f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]])), 1).values
    n = int(f.max()) + 1 if f.numel() else 1
    k = torch.unique(e[:, 0] * n + e[:, 1])
    return torch.stack((k // n, k % n), 1)


def _sample(img: Tensor, uv: Tensor) -> Tensor:
    """Bilinear lookup of (H, W, C) at (N, 2) pixel coordinates (x, y) -> (N, C)."""
    H, W = img.shape[:2]
    g = torch.stack((2 * (uv[:, 0] + 0.5) / W - 1, 2 * (uv[:, 1] + 0.5) / H - 1), -1)
    return F.grid_sample(img.permute(2, 0, 1)[None], g[None, None], mode="bilinear", align_corners=False)[0, :, 0].T


def refine_mesh(vertices: Tensor, faces: Tensor, camera, depth: Tensor, normals: Tensor,
                editable: Tensor, cfg: RefineConfig = RefineConfig(), coarse: CoarseRender | None = None) -> Tensor:
    """Move the ``editable`` vertices along their normals towards predicted depth/normal maps.

    Args:
        vertices: (V, 3) float mm. faces: (F, 3) int (the drawn triangles: visibility).
        camera: the batch-1 camera the maps were predicted for.
        depth: (H, W) mm camera z (0 = no prediction); normals: (H, W, 3) unit, camera frame.
        editable: (V,) bool; every other vertex is returned bit-for-bit unchanged.
        coarse: the render of ``vertices`` with ``camera`` if already made (visibility test).
    Returns:
        (V, 3) float mm, same dtype as ``vertices``.
    """
    import scipy.sparse as sp
    from scipy.sparse.linalg import spsolve

    from face3d.geometry.normals import vertex_normals

    V = vertices.shape[0]
    if editable.shape != (V,) or editable.dtype != torch.bool:
        raise ValueError(f"editable: expected a ({V},) bool mask, got {tuple(editable.shape)} {editable.dtype}")
    if not bool(editable.any()):
        return vertices.clone()
    v = vertices.detach().to(torch.float64)
    n = vertex_normals(v, faces.to(torch.int64))
    if coarse is None:
        coarse = render_coarse(vertices.to(torch.float32), faces, camera)
    R = camera.R[0].to(torch.float64)
    pc = camera.to_camera(v[None].to(camera.K.dtype))[0].to(torch.float64)
    uv = camera.project(v[None].to(camera.K.dtype))[0]
    nc = n @ R.T
    H, W = depth.shape
    inside = (uv[:, 0] >= 0) & (uv[:, 0] <= W - 1) & (uv[:, 1] >= 0) & (uv[:, 1] <= H - 1)
    zc = _sample(coarse.depth[..., None].to(torch.float32), uv.to(torch.float32))[:, 0].to(torch.float64)
    zt = _sample(depth[..., None].to(torch.float32), uv.to(torch.float32))[:, 0].to(torch.float64)
    valid = _sample((depth > 0)[..., None].float(), uv.to(torch.float32))[:, 0] > 0.99
    visible = inside & valid & ((pc[:, 2] - zc).abs() < 2.0) & (-nc[:, 2] > cfg.visible_cos)
    visible &= (zt - zc).abs() < cfg.max_step_mm
    ed = editable.clone()
    unk = torch.full((V,), -1, dtype=torch.int64)
    unk[ed] = torch.arange(int(ed.sum()))
    N = int(ed.sum())
    rows, cols, vals, rhs = [], [], [], []
    r0 = 0
    # Depth rows.
    i = torch.nonzero(visible & ed)[:, 0]
    w = cfg.depth_weight
    # Depth change measured against the coarse render at the same pixel, so the bilinear lookup's
    # own error cancels (a mesh given its own maps does not move).
    rows.append(torch.arange(len(i)) + r0); cols.append(unk[i]); vals.append(torch.full((len(i),), w, dtype=torch.float64)); rhs.append(w * (zt[i] - zc[i]) * nc[i, 2])
    r0 += len(i)
    # Normal rows, one per unique edge with both ends visible and at least one editable.
    f = faces.to(torch.int64)
    e = unique_edges(f)
    a, b = e[:, 0], e[:, 1]
    keep = visible[a] & visible[b] & (ed[a] | ed[b])
    a, b = a[keep], b[keep]
    mid = (uv[a] + uv[b]) / 2
    nh = _sample(normals.to(torch.float32), mid.to(torch.float32)).to(torch.float64) @ R  # world frame
    nh = nh / nh.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    n0 = _sample(coarse.normals.to(torch.float32), mid.to(torch.float32)).to(torch.float64) @ R
    n0 = n0 / n0.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    w = cfg.normal_weight
    rid = torch.arange(len(a)) + r0
    ca, cb = (nh * n[a]).sum(-1), (nh * n[b]).sum(-1)
    # Against the coarse normals too: an edge keeps its offset from the coarse normal map.
    t = ((n0 - nh) * (v[b] - v[a])).sum(-1)
    for idx, coef, sign in ((a, ca, -1.0), (b, cb, 1.0)):
        m = ed[idx]
        rows.append(rid[m]); cols.append(unk[idx[m]]); vals.append(w * sign * coef[m])
    rhs.append(w * t)
    r0 += len(a)
    A = sp.csr_matrix((torch.cat(vals).numpy(), (torch.cat(rows).numpy(), torch.cat(cols).numpy())), shape=(r0, N))
    bvec = torch.cat(rhs).numpy()
    # Laplacian over all edges touching editable vertices (fixed neighbours count as s = 0).
    e2 = torch.cat((e, e.flip(1)))
    e2 = e2[ed[e2[:, 0]]]
    deg = torch.zeros(V, dtype=torch.float64).index_add_(0, e2[:, 0], torch.ones(len(e2), dtype=torch.float64))
    L = sp.csr_matrix((np.ones(N), (np.arange(N), np.arange(N))), shape=(N, N))
    nb = e2[ed[e2[:, 1]]]
    L = L - sp.csr_matrix(((1.0 / deg[nb[:, 0]]).numpy(), (unk[nb[:, 0]].numpy(), unk[nb[:, 1]].numpy())), shape=(N, N))
    M = (A.T @ A) + cfg.laplacian_weight * (L.T @ L) + cfg.damping * sp.identity(N)
    s = spsolve(M.tocsc(), A.T @ bvec)
    out = vertices.clone()
    disp = (torch.from_numpy(np.asarray(s))[:, None] * n[ed]).to(vertices.dtype)
    out[ed] = vertices[ed] + disp
    return out
