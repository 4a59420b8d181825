"""Training both stages from drawings rendered on the fly from a morphable model (no data files).

1. :func:`make_drawings`: random heads (:mod:`.heads`), their stroke layers, a few random styles
   each, read back through :func:`.drawing.read_drawing` exactly like a user's drawing.
2. :func:`train_coarse`: CoarseNet on the vertex error (mm, L1) of the linear part of each head.
3. :func:`train_fine`: FineNet on the change from the coarse render to the true (detailed) head's
   depth and normal maps, seen by the camera fitted to the coarse prediction, on fresh heads.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from avatars.sketch import drawing as dr
from avatars.sketch.coarse import CoarseConfig, CoarseNet, FastHead, coefficients_to_mesh, loss_vertices
from avatars.sketch.fine import DEPTH_SCALE_MM, FineNet, fine_input, render_coarse, split_output
from avatars.sketch.heads import HeadConfig, sample_heads


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on (sizes in heads and steps; seconds)."""

    heads: int = 2800  # the coarse stage's training heads (1,200 x 2 styles overfitted: 1.8 mm train, 2.7 mm held out)
    styles: int = 1  # drawings per head
    coarse_steps: int = 3000
    coarse_batch: int = 32
    coarse_lr: float = 2e-3
    fine_heads: int = 600  # heads (one drawing each, none seen by the coarse stage) the fine stage trains on
    fine_steps: int = 900
    fine_batch: int = 8
    fine_lr: float = 3e-3
    fine_normal_weight: float = 1.0
    seed: int = 0
    coarse: CoarseConfig = field(default_factory=CoarseConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    style: dr.StyleConfig = field(default_factory=dr.StyleConfig)


@dataclass
class Drawings:
    """Synthetic drawings and their truth. ``ink`` (N, 3, 128, 128) uint8; ``head`` (N,) index
    into the coefficient rows ``identity`` (H, n_id) (prior-std units), ``expression``, ``neck``;
    ``vertices`` (H, V, 3) float16 mm: the detailed truth."""

    ink: Tensor
    head: Tensor
    identity: Tensor
    expression: Tensor
    neck: Tensor
    vertices: Tensor


def make_drawings(model, n_heads: int, styles: int, seed: int, style_seed: int,
                  head_cfg: HeadConfig = HeadConfig(), style_cfg: dr.StyleConfig = dr.StyleConfig(),
                  batch: int = 16, log=print) -> Drawings:
    """``n_heads`` random heads, ``styles`` drawings each (see the module docstring)."""
    gen = torch.Generator().manual_seed(seed)
    sgen = torch.Generator().manual_seed(style_seed)
    cam = dr.drawing_camera(model)
    faces = dr.drawing_faces(model)
    labels = dr.model_labels(model)
    inks, heads, ids, exs, necks, verts = [], [], [], [], [], []
    t0 = time.time()
    for start in range(0, n_heads, batch):
        b = min(batch, n_heads - start)
        h = sample_heads(model, b, gen, head_cfg)
        layers = dr.stroke_layers(h.vertices, faces, cam, labels=labels,
                                  curvature=dr.mean_curvature(h.vertices, model.faces))
        for _ in range(styles):
            img = dr.stylize(layers, sgen, style_cfg)
            for k in range(b):
                ink, _ = dr.read_drawing(img[k])
                inks.append((ink * 255 + 0.5).to(torch.uint8))
                heads.append(start + k)
        ids.append(h.identity / model.identity_std)
        exs.append(h.expression)
        necks.append(h.neck)
        verts.append(h.vertices.half())
        if log and (start // batch) % 10 == 0:
            log(f"drawings: {start + b}/{n_heads} heads, {time.time() - t0:.0f} s")
    return Drawings(torch.stack(inks), torch.tensor(heads), torch.cat(ids), torch.cat(exs), torch.cat(necks), torch.cat(verts))


def _augment(ink: Tensor, gen: torch.Generator) -> Tensor:
    """Small random shifts and scalings (±3 %, ±2 px) of (B, 3, H, W) float ink."""
    B = ink.shape[0]
    s = 1 + (torch.rand(B, generator=gen) * 2 - 1) * 0.03
    t = (torch.rand(B, 2, generator=gen) * 2 - 1) * (2 / 64)
    theta = torch.zeros(B, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = s, s
    theta[:, :, 2] = t
    grid = F.affine_grid(theta, ink.shape, align_corners=False)
    return F.grid_sample(ink, grid, align_corners=False)


def _step(opt, sched, loss: Tensor) -> None:
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()


def train_coarse(model, data: Drawings, cfg: TrainConfig, log=print) -> CoarseNet:
    """Train :class:`CoarseNet` (L1 vertex error in mm on :func:`loss_vertices`, plus a weak prior)."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    idx = loss_vertices(model)
    sub = FastHead(model, idx)
    net = CoarseNet(model.n_identity, model.n_expression, cfg.coarse)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.coarse_lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.coarse_lr, total_steps=cfg.coarse_steps, pct_start=0.1)
    t0 = time.time()
    N = data.ink.shape[0]
    for step in range(cfg.coarse_steps):
        j = torch.randint(N, (cfg.coarse_batch,), generator=gen)
        hd = data.head[j]
        ink = _augment(data.ink[j].float() / 255, gen)
        with torch.no_grad():
            tgt = sub(data.identity[hd], data.expression[hd], data.neck[hd])
        ident, ex, neck = net(ink)
        pred = sub(ident, ex, neck)
        loss = (pred - tgt).abs().sum(-1).mean() + 1e-3 * ident.pow(2).mean()
        _step(opt, sched, loss)
        if log and (step % 100 == 0 or step == cfg.coarse_steps - 1):
            log(f"coarse {step}/{cfg.coarse_steps}: vertex L1 {loss.item():.2f} mm, {time.time() - t0:.0f} s")
    net.eval()
    return net


def coarse_predict(model, net: CoarseNet, ink: Tensor, batch: int = 64) -> tuple[Tensor, Tensor, Tensor]:
    """(N, 3, 128, 128) float ink -> identity, expression, neck (no grad)."""
    outs = []
    with torch.no_grad():
        for s in range(0, ink.shape[0], batch):
            outs.append(net(ink[s:s + batch]))
    return tuple(torch.cat(o) for o in zip(*outs))


def coarse_camera(model, vertices: Tensor):
    """The cropped camera of the network input for a mesh (V, 3) mm: its silhouette in the
    drawing camera, cut like :func:`.drawing.read_drawing` cuts a drawing's ink."""
    from face3d.render.primitives import rasterize

    cam = dr.drawing_camera(model)
    faces = dr.drawing_faces(model)
    with torch.no_grad():
        rast, _ = rasterize(cam.to_clip(vertices[None].float()), faces.to(torch.int32), (cam.height, cam.width))
    mask = rast[0, ..., 3] > 0
    sil = dr._edges(mask[None])[0]
    return dr.crop_camera(cam, dr.square_crop(sil))


def fine_examples(model, net: CoarseNet, data: Drawings, n: int, max_step_mm: float = 12.0,
                  log=print) -> tuple[Tensor, Tensor, Tensor]:
    """Inputs (n, 8, H, W), targets (n, 4, H, W) and target masks (n, H, W) bool for the fine
    stage, from the first drawing of each of ``n`` heads of ``data``, seen by the camera fitted to
    the coarse stage's prediction for that drawing.

    Targets: the true head's camera z minus the coarse one's (5 mm units) and the true head's
    camera normals. The mask is where both heads cover the pixel and the depths differ by less
    than ``max_step_mm`` (beyond that, at silhouettes and occlusions, the mesh update ignores the
    depth anyway and the jumps would only teach the network to hedge).
    """
    first = torch.zeros(data.identity.shape[0], dtype=torch.long)
    first[data.head.flip(0)] = torch.arange(len(data.head) - 1, -1, -1)
    sel = first[:n]
    ink = data.ink[sel].float() / 255
    ident, ex, neck = coarse_predict(model, net, ink)
    with torch.no_grad():
        coarse_v = coefficients_to_mesh(model, ident, ex, neck)
    faces = dr.drawing_faces(model)
    xs, ys, ms = [], [], []
    t0 = time.time()
    for k in range(n):
        cam = coarse_camera(model, coarse_v[k])
        cr = render_coarse(coarse_v[k], faces, cam)
        tr = render_coarse(data.vertices[data.head[sel[k]]].float(), faces, cam)
        res = tr.depth - cr.depth
        keep = cr.mask & tr.mask & (res.abs() < max_step_mm)
        res = torch.where(keep, res / DEPTH_SCALE_MM, torch.zeros_like(res))
        xs.append(fine_input(ink[k], cr))
        ys.append(torch.cat((res[None], tr.normals.permute(2, 0, 1)), 0))
        ms.append(keep)
        if log and k % 200 == 0:
            log(f"fine examples: {k}/{n}, {time.time() - t0:.0f} s")
    return torch.stack(xs), torch.stack(ys), torch.stack(ms)


def train_fine(x: Tensor, y: Tensor, m: Tensor, cfg: TrainConfig, log=print) -> FineNet:
    """Train :class:`FineNet`: L1 on the depth change (mm) and on the unit normals inside the
    mask, each averaged over the mask's pixels."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed + 2)
    net = FineNet()
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.fine_lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.fine_lr, total_steps=cfg.fine_steps, pct_start=0.1)
    t0 = time.time()
    for step in range(cfg.fine_steps):
        j = torch.randint(x.shape[0], (cfg.fine_batch,), generator=gen)
        xj = x[j]
        out = net(xj)
        mk = m[j].float()
        denom = mk.sum().clamp_min(1)
        ld = ((out[:, 0] - y[j, 0]).abs() * mk).sum() / denom
        _, nrm = split_output(out, xj[:, 3:6])
        ln = ((nrm.permute(0, 3, 1, 2) - y[j, 1:]).abs().sum(1) * mk).sum() / denom
        loss = ld + cfg.fine_normal_weight * ln
        _step(opt, sched, loss)
        if log and (step % 100 == 0 or step == cfg.fine_steps - 1):
            log(f"fine {step}/{cfg.fine_steps}: depth L1 {ld.item() * DEPTH_SCALE_MM:.2f} mm, normal L1 {ln.item():.3f}, {time.time() - t0:.0f} s")
    net.eval()
    return net


def train(model, cfg: TrainConfig = TrainConfig(), log=print) -> dict:
    """Both stages from scratch. Returns the checkpoint dict :func:`.api.save_weights` writes."""
    t0 = time.time()
    data = make_drawings(model, cfg.heads, cfg.styles, cfg.seed, cfg.seed + 100, cfg.head, cfg.style, log=log)
    coarse = train_coarse(model, data, cfg, log=log)
    # The fine stage learns on heads the coarse stage never saw: on its own training drawings the
    # coarse error is far smaller than on new ones, and the fine stage must learn to fix the latter.
    fdata = make_drawings(model, cfg.fine_heads, 1, cfg.seed + 200, cfg.seed + 300, cfg.head, cfg.style, log=log)
    x, y, m = fine_examples(model, coarse, fdata, cfg.fine_heads, log=log)
    fine = train_fine(x, y, m, cfg, log=log)
    secs = time.time() - t0
    log(f"trained in {secs:.0f} s")
    return {"coarse": coarse, "fine": fine, "config": asdict(cfg), "train_seconds": secs}
