"""Training both stages from drawings rendered on the fly from a morphable model (no data files).

1. :func:`make_drawings`: random heads (:mod:`.heads`), their stroke layers, a few random styles
   each, read back through :func:`.drawing.read_drawing` exactly like a user's drawing.
2. :func:`train_coarse`: CoarseNet on the vertex error (mm, L1) of the linear part of each head.
3. :func:`train_fine`: FineNet on the change from the coarse render to the true (detailed) head's
   depth and normal maps, seen by the camera fitted to the coarse prediction, on fresh heads: from
   the front (:func:`fine_examples`) and from a random side view each, where the head's detail
   drawing is drawn over the coarse mesh (:func:`detail_examples`, :mod:`.views`).
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
from face3d.scale import chunk_generator


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on (sizes in heads and steps; seconds)."""

    heads: int = 5000  # the coarse stage's training heads (1,200 x 2 styles overfitted: 1.8 mm train, 2.7 mm held out)
    styles: int = 1  # drawings per head
    coarse_steps: int = 6000  # at 3,000 (on 2,800 heads) the loss was still falling
    coarse_batch: int = 32
    coarse_lr: float = 2e-3
    fine_heads: int = 600  # heads (one drawing each, none seen by the coarse stage) the fine stage trains on
    detail_yaw: tuple[float, float] = (45.0, 45.0)  # each fine head also drawn from one side, |yaw| uniform in here (deg): the views the page offers
    fine_steps: int = 1500  # over 2 x fine_heads examples (front and side)
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
    ``vertices`` (H, V, 3) float16 mm: the detailed truth; ``character`` (H,) bool: the heads
    whose face is the character head's."""

    ink: Tensor
    head: Tensor
    identity: Tensor
    expression: Tensor
    neck: Tensor
    vertices: Tensor
    character: Tensor


def _drawing_setup(model, styles: int, head_cfg: HeadConfig, style_cfg: dr.StyleConfig, threads: int | None = None):
    """A worker's context for :func:`_drawing_chunk` (built once per worker)."""
    if threads is not None:
        torch.set_num_threads(threads)
    return (model, styles, head_cfg, style_cfg, dr.drawing_camera(model), dr.drawing_faces(model),
            dr.model_labels(model))


def _drawing_chunk(ctx, item: tuple[int, int, int, int, int]) -> dict:
    """Chunk ``(chunk, start, b, seed, style_seed)``: ``b`` heads from ``start``, their drawings."""
    model, styles, head_cfg, style_cfg, cam, faces, labels = ctx
    chunk, start, b, seed, style_seed = item
    gen, sgen = chunk_generator(seed, chunk), chunk_generator(style_seed, chunk)
    h = sample_heads(model, b, gen, head_cfg)
    layers = dr.stroke_layers(h.vertices, faces, cam, labels=labels, curvature=dr.mean_curvature(h.vertices, model.faces))
    inks, heads = [], []
    for _ in range(styles):
        img = dr.stylize(layers, sgen, style_cfg)
        for k in range(b):
            ink, _ = dr.read_drawing(img[k])
            inks.append((ink * 255 + 0.5).to(torch.uint8))
            heads.append(start + k)
    return {"ink": torch.stack(inks), "head": torch.tensor(heads), "identity": h.identity / model.identity_std,
            "expression": h.expression, "neck": h.neck, "vertices": h.vertices.half(), "character": h.character}


def make_drawings(model, n_heads: int, styles: int, seed: int, style_seed: int,
                  head_cfg: HeadConfig = HeadConfig(), style_cfg: dr.StyleConfig = dr.StyleConfig(),
                  batch: int = 16, log=print, ray: str | None = None, workers: int | None = None,
                  dist=None) -> Drawings:
    """``n_heads`` random heads, ``styles`` drawings each (see the module docstring).

    The heads are drawn in chunks of ``batch``, each from its own seeds (:func:`chunk_generator`),
    so the set is a function of the arguments alone. ``ray``: a Ray address (``"local"`` for a
    local Ray, see :mod:`face3d.scale`) to draw the chunks on Ray workers (one CPU and one torch
    thread each); the set is byte-for-byte the single-process one. ``dist``: under ``torchrun`` the
    ranks split the chunks and share the drawings (:func:`face3d.scale.map_shared`). ``log`` None:
    no progress bar.
    """
    from face3d.scale import map_shared

    items = [(c, start, min(batch, n_heads - start), seed, style_seed) for c, start in enumerate(range(0, n_heads, batch))]
    setup_args = (model, styles, head_cfg, style_cfg, 1 if ray is not None else None)
    t0 = time.time()
    parts = map_shared(_drawing_chunk, items, _drawing_setup, setup_args, ray=ray, workers=workers,
                       progress=log is not None, desc="drawings", unit="chunk", dist=dist)
    if log:
        log(f"drawings: {n_heads} heads, {styles} styles each, {time.time() - t0:.0f} s")
    # Ink of chunk c is style-major within the chunk, as a single sequential loop would make it.
    return Drawings(*(torch.cat([p[k] for p in parts]) for k in Drawings.__dataclass_fields__))


def _augment(ink: Tensor, gen: torch.Generator, batch: int | None = None, rows: slice = slice(None)) -> Tensor:
    """Small random shifts and scalings (±3 %, ±2 px) of (B, 3, H, W) float ink: rows ``rows`` of a
    batch of ``batch`` (default B), whose random draws are made for the whole batch."""
    s = 1 + (torch.rand(batch or ink.shape[0], generator=gen) * 2 - 1) * 0.03
    t = (torch.rand(batch or ink.shape[0], 2, generator=gen) * 2 - 1) * (2 / 64)
    s, t = s[rows], t[rows]
    B = ink.shape[0]
    theta = torch.zeros(B, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = s, s
    theta[:, :, 2] = t
    grid = F.affine_grid(theta, ink.shape, align_corners=False)
    return F.grid_sample(ink, grid, align_corners=False)


def _step(opt, sched, loss: Tensor, net: torch.nn.Module, info) -> None:
    from face3d import distributed

    opt.zero_grad()
    loss.backward()
    distributed.average_gradients(net.parameters(), info)
    opt.step()
    sched.step()


def train_coarse(model, data: Drawings, cfg: TrainConfig, log=print, dist=None, history: list | None = None) -> CoarseNet:
    """Train :class:`CoarseNet` (L1 vertex error in mm on :func:`loss_vertices`, plus a weak prior).

    ``dist``: under ``torchrun`` (default: the running process group, if any) every rank draws the
    same batch of ``cfg.coarse_batch`` and trains on its slice, with batch statistics and gradients
    over the whole batch (:mod:`face3d.distributed`); only rank 0 logs. ``history``: gets the
    batch's loss of every step appended.
    """
    from face3d import distributed

    info = distributed.current() if dist is None else dist
    part = distributed.shard(cfg.coarse_batch, info, "TrainConfig.coarse_batch")
    log = log if info.is_main else None
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    idx = loss_vertices(model)
    sub = FastHead(model, idx)
    net = CoarseNet(model.n_identity, model.n_expression, cfg.coarse)
    distributed.broadcast_parameters(net, info)
    distributed.global_batchnorm(net, info)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.coarse_lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.coarse_lr, total_steps=cfg.coarse_steps, pct_start=0.1)
    t0 = time.time()
    N = data.ink.shape[0]
    for step in range(cfg.coarse_steps):
        j = torch.randint(N, (cfg.coarse_batch,), generator=gen)[part]
        hd = data.head[j]
        ink = _augment(data.ink[j].float() / 255, gen, cfg.coarse_batch, part)
        with torch.no_grad():
            tgt = sub(data.identity[hd], data.expression[hd], data.neck[hd])
        ident, ex, neck = net(ink)
        pred = sub(ident, ex, neck)
        loss = (pred - tgt).abs().sum(-1).mean() + 1e-3 * ident.pow(2).mean()  # slice means: their mean is the batch's
        _step(opt, sched, loss, net, info)
        lv = distributed.average_scalar(loss.detach(), info)
        if history is not None:
            history.append(lv)
        if log and (step % 100 == 0 or step == cfg.coarse_steps - 1):
            log(f"coarse {step}/{cfg.coarse_steps}: vertex L1 {lv:.2f} mm, {time.time() - t0:.0f} s")
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


def _first_drawings(model, net: CoarseNet, data: Drawings, n: int) -> tuple[Tensor, Tensor, Tensor]:
    """The first drawing of each of the first ``n`` heads of ``data``: their indices (n,), ink
    (n, 3, H, W) float and the coarse stage's meshes for them (n, V, 3) mm."""
    first = torch.zeros(data.identity.shape[0], dtype=torch.long)
    first[data.head.flip(0)] = torch.arange(len(data.head) - 1, -1, -1)
    sel = first[:n]
    ink = data.ink[sel].float() / 255
    ident, ex, neck = coarse_predict(model, net, ink)
    with torch.no_grad():
        coarse_v = coefficients_to_mesh(model, ident, ex, neck)
    return sel, ink, coarse_v


def fine_examples(model, net: CoarseNet, data: Drawings, n: int, max_step_mm: float = 12.0,
                  log=print, dist=None) -> tuple[Tensor, Tensor, Tensor]:
    """Inputs (n, 8, H, W), targets (n, 4, H, W) and target masks (n, H, W) bool for the fine
    stage, from the first drawing of each of ``n`` heads of ``data``, seen by the camera fitted to
    the coarse stage's prediction for that drawing.

    Targets: the true head's camera z minus the coarse one's (5 mm units) and the true head's
    camera normals. The mask is where both heads cover the pixel and the depths differ by less
    than ``max_step_mm`` (beyond that, at silhouettes and occlusions, the mesh update ignores the
    depth anyway and the jumps would only teach the network to hedge).
    ``dist``: under ``torchrun`` the ranks split the heads and share the examples.
    """
    from face3d import distributed

    info = distributed.current() if dist is None else dist
    log = log if info.is_main else None
    sel, ink, coarse_v = _first_drawings(model, net, data, n)
    faces = dr.drawing_faces(model)
    t0 = time.time()

    def build(ks) -> list:
        out = []
        for c, k in enumerate(ks):
            cam = coarse_camera(model, coarse_v[k])
            out.append(_target(coarse_v[k], data.vertices[data.head[sel[k]]].float(), faces, cam, ink[k], max_step_mm))
            if log and c % 200 == 0:
                log(f"fine examples: {c}/{len(ks)}, {time.time() - t0:.0f} s")
        return out

    xs, ys, ms = zip(*distributed.build_across_ranks(build, n, info))
    return torch.stack(xs), torch.stack(ys), torch.stack(ms)


def _target(coarse_v: Tensor, true_v: Tensor, faces: Tensor, cam, ink: Tensor, max_step_mm: float):
    """One fine example: input, target (depth change in 5 mm units, true normals), mask (see
    :func:`fine_examples`)."""
    cr = render_coarse(coarse_v, faces, cam)
    tr = render_coarse(true_v, faces, cam)
    res = tr.depth - cr.depth
    keep = cr.mask & tr.mask & (res.abs() < max_step_mm)
    res = torch.where(keep, res / DEPTH_SCALE_MM, torch.zeros_like(res))
    return fine_input(ink, cr), torch.cat((res[None], tr.normals.permute(2, 0, 1)), 0), keep


def detail_examples(model, net: CoarseNet, data: Drawings, n: int, yaw_range: tuple[float, float], seed: int,
                    style: dr.StyleConfig = dr.StyleConfig(), max_step_mm: float = 12.0, log=print,
                    dist=None, chunk: int = 16) -> tuple[Tensor, Tensor, Tensor]:
    """Like :func:`fine_examples`, for detail drawings: each of the first ``n`` heads of ``data``
    drawn once more from a side view (``|yaw|`` uniform in ``yaw_range`` degrees, either side),
    read in the frame of its coarse mesh in that view (:func:`.views.synthetic_detail_inks`).
    Chunks of ``chunk`` heads draw from their own seeds, so the examples do not depend on how
    the ranks split them."""
    from face3d import distributed
    from face3d.scale import chunk_generator

    from avatars.sketch.views import synthetic_detail_inks

    info = distributed.current() if dist is None else dist
    log = log if info.is_main else None
    sel, _, coarse_v = _first_drawings(model, net, data, n)
    faces = dr.drawing_faces(model)
    lo, hi = yaw_range
    starts = list(range(0, n, chunk))
    t0 = time.time()

    def build(cs) -> list:
        out = []
        for c in cs:
            gen = chunk_generator(seed, c)
            ks = list(range(starts[c], min(starts[c] + chunk, n)))
            yaw = lo + (hi - lo) * torch.rand(len(ks), generator=gen)
            yaw = yaw * torch.where(torch.rand(len(ks), generator=gen) < 0.5, -1.0, 1.0)
            true = torch.stack([data.vertices[data.head[sel[k]]].float() for k in ks])
            inks, cams = synthetic_detail_inks(model, true, coarse_v[ks], yaw, gen, style, batch=chunk)
            out.append([_target(coarse_v[k], true[j], faces, cams[j], inks[j], max_step_mm) for j, k in enumerate(ks)])
            if log and c % 10 == 0:
                log(f"detail examples: {starts[c]}/{n}, {time.time() - t0:.0f} s")
        return out

    items = [e for part in distributed.build_across_ranks(build, len(starts), info) for e in part]
    xs, ys, ms = zip(*items)
    return torch.stack(xs), torch.stack(ys), torch.stack(ms)


def train_fine(x: Tensor, y: Tensor, m: Tensor, cfg: TrainConfig, log=print, dist=None,
               history: list | None = None) -> FineNet:
    """Train :class:`FineNet`: L1 on the depth change (mm) and on the unit normals inside the
    mask, each averaged over the mask's pixels of the whole batch.

    ``dist``: as for :func:`train_coarse`; the mask sums that normalise the losses are the whole
    batch's, so each rank's slice adds its share of the batch's loss. ``history``: as for
    :func:`train_coarse`.
    """
    from face3d import distributed

    info = distributed.current() if dist is None else dist
    part = distributed.shard(cfg.fine_batch, info, "TrainConfig.fine_batch")
    log = log if info.is_main else None
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed + 2)
    net = FineNet()
    distributed.broadcast_parameters(net, info)
    distributed.global_batchnorm(net, info)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.fine_lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.fine_lr, total_steps=cfg.fine_steps, pct_start=0.1)
    t0 = time.time()
    for step in range(cfg.fine_steps):
        j = torch.randint(x.shape[0], (cfg.fine_batch,), generator=gen)
        denom = m[j].sum().float().clamp_min(1)  # of the whole batch
        j = j[part]
        xj = x[j]
        out = net(xj)
        mk = m[j].float()
        ld = ((out[:, 0] - y[j, 0]).abs() * mk).sum() / denom * info.world  # averaged over ranks: the batch's
        _, nrm = split_output(out, xj[:, 3:6])
        ln = ((nrm.permute(0, 3, 1, 2) - y[j, 1:]).abs().sum(1) * mk).sum() / denom * info.world
        loss = ld + cfg.fine_normal_weight * ln
        _step(opt, sched, loss, net, info)
        ld, ln = distributed.average_scalar(ld.detach(), info), distributed.average_scalar(ln.detach(), info)
        if history is not None:
            history.append(ld + cfg.fine_normal_weight * ln)
        if log and (step % 100 == 0 or step == cfg.fine_steps - 1):
            log(f"fine {step}/{cfg.fine_steps}: depth L1 {ld * DEPTH_SCALE_MM:.2f} mm, normal L1 {ln:.3f}, {time.time() - t0:.0f} s")
    net.eval()
    return net


def train(model, cfg: TrainConfig = TrainConfig(), log=print, ray: str | None = None, workers: int | None = None,
          dist=None) -> dict:
    """Both stages from scratch. Returns the checkpoint dict :func:`.api.save_weights` writes.

    ``ray``, ``workers``: draw the training drawings on Ray workers (:func:`make_drawings`); the
    drawings, and so the training run, are the same as without. ``dist``: this process's rank
    under ``torchrun`` (default: the running process group, if any): the ranks split the drawing
    and the fine examples, and train each stage on their slices of the single-process batches
    (:func:`train_coarse`, :func:`train_fine`), so N processes follow the single-process run.
    """
    from face3d import distributed

    info = distributed.current() if dist is None else dist
    t0 = time.time()
    log = log if info.is_main else None
    data = make_drawings(model, cfg.heads, cfg.styles, cfg.seed, cfg.seed + 100, cfg.head, cfg.style, log=log,
                         ray=ray, workers=workers, dist=info)
    history: dict = {"coarse": [], "fine": []}
    coarse = train_coarse(model, data, cfg, log=log, dist=info, history=history["coarse"])
    # The fine stage learns on heads the coarse stage never saw: on its own training drawings the
    # coarse error is far smaller than on new ones, and the fine stage must learn to fix the latter.
    fdata = make_drawings(model, cfg.fine_heads, 1, cfg.seed + 200, cfg.seed + 300, cfg.head, cfg.style, log=log,
                          ray=ray, workers=workers, dist=info)
    x, y, m = fine_examples(model, coarse, fdata, cfg.fine_heads, log=log, dist=info)
    xd, yd, md = detail_examples(model, coarse, fdata, cfg.fine_heads, cfg.detail_yaw, cfg.seed + 400, cfg.style,
                                 log=log, dist=info)
    fine = train_fine(torch.cat((x, xd)), torch.cat((y, yd)), torch.cat((m, md)), cfg, log=log, dist=info,
                      history=history["fine"])
    secs = time.time() - t0
    if log:
        log(f"trained in {secs:.0f} s")
    return {"coarse": coarse, "fine": fine, "config": asdict(cfg), "train_seconds": secs, "processes": info.world,
            "history": history}
