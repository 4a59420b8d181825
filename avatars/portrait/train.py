"""Training a portrait on a prepared clip: random rays of random training frames, resumable.

Loss per step: colour MSE of the rays (composited over the backdrop: the pose-conditioned layer
of :mod:`avatars.portrait.backdrop`, gated to what moved in the training frames, or the fixed
background) and of ``backdrop_rays`` pixels outside the shell (the backdrop alone, so it learns
the torso and background), ``mask_weight``
times the MSE between accumulated opacity and the foreground mask, ``normal_weight`` times the
squared distance of the predicted normals from the 3DMM's (the guidance), and a small L2 on the
appearance codes. Adam with an exponential decay to ``lr * lr_final``.

Devices: ``train(..., device="cuda")`` builds the portrait as on the CPU (same initial weights)
and moves it, a copy of the morphable model and the cached frames there; rays, frames and sample
offsets are still drawn from the CPU generator, so the run draws the same rays on any device.

Checkpoints (``DIR/checkpoint.pt``, atomic) every ``checkpoint_every`` steps hold the weights,
the optimiser, the step and the random state; a rerun with the same ``DIR`` and settings
continues from there. The finished portrait is ``DIR/portrait.pt`` (:func:`save_portrait`).
"""
from __future__ import annotations

import copy
import io
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from avatars.portrait.data import PortraitData, background_image
from avatars.portrait.backdrop import motion_gate, pixel_uv
from avatars.portrait.model import Portrait, PortraitConfig, RayBatch, pixel_rays

FORMAT = "face3d-portrait-1"


@dataclass(frozen=True)
class TrainConfig:
    """``steps`` of ``rays`` shell rays (and ``backdrop_rays`` pixels outside the shell, when the
    portrait has a backdrop layer) spread over ``frames_per_step`` frames at ``size`` px."""

    steps: int = 4500  # testMovie held out: +2.71 dB over the textured 3DMM at 3,000, +3.20 at 4,500
    rays: int = 2048
    frames_per_step: int = 4
    size: int = 128
    lr: float = 1e-2
    lr_final: float = 0.1
    mask_weight: float = 0.1
    normal_weight: float = 0.02
    app_weight: float = 1e-3
    backdrop_rays: int = 1024
    checkpoint_every: int = 250
    seed: int = 0

    def __post_init__(self):
        if self.steps < 1 or self.rays < 1 or self.frames_per_step < 1:
            raise ValueError(f"steps, rays, frames_per_step: expected >= 1, got {self.steps}, {self.rays}, "
                             f"{self.frames_per_step}")


class FrameCache:
    """Per training frame at the training size: posed mesh, shell intervals, target colours,
    and the pixels outside the shell."""

    def __init__(self, portrait: Portrait, data: PortraitData, frames: range):
        self.frames = list(frames)
        dev = portrait.device
        cam = data.camera().to(dev)
        self.K, self.R, self.t = cam.K[0], cam.R[0], cam.t[0]
        self.H = self.W = data.size
        self.verts, self.pix, self.near, self.far, self.off = [], [], [], [], []
        self.target = torch.from_numpy(data.frames[self.frames].astype(np.float32) / 255).reshape(
            len(self.frames), -1, 3).to(dev)
        self.mask = torch.from_numpy(data.masks[self.frames]).reshape(len(self.frames), -1).to(dev)
        for a in range(0, len(self.frames), 16):
            ids = self.frames[a:a + 16]
            p = {k: torch.tensor(getattr(data, k)[ids], dtype=torch.float32)
                 for k in ("expression", "jaw", "rotation", "translation")}
            v = portrait.posed(p["expression"], p["jaw"], p["rotation"], p["translation"])
            m, n, f = portrait.shell_intervals(v, cam)
            for j in range(len(ids)):
                pix = m[j].reshape(-1).nonzero()[:, 0]
                self.off.append((~m[j].reshape(-1)).nonzero()[:, 0])
                self.verts.append(v[j])
                self.pix.append(pix)
                self.near.append(n[j].reshape(-1)[pix])
                self.far.append(f[j].reshape(-1)[pix])
        self.expression = torch.tensor(data.expression[self.frames], dtype=torch.float32).to(dev)
        self.rotation = torch.tensor(data.rotation[self.frames], dtype=torch.float32).to(dev)
        self.translation = torch.tensor(data.translation[self.frames], dtype=torch.float32).to(dev)
        self.pose = torch.cat((self.rotation, torch.tensor(data.jaw[self.frames], dtype=torch.float32).to(dev)), 1)

    def rays(self, j: int, n: int, g: torch.Generator) -> RayBatch:
        """``n`` random shell rays of cached frame ``j`` (drawn with the CPU generator ``g``)."""
        sel = torch.randint(0, self.pix[j].numel(), (n,), generator=g).to(self.pix[j].device)
        p = self.pix[j][sel]
        o, d = pixel_rays(self.K, self.R, self.t, self.H, self.W, p)
        return RayBatch(p, o, d, self.near[j][sel], self.far[j][sel])

    def off_shell(self, j: int, n: int, g: torch.Generator) -> torch.Tensor:
        """``n`` random pixels of cached frame ``j`` outside its shell (flat indices)."""
        if self.off[j].numel() == 0:
            return self.off[j]
        return self.off[j][torch.randint(0, self.off[j].numel(), (n,), generator=g).to(self.off[j].device)]


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a - b) ** 2).mean())
    return float("inf") if mse == 0 else -10 * math.log10(mse)


def _atomic_save(obj, path: Path) -> None:
    from face3d.fileio import atomic_write_bytes

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def save_portrait(portrait: Portrait, path: str | Path, data: PortraitData, meta: dict | None = None) -> Path:
    """Write a finished portrait (everything :func:`load_portrait` needs to render it)."""
    path = Path(path)
    _atomic_save({"format": FORMAT, "model": data.model, "config": asdict(portrait.cfg),
                  "identity": portrait.identity[0].cpu().clone(), "K": portrait.K.cpu().clone(),
                  "background": portrait.background.cpu().clone(), "n_frames": portrait.field.app.num_embeddings,
                  "field": {k: v.cpu() for k, v in portrait.field.state_dict().items()},
                  "backdrop": None if portrait.backdrop is None else
                  {k: v.cpu() for k, v in portrait.backdrop.state_dict().items()},
                  "fps": data.fps, "meta": meta or {}}, path)
    return path


def load_portrait(path: str | Path, model=None) -> Portrait:
    """A portrait from ``portrait.pt`` (or a training folder holding one)."""
    import face3d

    path = Path(path)
    if path.is_dir():
        path = path / "portrait.pt"
    if not path.is_file():
        raise FileNotFoundError(f"portrait: expected a portrait.pt (from `avatars portrait-train`), got {path}")
    ck = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise ValueError(f"{path}: not a portrait file (expected format {FORMAT!r})")
    model = model or face3d.load_model(ck["model"])
    if model.n_identity != ck["identity"].numel():
        raise ValueError(f"{path}: made for a model with {ck['identity'].numel()} identity coefficients, "
                         f"got {model.name!r} with {model.n_identity}")
    cfg = PortraitConfig(**{"backdrop": False, **ck["config"]})  # files from before the backdrop layer
    p = Portrait(model, ck["identity"], cfg, ck["n_frames"], ck["background"], ck["K"])
    p.field.load_state_dict(ck["field"])
    if p.backdrop is not None:
        p.backdrop.load_state_dict(ck["backdrop"])
    p.fps = float(ck.get("fps", 25.0))
    p.meta = ck.get("meta", {})
    p.model_spec = ck["model"]
    return p


def train(data: PortraitData, out_dir: str | Path, model=None, cfg: PortraitConfig = PortraitConfig(),
          tcfg: TrainConfig = TrainConfig(), resume: bool = True, progress: bool = True,
          log: Callable[[str], None] | None = None, stop_at: int | None = None, dist=None,
          device: str | torch.device | None = None, max_seconds: float | None = None) -> Portrait | None:
    """Train a portrait on ``data``'s training frames; writes ``out_dir/portrait.pt``.

    ``data`` is resized to ``tcfg.size``. With ``resume``, a checkpoint in ``out_dir`` made
    with the same settings is continued. ``stop_at``: stop after that step with a checkpoint,
    as an interrupted run would (returns None; a later call resumes).

    ``dist``: this process's rank under ``torchrun`` (default: the running process group, if
    any). Every rank draws the same frames, rays and sample offsets from the seed and renders its
    share of the step's ``frames_per_step`` frames; gradients are averaged, so N processes follow
    the single-process run. Only rank 0 logs and writes files (all ranks return the portrait).

    ``device``: where to train (default: the model's device, normally the CPU); the caller's
    model is not moved (the portrait gets a copy). ``max_seconds``: stop after the step that
    passes this much training time (excluding the frame cache), with a checkpoint, and finish as
    if ``steps`` were done (the learning-rate schedule still follows ``steps``); ``meta`` records
    ``steps_done``.
    """
    import face3d
    from face3d import distributed

    info = distributed.current() if dist is None else dist
    if max_seconds is not None and info.world > 1:
        raise ValueError(f"max_seconds: expected None under torchrun (ranks would stop at different steps), "
                         f"got {max_seconds} with {info.world} processes")
    mine = set(range(tcfg.frames_per_step)[distributed.shard(tcfg.frames_per_step, info, "TrainConfig.frames_per_step")])
    if not info.is_main:
        log, progress = None, False

    out_dir = Path(out_dir)
    say = log or (lambda m: None)
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    model = model or face3d.load_model(data.model)
    if data.identity.shape != (model.n_identity,):
        raise ValueError(f"data: identity of {data.identity.shape[0]} coefficients, model {model.name!r} has "
                         f"{model.n_identity}")
    d = data.resized(tcfg.size)
    torch.manual_seed(tcfg.seed)
    bg = torch.from_numpy(background_image(d))
    portrait = Portrait(model, torch.tensor(d.identity, dtype=torch.float32), cfg, d.n_train, bg,
                        torch.tensor(d.K, dtype=torch.float32))
    dev = torch.device(device) if device is not None else portrait.device
    if dev != portrait.device:
        # Initialised where the model is (the same weights as a CPU run), then moved; the copy
        # keeps the caller's model where it was (Module.to moves in place).
        portrait.model = copy.deepcopy(model)
        portrait.to(dev)
    field, backdrop = portrait.field, portrait.backdrop
    planes = [field.planes]
    rest = [p for n, p in field.named_parameters() if n != "planes"]
    groups = [{"params": planes, "lr": tcfg.lr}, {"params": rest, "lr": tcfg.lr * 0.3}]
    if backdrop is not None:
        backdrop.set_rest_pose(torch.tensor(d.rotation[:d.n_train]), torch.tensor(d.translation[:d.n_train]))
        backdrop.set_gate(torch.from_numpy(motion_gate(d.frames[:d.n_train].astype(np.float32) / 255,
                                                       d.masks[:d.n_train], bg.numpy())))
        groups.append({"params": list(backdrop.parameters()), "lr": tcfg.lr * 0.3})
    params = [p for grp in groups for p in grp["params"]]
    opt = torch.optim.Adam(groups)
    base_lrs = [g["lr"] for g in opt.param_groups]
    g = torch.Generator().manual_seed(tcfg.seed)
    step, history, seconds = 0, [], 0.0
    ck_path = out_dir / "checkpoint.pt"
    settings = {"config": asdict(cfg), "train": asdict(tcfg), "frames": d.n_frames, "n_train": d.n_train,
                "backdrop": "gated" if backdrop is not None else None}  # checkpoints from before the gate restart
    if resume and ck_path.is_file():
        ck = torch.load(ck_path, map_location="cpu", weights_only=False)
        if ck.get("settings") == settings:
            field.load_state_dict(ck["field"])
            if backdrop is not None:
                backdrop.load_state_dict(ck["backdrop"])
            opt.load_state_dict(ck["optim"])
            g.set_state(ck["generator"])
            torch.set_rng_state(ck["torch_rng"])
            step, history, seconds = ck["step"], ck["history"], ck["seconds"]
            say(f"resuming from {ck_path} at step {step}/{tcfg.steps}")
        else:
            say(f"ignoring {ck_path}: made with other settings")
    t_start = time.time()
    cache = FrameCache(portrait, d, range(d.n_train))
    say(f"cached {d.n_train} training frames at {tcfg.size} px in {time.time() - t_start:.1f} s")
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=tcfg.steps, initial=step, desc="portrait", unit="step", dynamic_ncols=True)
    t_seg = time.time()
    per = max(1, tcfg.rays // tcfg.frames_per_step)
    per_off = max(1, tcfg.backdrop_rays // tcfg.frames_per_step)
    while step < tcfg.steps:
        frac = step / max(1, tcfg.steps)
        for grp, lr0 in zip(opt.param_groups, base_lrs):
            grp["lr"] = lr0 * tcfg.lr_final ** frac
        js = torch.randint(0, d.n_train, (tcfg.frames_per_step,), generator=g).tolist()
        loss = 0.0
        mse_sum = 0.0
        for k, j in enumerate(js):
            rays = cache.rays(j, per, g)
            jit = torch.rand(per, cfg.samples, generator=g)  # drawn by every rank: the same run
            off = cache.off_shell(j, per_off, g) if backdrop is not None else None
            if k not in mine:
                continue
            bg = behind = None
            if backdrop is not None:  # one lookup for the shell rays' and the off-shell pixels' backdrop
                pix = torch.cat((rays.pix, off))
                behind = backdrop(pixel_uv(pix, d.size, d.size), cache.rotation[j], cache.translation[j])
                bg = behind[:per]
            out = portrait.render_rays(rays, cache.verts[j], cache.expression[j], cache.pose[j],
                                       field.app.weight[j], key=j, jitter=jit, bg=bg)
            pred, tgt = out["rgb"], cache.target[j][rays.pix]
            if behind is not None:
                pred, tgt = torch.cat((pred, behind[per:])), cache.target[j][pix]
            mse = ((pred - tgt) ** 2).mean()
            l = mse + tcfg.mask_weight * ((out["alpha"] - cache.mask[j][rays.pix]) ** 2).mean()
            if cfg.normals:
                l = l + tcfg.normal_weight * out["normal_loss"]
            loss = loss + l * (info.world / len(js))  # gradients are averaged over the ranks
            mse_sum += float(mse.detach()) / len(js)
        loss = loss + tcfg.app_weight * (field.app.weight[js] ** 2).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients(params, info)
        opt.step()
        mse_sum = distributed.average_scalar(mse_sum, info) * info.world
        step += 1
        history.append(mse_sum)
        if bar is not None:
            bar.update(1)
            if step % 25 == 0:
                bar.set_postfix(psnr=f"{-10 * math.log10(max(1e-10, np.mean(history[-25:]))):.2f}")
        stopping = stop_at is not None and step >= stop_at
        # float(mse) above waits for the device every step, so wall time here is real time
        out_of_time = max_seconds is not None and seconds + (time.time() - t_seg) >= max_seconds
        if (step % tcfg.checkpoint_every == 0 or step == tcfg.steps or stopping or out_of_time) and info.is_main:
            seconds += time.time() - t_seg
            t_seg = time.time()
            _atomic_save({"settings": settings, "field": field.state_dict(),
                          "backdrop": None if backdrop is None else backdrop.state_dict(), "optim": opt.state_dict(),
                          "generator": g.get_state(), "torch_rng": torch.get_rng_state(), "step": step,
                          "history": history, "seconds": seconds}, ck_path)
        if stopping and step < tcfg.steps:
            if bar is not None:
                bar.close()
            say(f"stopped at step {step}; checkpoint in {ck_path}")
            return None
        if out_of_time:
            say(f"time budget of {max_seconds:.0f} s reached at step {step}/{tcfg.steps}")
            break
    if bar is not None:
        bar.close()
    seconds += time.time() - t_seg
    meta = {"train_seconds": seconds, "steps": tcfg.steps, "steps_done": step, "size": tcfg.size, "n_train": d.n_train,
            "final_train_psnr": -10 * math.log10(max(1e-10, float(np.mean(history[-50:])))),
            "source": data.source, "normals": cfg.normals,
            "rest_rotation": np.median(d.rotation[:d.n_train], 0).tolist(),
            "rest_translation": np.median(d.translation[:d.n_train], 0).tolist()}
    if info.is_main:
        save_portrait(portrait, out_dir / "portrait.pt", d, meta)
    portrait.meta = meta
    portrait.fps = d.fps
    portrait.model_spec = d.model
    say(f"trained {step} steps in {seconds:.0f} s; wrote {out_dir / 'portrait.pt'}")
    return portrait
