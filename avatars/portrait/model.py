"""The neural portrait: shell sampling around a tracked mesh, a canonical tri-plane field, and
volume rendering with colour conditioned on predicted normals, expression, pose and view.

Per frame, the tracked mesh is posed with the frame's expression/jaw/rotation/translation.
Rays are cast only through pixels covered by the mesh inflated by ``shell_mm`` (rasterized with
:mod:`face3d.render`), between that inflated surface and the mesh deflated by ``inner_mm`` (an
opaque core); samples farther than ``shell_mm`` from the mesh get no density. Each sample maps to
canonical space through :class:`~avatars.portrait.embedding.MeshEmbedding` (closest triangle,
barycentrics, local offset), where a tri-plane feature field (pure PyTorch, ``grid_sample``)
gives density and a feature. Density starts from a prior that makes the mesh's inside opaque
(gated per canonical point, so hair and what the 3DMM lacks can override it). A small network
predicts the normal as a correction of the 3DMM's (canonical) normal; the colour network sees
that normal turned into the world frame, the view direction, expression, jaw and head pose, and
a per-frame appearance code. Behind the head: the per-pixel median of the training frames
outside their foreground masks, either fixed or (by default) as the starting point of a
pose-conditioned image layer that holds the torso (:mod:`avatars.portrait.backdrop`).

Units: millimetres, radians, pixels (OpenCV). Colours in [0, 1].

Devices: a :class:`Portrait` lives where its buffers are (``portrait.to("cuda")`` moves the
field, the buffers and the morphable model it holds); :meth:`Portrait.render_frame` takes its
inputs on any device, moves them there and returns tensors on the portrait's device.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from avatars.portrait.backdrop import Backdrop
from avatars.portrait.embedding import MeshEmbedding


@dataclass(frozen=True)
class PortraitConfig:
    """Model settings.

    ``shell_mm``: how far outside the mesh density may live (hair, ears, what the 3DMM lacks);
    ``inner_mm``: depth of the sampled layer inside the mesh; ``samples``: per ray;
    ``k``: candidate triangles per closest-triangle query; ``planes``/``channels``: tri-plane
    resolution and feature channels; ``hidden``: MLP width; ``exp_dim``/``app_dim``: expression
    and appearance code sizes; ``normals``: condition colour on predicted normals (False is the
    ablation of the evaluation); ``backdrop``: behind the head, a pose-conditioned image layer
    (:class:`~avatars.portrait.backdrop.Backdrop`: torso and background) instead of the fixed
    median background.
    """

    shell_mm: float = 18.0
    inner_mm: float = 4.0
    samples: int = 16
    k: int = 4
    planes: int = 128
    channels: int = 16
    hidden: int = 64
    exp_dim: int = 16
    app_dim: int = 8
    normals: bool = True
    backdrop: bool = True

    def __post_init__(self):
        if self.shell_mm <= 0 or self.inner_mm <= 0:
            raise ValueError(f"shell_mm, inner_mm: expected > 0 mm, got {self.shell_mm}, {self.inner_mm}")
        if self.samples < 2:
            raise ValueError(f"samples: expected at least 2 per ray, got {self.samples}")


def sh2(d: Tensor) -> Tensor:
    """(..., 3) unit directions -> (..., 9) real spherical harmonics up to degree 2 (unnormalised)."""
    x, y, z = d.unbind(-1)
    return torch.stack((torch.ones_like(x), x, y, z, x * y, y * z, x * z, x * x - y * y, 3 * z * z - 1), -1)


def positional(x: Tensor, n_freq: int) -> Tensor:
    """(..., 3) in [-1, 1] -> (..., 3 + 6 n_freq) sin/cos features."""
    out = [x]
    for i in range(n_freq):
        out += [torch.sin((2.0 ** i) * math.pi * x), torch.cos((2.0 ** i) * math.pi * x)]
    return torch.cat(out, -1)


def _mlp(i: int, h: int, o: int, layers: int = 2) -> nn.Sequential:
    mods: list[nn.Module] = []
    d = i
    for _ in range(layers):
        mods += [nn.Linear(d, h), nn.SiLU()]
        d = h
    mods.append(nn.Linear(d, o))
    return nn.Sequential(*mods)


class PortraitField(nn.Module):
    """Canonical field: tri-planes + MLPs (density, normal correction, colour).

    Args:
        cfg: :class:`PortraitConfig`.
        bounds: (2, 3) canonical box (mm) the tri-planes span.
        n_expression: the morphable model's expression count.
        n_frames: training frames (one appearance code each).
    """

    FEAT = 32
    N_FREQ = 4

    def __init__(self, cfg: PortraitConfig, bounds: Tensor, n_expression: int, n_frames: int):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("bounds", bounds.float().clone())
        C, R = cfg.channels, cfg.planes
        self.planes = nn.Parameter(torch.randn(3, C, R, R) * 0.1)
        self.exp_proj = nn.Linear(n_expression, cfg.exp_dim)
        self.app = nn.Embedding(n_frames, cfg.app_dim)
        nn.init.zeros_(self.app.weight)
        d_in = 3 * C + 3 + 6 * self.N_FREQ + cfg.exp_dim
        self.geo = _mlp(d_in, cfg.hidden, 2 + self.FEAT)
        with torch.no_grad():
            self.geo[-1].weight.mul_(0.1)
            self.geo[-1].bias.zero_()
            self.geo[-1].bias[0] = -6.0  # free density starts near zero
            self.geo[-1].bias[1] = 4.0   # the mesh prior starts on
        self.normal = _mlp(self.FEAT + 3, 32, 3, layers=1)
        with torch.no_grad():
            self.normal[-1].weight.mul_(0.01)
            self.normal[-1].bias.zero_()
        d_col = self.FEAT + 9 + 6 + cfg.exp_dim + cfg.app_dim + (9 if cfg.normals else 0)
        self.color = _mlp(d_col, cfg.hidden, 3)

    def normalize(self, xc: Tensor) -> Tensor:
        lo, hi = self.bounds[0], self.bounds[1]
        return (2 * (xc - lo) / (hi - lo) - 1).clamp(-1, 1)

    def triplane(self, u: Tensor) -> Tensor:
        """(N, 3) in [-1, 1] -> (N, 3C) bilinear tri-plane features (planes xy, xz, yz)."""
        grid = torch.stack((u[:, [0, 1]], u[:, [0, 2]], u[:, [1, 2]]), 0)[:, None]  # (3, 1, N, 2)
        f = nn.functional.grid_sample(self.planes, grid, mode="bilinear", align_corners=True)  # (3, C, 1, N)
        return f[:, :, 0].permute(2, 0, 1).reshape(u.shape[0], -1)

    def forward(self, xc: Tensor, height: Tensor, n_mesh_c: Tensor, R: Tensor, view: Tensor,
                expression: Tensor, pose: Tensor, app: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Evaluate N samples.

        Args:
            xc: (N, 3) canonical points mm; height: (N,) signed offset from the mesh mm;
            n_mesh_c: (N, 3) the 3DMM's canonical normal at the closest point;
            R: (N, 3, 3) posed -> canonical rotation; view: (N, 3) world ray direction;
            expression: (N, n_expression); pose: (N, 6) rotation + jaw axis-angle; app: (N, app_dim).
        Returns:
            ``(sigma (N,) per mm, rgb (N, 3), normal_c (N, 3) canonical, normal_world (N, 3))``.
        """
        u = self.normalize(xc)
        e = self.exp_proj(expression)
        g = self.geo(torch.cat((self.triplane(u), positional(u, self.N_FREQ), e), -1))
        raw, gate, feat = g[:, 0], g[:, 1], g[:, 2:]
        prior = torch.sigmoid(gate) * (1.0 - 3.0 * height)
        sigma = nn.functional.softplus(raw + prior)
        n_c = nn.functional.normalize(n_mesh_c + self.normal(torch.cat((feat, n_mesh_c), -1)), dim=-1, eps=1e-9)
        n_w = (R.transpose(1, 2) @ n_c[..., None])[..., 0]
        parts = [feat, sh2(view), pose, e, app]
        if self.cfg.normals:
            parts.append(sh2(n_w))
        rgb = torch.sigmoid(self.color(torch.cat(parts, -1)))
        return sigma, rgb, n_c, n_w


def _strata(rays: "RayBatch", S: int, off) -> Tensor:
    """(R, S) camera depths of ``S`` samples per ray, one per equal stratum of [near, far] at
    offset ``off`` (a float or (R, S), in [0, 1)) within it."""
    t = (torch.arange(S, device=rays.origin.device, dtype=torch.float32) + off) / S
    return rays.near[:, None] + t * (rays.far - rays.near)[:, None]


def _deltas(z: Tensor, rays: "RayBatch") -> Tensor:
    """(R, S) path length (mm) each sample at depths ``z`` stands for (the last repeats the one
    before it)."""
    step = torch.diff(z, dim=1, append=z[:, -1:] + (z[:, -1:] - z[:, -2:-1]))
    return step * rays.dirs.norm(dim=-1, keepdim=True)


@dataclass
class RayBatch:
    """Rays of one frame: ``pix`` (R,) flat pixel indices, ``origin``/``dirs`` (R, 3) world
    (``dirs`` scaled so a step of 1 is 1 mm of camera depth), ``near``/``far`` (R,) camera
    depth mm."""

    pix: Tensor
    origin: Tensor
    dirs: Tensor
    near: Tensor
    far: Tensor


def pixel_rays(K: Tensor, R_wc: Tensor, t_wc: Tensor, H: int, W: int, pix: Tensor) -> tuple[Tensor, Tensor]:
    """World ray origin (R, 3) and per-unit-depth directions (R, 3) through flat pixels ``pix``."""
    v = torch.div(pix, W, rounding_mode="floor").float()
    u = (pix % W).float()
    d_cam = torch.stack(((u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], torch.ones_like(u)), -1)
    dirs = d_cam @ R_wc  # R^T d  (row-vector form)
    origin = (-(R_wc.T @ t_wc))[None].expand_as(dirs)
    return origin, dirs


class Portrait(nn.Module):
    """A trained (or training) portrait of one person.

    Args:
        model: the :class:`~face3d.models.MorphableModel` the track was made with.
        identity: (n_identity,) the tracked identity.
        cfg: :class:`PortraitConfig`.
        n_frames: training frames (appearance codes).
        background: (H, W, 3) float image in [0, 1] at the training resolution.
        K: (3, 3) intrinsics at the training resolution (px).
    """

    def __init__(self, model, identity: Tensor, cfg: PortraitConfig, n_frames: int, background: Tensor, K: Tensor):
        super().__init__()
        from face3d.geometry.normals import vertex_normals

        self.model = model
        self.cfg = cfg
        dev = model.template.device  # built where the model is; .to() moves it all later
        self.register_buffer("identity", identity.float().reshape(1, -1).to(dev).clone())
        with torch.no_grad():
            can = model(identity=self.identity).vertices[0].float()
        self.register_buffer("canonical", can)
        self.register_buffer("canonical_normals", vertex_normals(can[None], model.faces)[0])
        self.register_buffer("background", background.float().to(dev).clone())
        self.register_buffer("K", K.float().to(dev).clone())
        self.embedding = MeshEmbedding(model.faces, can, k=cfg.k)
        self.backdrop = Backdrop(self.background) if cfg.backdrop else None
        pad = cfg.shell_mm + 10.0
        bounds = torch.stack((can.min(0).values - pad, can.max(0).values + pad))
        self.field = PortraitField(cfg, bounds, model.n_expression, n_frames)

    @property
    def device(self) -> torch.device:
        """Where the portrait's tensors (and its morphable model) are."""
        return self.canonical.device

    # ------------------------------------------------------------------ geometry per frame

    def posed(self, expression: Tensor, jaw: Tensor, rotation: Tensor, translation: Tensor,
              neck: Tensor | None = None) -> Tensor:
        """(B, n_exp), (B, 3) x3 [, neck (B, 3)] -> (B, V, 3) posed vertices (mm, world)."""
        dev = self.device
        with torch.no_grad():
            B = expression.shape[0]
            return self.model(identity=self.identity.expand(B, -1), expression=expression.float().to(dev),
                              jaw=jaw.float().to(dev), rotation=rotation.float().to(dev),
                              translation=translation.float().to(dev),
                              neck=None if neck is None else neck.float().to(dev)).vertices.float()

    def shell_intervals(self, vertices: Tensor, camera) -> tuple[Tensor, Tensor, Tensor]:
        """Per-pixel ray intervals through the shell: ``(mask (B, H, W) bool, near, far (B, H, W))``
        camera depth in mm, from rasterizing the mesh inflated by ``shell_mm`` and deflated by
        ``inner_mm`` along its vertex normals."""
        from face3d.geometry.normals import vertex_normals
        from face3d.render import Renderer

        r = Renderer(backend="torch")
        with torch.no_grad():
            n = vertex_normals(vertices, self.model.faces)
            outer = r(vertices + self.cfg.shell_mm * n, self.model.faces, camera, antialias=False)
            inner = r(vertices - self.cfg.inner_mm * n, self.model.faces, camera, antialias=False)
        mask = outer.alpha[..., 0] > 0
        near = outer.depth
        hit = inner.alpha[..., 0] > 0
        far = torch.where(hit & (inner.depth > near), inner.depth, near + 2.5 * self.cfg.shell_mm)
        return mask, near, far

    # ------------------------------------------------------------------ rendering rays

    def sample_shell(self, rays: RayBatch, vertices: Tensor, key=None, jitter: bool | Tensor = False,
                     samples: int | None = None) -> dict:
        """Samples along ``rays`` between their ``near`` and ``far`` depths, mapped to canonical space.

        Returns ``z`` (R, S) camera depth mm, ``points`` (R*S, 3) world mm, ``canonical``
        (R*S, 3), ``embedded`` (:class:`~avatars.portrait.embedding.Embedded`), ``rotation``
        (R*S, 3, 3) posed -> canonical, and ``valid`` (R*S,) bool: the samples within
        ``shell_mm`` of the mesh (the only ones given density). The distance is a minimum over
        candidate triangles, never below the true distance, so every valid sample is truly
        within ``shell_mm``.
        """
        S = samples or self.cfg.samples
        Rn = rays.pix.shape[0]
        dev = rays.origin.device
        if isinstance(jitter, Tensor):
            if jitter.shape != (Rn, S):
                raise ValueError(f"jitter: expected ({Rn}, {S}) offsets in [0, 1), got {tuple(jitter.shape)}")
            off = jitter.to(dev)
        else:
            off = torch.rand(Rn, S, device=dev) if jitter else 0.5
        z = _strata(rays, S, off)
        pts = (rays.origin[:, None] + z[..., None] * rays.dirs[:, None]).reshape(-1, 3)
        xc, emb, Rot = self.embedding.map(pts, vertices, key)
        return {"z": z, "points": pts, "canonical": xc, "embedded": emb, "rotation": Rot,
                "valid": emb.distance <= self.cfg.shell_mm}

    def render_rays(self, rays: RayBatch, vertices: Tensor, expression: Tensor, pose: Tensor, app: Tensor,
                    key=None, jitter: bool | Tensor = False, samples: int | None = None,
                    bg: Tensor | None = None) -> dict[str, Tensor]:
        """Volume-render rays of one frame.

        Args:
            rays: :class:`RayBatch` (R rays).
            vertices: (V, 3) the frame's posed mesh. expression: (n_exp,); pose: (6,) rotation +
            jaw; app: (app_dim,) appearance code. key: cache key of the frame's k-d tree.
            jitter: stratified random sample positions (training); or the (R, S) offsets in
            [0, 1) to use. bg: (R, 3) the colours behind the rays (default: the fixed background's).
        Returns:
            ``rgb`` (R, 3) composited over ``bg``, ``alpha`` (R,), ``normal_loss`` (),
            ``normal`` (R, 3) the weight-averaged world normal, ``depth`` (R,) mm.
        """
        sh = self.sample_shell(rays, vertices, key, jitter, samples)
        z, xc, emb, Rot, valid = sh["z"], sh["canonical"], sh["embedded"], sh["rotation"], sh["valid"]
        Rn, S = z.shape
        dev = z.device
        view = nn.functional.normalize(rays.dirs, dim=-1)[:, None].expand(Rn, S, 3).reshape(-1, 3)
        idx = valid.nonzero()[:, 0]
        sigma = torch.zeros(Rn * S, device=dev)
        rgb = torch.zeros(Rn * S, 3, device=dev)
        nw = torch.zeros(Rn * S, 3, device=dev)
        nerr = torch.zeros(Rn * S, device=dev)
        if idx.numel():
            s_, c_, nerr_, nw_ = self._shade(xc, emb, Rot, idx, view[idx], expression, pose, app)
            sigma = sigma.index_put((idx,), s_)
            rgb = rgb.index_put((idx,), c_)
            nw = nw.index_put((idx,), nw_)
            nerr = nerr.index_put((idx,), nerr_)
        sigma, rgb, nw, nerr = sigma.reshape(Rn, S), rgb.reshape(Rn, S, 3), nw.reshape(Rn, S, 3), nerr.reshape(Rn, S)
        alpha = 1 - torch.exp(-sigma * _deltas(z, rays))
        trans = torch.cumprod(torch.cat((torch.ones(Rn, 1, device=dev), 1 - alpha[:, :-1] + 1e-10), 1), 1)
        w = alpha * trans
        out = self._composite(rays, z, w, (w[..., None] * rgb).sum(1), (w[..., None] * nw).sum(1), bg)
        out["normal_loss"] = (w * nerr).sum() / w.sum().clamp_min(1e-6)
        return out

    def _shade(self, xc: Tensor, emb, Rot: Tensor, idx: Tensor, view: Tensor, expression: Tensor, pose: Tensor,
               app: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The field at the samples ``idx`` of a :meth:`sample_shell`-style mapping (``view`` (M, 3)
        already selected): ``(sigma, rgb, squared distance of the predicted canonical normal from
        the 3DMM's, world normal)``, M rows each."""
        M = idx.numel()
        tri = self.model.faces.to(xc.device).long()[emb.triangle[idx]]
        n_mesh = nn.functional.normalize((self.canonical_normals[tri] * emb.bary[idx, :, None]).sum(1), dim=-1, eps=1e-9)
        s_, c_, nc_, nw_ = self.field(xc[idx], emb.height[idx], n_mesh, Rot[idx], view,
                                      expression.float().reshape(1, -1).expand(M, -1),
                                      pose.float().reshape(1, -1).expand(M, -1), app.reshape(1, -1).expand(M, -1))
        return s_, c_, ((nc_ - n_mesh) ** 2).sum(-1), nw_

    def _composite(self, rays: RayBatch, z: Tensor, w: Tensor, col: Tensor, nrm: Tensor, bg: Tensor | None) -> dict:
        """Outputs of :meth:`render_rays` from the sample weights ``w`` (R, S) at depths ``z`` and
        the weighted colour and normal sums ``col``, ``nrm`` (R, 3)."""
        S = z.shape[1]
        acc = w.sum(1)
        if bg is None:
            bg = self.background.reshape(-1, 3)[rays.pix]
        cw = torch.cumsum(w, 1)
        lo = (cw < 0.005 * acc[:, None]).sum(1).clamp_max(S - 1)
        hi = (cw < 0.995 * acc[:, None]).sum(1).clamp_max(S - 1)
        return {"rgb": col + (1 - acc)[:, None] * bg, "alpha": acc, "normal": nrm, "depth": (w * z).sum(1),
                "z_lo": z.gather(1, lo[:, None])[:, 0], "z_hi": z.gather(1, hi[:, None])[:, 0]}

    @torch.no_grad()
    def render_rays_front_to_back(self, rays: RayBatch, vertices: Tensor, expression: Tensor, pose: Tensor,
                                  app: Tensor, key=None, samples: int | None = None, bg: Tensor | None = None,
                                  min_transmittance: float = 1e-4) -> dict[str, Tensor]:
        """:meth:`render_rays` (no gradients, samples at the middle of their strata) one sample at
        a time from the front, each ray dropped once its transmittance is below
        ``min_transmittance``: what it skips would add at most that much to any colour channel
        (``min_transmittance=0`` skips nothing and gives :meth:`render_rays`' result). Returns the
        same keys; ``normal_loss`` is 0.
        """
        S = samples or self.cfg.samples
        Rn = rays.pix.shape[0]
        dev = rays.origin.device
        z = _strata(rays, S, 0.5)  # sample_shell's, unjittered
        delta = _deltas(z, rays)
        dirs = nn.functional.normalize(rays.dirs, dim=-1)
        w = torch.zeros(Rn, S, device=dev)
        col = torch.zeros(Rn, 3, device=dev)
        nrm = torch.zeros(Rn, 3, device=dev)
        T = torch.ones(Rn, device=dev)
        for j in range(S):
            act = (T > min_transmittance).nonzero()[:, 0]
            if act.numel() == 0:
                break
            pts = rays.origin[act] + z[act, j, None] * rays.dirs[act]
            xc, emb, Rot = self.embedding.map(pts, vertices, key)
            idx = (emb.distance <= self.cfg.shell_mm).nonzero()[:, 0]
            if idx.numel() == 0:
                continue
            r = act[idx]
            s_, c_, _, nw_ = self._shade(xc, emb, Rot, idx, dirs[r], expression, pose, app)
            a = 1 - torch.exp(-s_ * delta[r, j])
            wj = T[r] * a
            w[r, j] = wj
            col[r] += wj[:, None] * c_
            nrm[r] += wj[:, None] * nw_
            T[r] = T[r] * (1 - a + 1e-10)
        out = self._composite(rays, z, w, col, nrm, bg)
        out["normal_loss"] = torch.zeros((), device=dev)
        return out

    def pose_vector(self, rotation: Tensor, jaw: Tensor) -> Tensor:
        return torch.cat((rotation.float().reshape(-1), jaw.float().reshape(-1)))

    def _background_at(self, H: int, W: int, bg: Tensor | None = None) -> Tensor:
        """``bg`` (default: the fixed background) resized to (H, W, 3) if it is another size."""
        bg = self.background if bg is None else bg
        if bg.shape[:2] == (H, W):
            return bg
        return nn.functional.interpolate(bg.permute(2, 0, 1)[None], size=(H, W), mode="bilinear",
                                         align_corners=False)[0].permute(1, 2, 0)

    @torch.no_grad()
    def render_frame(self, expression: Tensor, jaw: Tensor, rotation: Tensor, translation: Tensor, camera,
                     app: Tensor | None = None, chunk: int | None = None, samples: int | None = None,
                     background: Tensor | None = None, neck: Tensor | None = None, proxy: int | None = None,
                     fine_samples: int = 6, min_transmittance: float = 1e-4) -> dict[str, Tensor]:
        """Render one full frame: ``rgb`` (H, W, 3), ``alpha`` (H, W), ``normal`` (H, W, 3), and
        ``z_lo``/``z_hi`` (H, W): the depth range holding 99 % of each ray's opacity.

        Args:
            expression: (n_exp,); jaw, rotation, translation: (3,) each; camera: a 1-camera
            :class:`face3d.render.Camera` (any size; the background is resized to it).
            background: (H', W', 3) an image to composite over instead of the portrait's own
            (its backdrop layer at this pose, or its fixed background).
            app: appearance code (default: the mean of the training codes). neck: (3,) optional.
            chunk: rays per batch (default 8,192 on the CPU, 65,536 on CUDA; rays are independent,
            so it changes only speed and memory).
            proxy: fast path: first render at ``proxy`` px (longer side) with all samples, then
            at full size only the rays whose 3x3 proxy neighbourhood has opacity, with
            ``fine_samples`` samples in the depth range the proxy found (plus a 2 mm margin).
            That second pass goes front to back and stops each ray once less than
            ``min_transmittance`` of the background shows through
            (:meth:`render_rays_front_to_back`; None: every sample of every ray).
            None renders every shell ray with every sample (exact; used by the evaluation).
        """
        H, W = camera.height, camera.width
        dev = self.device
        chunk = chunk or (65536 if dev.type == "cuda" else 8192)
        camera = camera.to(dev)
        expression, jaw, rotation, translation = (x.to(dev) for x in (expression, jaw, rotation, translation))
        neck = None if neck is None else neck.to(dev)
        app = None if app is None else app.to(dev)
        if background is None and self.backdrop is not None:
            bg = self.backdrop.image(H, W, rotation, translation)
        else:
            bg = self._background_at(H, W, None if background is None else background.to(dev))
        verts = self.posed(expression[None], jaw[None], rotation[None], translation[None],
                           None if neck is None else neck[None])
        self.embedding.forget("render")  # this frame's tree is built once, for the proxy and the full pass
        try:
            return self._render_frame(verts, camera, expression, jaw, rotation, app, chunk, samples, bg, proxy,
                                      fine_samples, min_transmittance)
        finally:
            self.embedding.forget("render")

    def _render_frame(self, verts, camera, expression, jaw, rotation, app, chunk, samples, bg, proxy, fine_samples,
                      min_transmittance):
        H, W = camera.height, camera.width
        if proxy is not None and proxy < max(H, W):
            pw, ph = max(1, round(W * proxy / max(H, W))), max(1, round(H * proxy / max(H, W)))
            sx, sy = pw / W, ph / H
            small = self._render(verts, camera.resized(pw, ph), expression, jaw, rotation, app,
                                 chunk, samples, None)
            a = nn.functional.max_pool2d(small["alpha"][None, None], 3, 1, 1)[0, 0]
            has = small["alpha"] > 1e-3
            zlo = -nn.functional.max_pool2d(torch.where(has, -small["z_lo"], -torch.inf)[None, None], 3, 1, 1)[0, 0]
            zhi = nn.functional.max_pool2d(torch.where(has, small["z_hi"], -torch.inf)[None, None], 3, 1, 1)[0, 0]
            dev = verts.device
            iy = ((torch.arange(H, device=dev).float() + 0.5) * sy).long().clamp(0, ph - 1)
            ix = ((torch.arange(W, device=dev).float() + 0.5) * sx).long().clamp(0, pw - 1)
            # rays only where the proxy saw opacity, sampled only in the depth range it found
            # (no full-size shell rasterization needed)
            keep = (a[iy][:, ix] > 0.01).reshape(-1)
            near = (zlo[iy][:, ix] - 2.0).reshape(-1)
            far = torch.maximum((zhi[iy][:, ix] + 2.0).reshape(-1), near + 1.0)
            return self._render(verts, camera, expression, jaw, rotation, app, chunk, fine_samples, bg,
                                intervals=(keep, near, far), min_transmittance=min_transmittance)
        return self._render(verts, camera, expression, jaw, rotation, app, chunk, samples, bg)

    def _render(self, verts, camera, expression, jaw, rotation, app, chunk, samples, bg, intervals=None,
                min_transmittance=None):
        H, W = camera.height, camera.width
        if bg is None:
            bg = self._background_at(H, W)
        if intervals is None:
            mask, near, far = self.shell_intervals(verts, camera)
            mask, near, far = mask[0].reshape(-1), near[0].reshape(-1), far[0].reshape(-1)
        else:
            mask, near, far = intervals
        pix = mask.nonzero()[:, 0]
        dev = verts.device
        rgb = bg.reshape(-1, 3).clone()
        alpha = torch.zeros(H * W, device=dev)
        normal = torch.zeros(H * W, 3, device=dev)
        z_lo = torch.zeros(H * W, device=dev)
        z_hi = torch.zeros(H * W, device=dev)
        if app is None:
            app = self.field.app.weight.mean(0)
        pose = self.pose_vector(rotation, jaw)
        K, Rwc, twc = camera.K[0].float(), camera.R[0].float(), camera.t[0].float()
        behind = bg.reshape(-1, 3)
        if min_transmittance is not None:
            # Front to back, a batch holds one sample per ray at a time: as many points per batch
            # with S times the rays, and the fewer, larger batches are what makes it pay.
            chunk = chunk * (samples or self.cfg.samples)
        for s in range(0, pix.numel(), chunk):
            p = pix[s:s + chunk]
            o, d = pixel_rays(K, Rwc, twc, H, W, p)
            rays = RayBatch(p, o, d, near[p], far[p])
            if min_transmittance is None:
                r = self.render_rays(rays, verts[0], expression, pose, app, key="render", samples=samples, bg=behind[p])
            else:
                r = self.render_rays_front_to_back(rays, verts[0], expression, pose, app, key="render", samples=samples,
                                                   bg=behind[p], min_transmittance=min_transmittance)
            rgb[p], alpha[p], normal[p], z_lo[p], z_hi[p] = r["rgb"], r["alpha"], r["normal"], r["z_lo"], r["z_hi"]
        return {"rgb": rgb.reshape(H, W, 3).clamp(0, 1), "alpha": alpha.reshape(H, W), "normal": normal.reshape(H, W, 3),
                "z_lo": z_lo.reshape(H, W), "z_hi": z_hi.reshape(H, W)}
