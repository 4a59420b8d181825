"""GPU check for the neural portraits (issue #12), in one run: rasterizer CUDA vs CPU, portrait
training on the device for a time budget, held-out PSNR against the textured 3DMM, and portrait
rendering speed at 512² and 256² (not a test).

    python bench/bench_gpu.py                       # --device cuda when torch sees a GPU, else cpu
    python bench/bench_gpu.py --device cpu --quick  # tiny sizes: checks the script itself on a CPU
    bash bench/gpu_check.sh                         # the same, choosing a Python (see that file)

Sections (each writes its numbers into the JSON as soon as it is done, so a run stopped at a time
limit keeps what it measured):

1. ``raster``: ``face3d.render.rasterize`` (torch backend) forward, and forward + interpolate +
   antialias + backward, on the bundled head at 256² and 512², batch 1 and 8, on the device and
   on the CPU (same clip-space positions, computed once on the CPU), median of ``--repeat`` runs
   after a warm-up with ``torch.cuda.synchronize`` around each; the device's images, triangle ids
   and position gradients are compared with the CPU's.
2. ``embedding``: the portrait's nearest-centroid search on shell-like points of a posed head:
   the k-d tree (scipy, on the CPU: device -> host -> device copies included) against the torch
   search on the device; both must return the same candidates.
3. ``train``: the synthetic clip (:mod:`avatars.portrait.synthetic`; by default its true
   parameters stand in for the track, so no tracker runs on the GPU machine; ``--data DIR`` takes
   a folder prepared by ``bench/bench_portrait.py`` instead), a portrait trained on the device
   for ``--train-seconds`` or ``--steps``, whichever ends first; steps/s, wall time, and
   held-out PSNR / SSIM of the portrait and of the textured 3DMM
   (:func:`avatars.portrait.evaluate.evaluate_clip`). Then one held-out frame rendered by the
   device portrait and by a CPU copy of it must agree.
4. ``render``: held-out frames at 512² and 256², exact path and fast proxy path (and, on CUDA,
   with each nearest-centroid search), frames per second with the device synchronised, and
   whether that is real time (>= 25 frames/s).

Writes ``$OUT/bench_gpu.json`` when ``OUT`` is set, else ``out/bench_gpu.json``. Exits 1 when a
self-check fails (the JSON lists them under ``checks``), 0 otherwise; missed speed targets are
reported, not failures.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

REAL_TIME_FPS = 25.0
TRAIN_TARGET_S = 300.0


# ----------------------------------------------------------------------------- helpers


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def timed(fn, dev: torch.device, repeat: int) -> float:
    """Median wall time of ``fn()`` in ms over ``repeat`` runs after one warm-up, device synchronised."""
    fn()
    sync(dev)
    ts = []
    for _ in range(repeat):
        sync(dev)
        t0 = time.perf_counter()
        fn()
        sync(dev)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3


def environment(dev: torch.device, threads: int) -> dict:
    env = {"python": platform.python_version(), "torch": torch.__version__, "machine": platform.machine(),
           "cpu_count": os.cpu_count(), "cpu_threads": threads, "device": str(dev),
           "cuda_available": torch.cuda.is_available(), "cuda": torch.version.cuda}
    if dev.type == "cuda":
        prop = torch.cuda.get_device_properties(dev)
        env.update(gpu=prop.name, gpu_memory_gib=round(prop.total_memory / 2 ** 30, 1),
                   capability=f"{prop.major}.{prop.minor}", multiprocessors=prop.multi_processor_count)
    try:
        env["git"] = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                                    text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        env["git"] = None
    return env


class Report:
    """The JSON being built, written after every section."""

    def __init__(self, path: Path, **head):
        self.path = path
        self.data = dict(head, checks=[])

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.data["checks"].append({"name": name, "ok": bool(ok), "detail": detail})
        print(f"  check {'ok  ' if ok else 'FAIL'} {name}: {detail}", flush=True)

    def write(self) -> None:
        from face3d.fileio import atomic_write_text

        atomic_write_text(self.path, json.dumps(self.data, indent=1, default=float) + "\n")


def table(head: list[str], rows: list[list]) -> str:
    cells = [[str(c) for c in r] for r in [head] + rows]
    w = [max(len(r[i]) for r in cells) for i in range(len(head))]
    return "\n".join("  " + "  ".join(c.rjust(w[i]) for i, c in enumerate(r)) for r in cells)


def fmt(x, nd=1) -> str:
    return "–" if x is None else f"{x:.{nd}f}"


# ----------------------------------------------------------------------------- 1. rasterizer


def raster_section(a, dev: torch.device, rep: Report) -> None:
    from bench_rasterize import framing, load_mesh, torch_passes

    cpu = torch.device("cpu")
    devices = [cpu] if dev.type == "cpu" else [dev, cpu]
    verts, faces, mesh_name = load_mesh()
    tri = faces.int()
    g = torch.Generator().manual_seed(0)
    rows, out = [], []
    print(f"\n[1] rasterizer (torch backend): {mesh_name}, {tri.shape[0]} triangles, median of {a.repeat} runs, ms",
          flush=True)
    for res in a.res:
        cam = framing(verts, faces, res)
        pos1 = cam.to_clip(verts[None])  # on the CPU, copied to each device: identical inputs
        for B in a.batch:
            pos = pos1.expand(B, -1, -1).contiguous()
            colors = torch.rand(B, verts.shape[0], 3, generator=g)
            wts = torch.rand(B, res, res, 3, generator=g)
            r = {"res": res, "batch": B}
            results = {}
            for d in devices:
                fwd, fwd_bwd = torch_passes(pos.to(d), tri.to(d), res, colors.to(d), wts.to(d))
                name = "device" if d == dev and dev.type != "cpu" else "cpu"
                r[f"{name}_fwd_ms"] = timed(fwd, d, a.repeat)
                r[f"{name}_fwd_bwd_ms"] = timed(fwd_bwd, d, a.repeat)
                results[name] = [x.cpu() for x in fwd_bwd()]
            if "device" in results:
                (rd, imd, gd), (rc, imc, gc) = results["device"], results["cpu"]
                diff = (imd - imc).abs()
                r.update(img_max_abs_diff=float(diff.max()), img_mean_abs_diff=float(diff.mean()),
                         id_mismatch=float((rd[..., 3] != rc[..., 3]).float().mean()),
                         grad_rel_diff=float((gd - gc).abs().max() / gc.abs().max().clamp_min(1e-30)))
                r["fwd_ratio"] = r["cpu_fwd_ms"] / r["device_fwd_ms"]
                r["fwd_bwd_ratio"] = r["cpu_fwd_bwd_ms"] / r["device_fwd_bwd_ms"]
            out.append(r)
            rows.append([f"{res}²", B, fmt(r.get("device_fwd_ms"), 2), fmt(r["cpu_fwd_ms"], 2),
                         fmt(r.get("fwd_ratio")), fmt(r.get("device_fwd_bwd_ms"), 2), fmt(r["cpu_fwd_bwd_ms"], 2),
                         fmt(r.get("fwd_bwd_ratio")), fmt(r.get("img_max_abs_diff"), 6),
                         fmt(r.get("id_mismatch"), 6)])
            print(f"  {res}² B={B} done", flush=True)
    dn = "cuda" if dev.type != "cpu" else "(none)"
    print(table(["image", "batch", f"fwd {dn}", "fwd cpu", "cpu/dev", f"fwd+bwd {dn}", "fwd+bwd cpu", "cpu/dev",
                 "img max|diff|", "id mismatch"], rows))
    rep.data["raster"] = {"mesh": mesh_name, "faces": int(tri.shape[0]), "repeat": a.repeat, "rows": out}
    if dev.type != "cpu":
        worst_mis = max(r["id_mismatch"] for r in out)
        worst_mean = max(r["img_mean_abs_diff"] for r in out)
        worst_grad = max(r["grad_rel_diff"] for r in out)
        worst_max = max(r["img_max_abs_diff"] for r in out)
        # A pixel centre within rounding of an edge may go to the other triangle (one flipped
        # pixel moves max|diff| a lot), so the check is on how many pixels and the mean.
        rep.check("raster cuda == cpu", worst_mis <= 1e-4 and worst_mean <= 1e-5 and worst_grad <= 1e-2,
                  f"triangle ids differ at {worst_mis:.2e} of pixels (<= 1e-4), image mean |diff| {worst_mean:.2e} "
                  f"(<= 1e-5), max |diff| {worst_max:.2e}, position gradients max rel diff {worst_grad:.2e} "
                  f"(<= 1e-2)")
    rep.write()


# ----------------------------------------------------------------------------- data


def synthetic_data(model, frames: int, size: int, work: Path):
    """The synthetic clip as :class:`PortraitData` with its true parameters as the track (cached)."""
    from avatars.portrait.data import PortraitData
    from avatars.portrait.synthetic import SyntheticClipConfig, synthetic_clip
    from face3d.reconstruct.camera import make_camera

    folder = work / f"synthetic_{frames}x{size}"
    if (folder / "meta.json").is_file():
        return PortraitData.load(folder), 0.0
    t0 = time.time()
    clip = synthetic_clip(model, SyntheticClipConfig(frames=frames, size=size))
    K = make_camera(torch.tensor([float(clip.focal)], dtype=torch.float64), clip.width, clip.height).K[0].numpy()
    data = PortraitData(frames=clip.frames, masks=clip.masks.astype(np.float32), identity=clip.identity,
                        expression=clip.expression, jaw=clip.jaw, rotation=clip.rotation,
                        translation=clip.translation, K=K, n_train=clip.n_train, fps=clip.fps, model="builtin",
                        source="synthetic clip, true parameters")
    data.save(folder)
    return data, time.time() - t0


# ----------------------------------------------------------------------------- 2. embedding search


def shell_points(model, n: int, seed: int = 0):
    """A posed bundled head (V, 3) and ``n`` points from 6 mm inside to 20 mm outside it (N, 3)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        v = model(expression=torch.rand(1, model.n_expression, generator=g) * 0.6, jaw=torch.tensor([[0.15, 0.0, 0.0]]),
                  rotation=torch.tensor([[0.1, 0.4, 0.0]]), translation=torch.tensor([[0.0, -20.0, -900.0]])).vertices[0]
    F = model.faces.long()
    f = torch.randint(0, F.shape[0], (n,), generator=g)
    b = torch.rand(n, 3, generator=g)
    b = b / b.sum(1, keepdim=True)
    x = (v[F[f]] * b[..., None]).sum(1)
    nrm = torch.nn.functional.normalize(torch.linalg.cross(v[F[f, 1]] - v[F[f, 0]], v[F[f, 2]] - v[F[f, 0]]), dim=-1)
    return v, x + nrm * (torch.rand(n, 1, generator=g) * 26 - 6)


def embedding_section(a, dev: torch.device, model, rep: Report) -> None:
    from avatars.portrait.embedding import MeshEmbedding

    print(f"\n[2] nearest-centroid search of the mesh embedding (k=4, {model.n_faces} triangles), ms", flush=True)
    can = model().vertices[0].detach()
    searches = ["kdtree", "torch"]
    rows, out, agree = [], [], []
    for n in a.embed_points:
        v, x = shell_points(model, n)
        v, x = v.to(dev), x.to(dev)
        r = {"points": n}
        got = {}
        for s in searches:
            emb = MeshEmbedding(model.faces, can, k=4, search=s)
            emb.nearest_centroids(x[:16], v, key="f")  # builds (and caches) the frame's index
            r[f"{s}_build_ms"] = timed(lambda: (emb.forget("f"), emb.nearest_centroids(x[:1], v, key="f")), dev, 1)
            r[f"{s}_query_ms"] = timed(lambda: emb.nearest_centroids(x, v, key="f"), dev, a.repeat)
            got[s] = emb.nearest_centroids(x, v, key="f").sort(1).values
        r["same_candidates"] = float((got["kdtree"] == got["torch"]).all(1).float().mean())
        agree.append(r["same_candidates"])
        out.append(r)
        rows.append([n, fmt(r["kdtree_build_ms"], 2), fmt(r["kdtree_query_ms"], 2), fmt(r["torch_build_ms"], 2),
                     fmt(r["torch_query_ms"], 2), f"{r['same_candidates']:.4f}"])
    print(table(["points", "k-d tree build", "k-d tree query (with copies)", f"torch build ({dev.type})",
                 f"torch query ({dev.type})", "same candidates"], rows))
    rep.data["embedding"] = {"device": str(dev), "rows": out}
    rep.check("torch search == k-d tree", min(agree) >= 0.999,
              f"identical candidate sets for {min(agree):.4%} of points (>= 99.9 %; the rest can only be ties)")
    rep.write()


# ----------------------------------------------------------------------------- 3. training


def train_section(a, dev: torch.device, rep: Report, work: Path):
    import face3d
    from avatars.portrait.data import PortraitData
    from avatars.portrait.evaluate import evaluate_clip
    from avatars.portrait.model import PortraitConfig
    from avatars.portrait.train import TrainConfig, train

    model = face3d.load_model("builtin")  # stays on the CPU (baseline); train() copies it to the device
    if a.data:
        data, clip_s = PortraitData.load(a.data), 0.0
        source = str(a.data)
    else:
        data, clip_s = synthetic_data(model, a.frames, a.clip_size, work)
        source = f"synthetic clip ({a.frames} frames at {a.clip_size}², true parameters)"
    cfg = PortraitConfig(samples=8, planes=32, channels=8, hidden=32) if a.quick else PortraitConfig()
    tcfg = TrainConfig(steps=a.steps, size=a.size, rays=a.rays)
    print(f"\n[3] training on {dev}: {source}, {data.n_train} training / {data.n_frames - data.n_train} held-out "
          f"frames, {tcfg.size} px, up to {tcfg.steps} steps or {a.train_seconds:.0f} s", flush=True)
    t0 = time.time()
    p = train(data, work / "train", model, cfg, tcfg, resume=False, progress=False,
              log=lambda m: print("  " + m, flush=True), device=dev, max_seconds=a.train_seconds)
    sync(dev)
    wall = time.time() - t0
    steps, secs = p.meta["steps_done"], p.meta["train_seconds"]
    tr = {"source": source, "clip_seconds": clip_s, "steps_target": tcfg.steps, "steps_done": steps,
          "train_seconds": secs, "wall_seconds_incl_cache": wall, "steps_per_s": steps / secs,
          "size": tcfg.size, "rays": tcfg.rays, "config": dataclasses.asdict(p.cfg),
          "projected_seconds_for_all_steps": tcfg.steps / (steps / secs) + (wall - secs)}
    # the target is about the full run (TrainConfig().steps at 128 px); a quick run does not assess it
    tr["target_met"] = None if a.quick else bool(steps == tcfg.steps and wall <= TRAIN_TARGET_S)
    rep.check("portrait trained on the device", p.device.type == dev.type and steps >= 1,
              f"portrait tensors on {p.device}, {steps} steps")

    t1 = time.time()
    s = evaluate_clip(data, {"ours": p}, model, size=tcfg.size, n_examples=0)
    tr["eval_seconds"] = time.time() - t1
    tr.update(heldout_frames=s.frames, psnr=s.psnr, psnr_head=s.psnr_head, ssim=s.ssim,
              seconds_per_frame=s.seconds_per_frame)
    print(table(["method", "held-out PSNR dB", "head PSNR dB", "SSIM", "s/frame"],
                [[n, fmt(s.psnr[n], 2), fmt(s.psnr_head[n], 2), fmt(s.ssim[n], 3), fmt(s.seconds_per_frame[n], 3)]
                 for n in s.psnr]))
    print(f"  {steps} steps in {secs:.1f} s ({steps / secs:.2f} steps/s); wall {wall:.1f} s with the frame cache; "
          f"all {tcfg.steps} steps would take ~{tr['projected_seconds_for_all_steps']:.0f} s "
          f"(target <= {TRAIN_TARGET_S:.0f} s for the full run: "
          f"{'not assessed, quick run' if a.quick else 'met' if tr['target_met'] else 'MISSED'})", flush=True)
    rep.check("held-out scores are finite", all(math.isfinite(v) for v in s.psnr.values()),
              ", ".join(f"{n} {v:.2f} dB" for n, v in s.psnr.items()))

    # The same portrait on the CPU (k-d tree search) must draw the same picture as on the device
    # (torch search on CUDA). On a CPU-only run, the torch search on the CPU is compared instead.
    d = data.resized(tcfg.size)
    i = d.n_train
    cam = d.camera()
    other = copy.deepcopy(p).to("cpu")
    if dev.type == "cpu":
        other.embedding.search = "torch"
    img_dev = p.render_frame(**d.params(i), camera=cam)["rgb"].cpu()
    img_other = other.render_frame(**d.params(i), camera=cam)["rgb"]
    mse = float(((img_dev - img_other) ** 2).mean())
    ps = float("inf") if mse == 0 else -10 * math.log10(mse)
    what = "cpu k-d tree vs cpu torch search" if dev.type == "cpu" else f"{dev.type} vs cpu"
    tr["render_agreement"] = {"what": what, "psnr": ps, "max_abs_diff": float((img_dev - img_other).abs().max())}
    rep.check(f"portrait render {what}", ps >= 35.0, f"PSNR {ps:.1f} dB between the two renders (>= 35)")
    rep.data["train"] = tr
    rep.write()
    return p, d


# ----------------------------------------------------------------------------- 4. rendering


def render_section(a, dev: torch.device, p, d, rep: Report) -> None:
    from avatars.portrait.render import camera_for

    ids = list(range(d.n_train, d.n_frames))[: a.render_frames]
    searches = ["torch", "kdtree"] if dev.type == "cuda" else [p.embedding.search_for(torch.zeros(1, device=dev))]
    print(f"\n[4] rendering on {dev}: {len(ids)} held-out frames per case (after a warm-up frame), "
          f"fast path = {a.proxy} px proxy + 6 samples", flush=True)
    rows, out = [], []
    for S in a.render_sizes:
        cam = camera_for(p, S)
        for search in searches:
            p.embedding.search = search
            imgs = {}
            for path, proxy in (("exact", None), ("fast", a.proxy)):
                p.render_frame(**d.params(ids[0]), camera=cam, proxy=proxy)
                sync(dev)
                t0 = time.perf_counter()
                imgs[path] = [p.render_frame(**d.params(i), camera=cam, proxy=proxy)["rgb"] for i in ids]
                sync(dev)
                wall = (time.perf_counter() - t0) / len(ids)
                r = {"size": S, "path": path, "search": search, "seconds_per_frame": wall, "fps": 1 / wall,
                     "real_time": bool(1 / wall >= REAL_TIME_FPS)}
                if path == "fast":
                    mse = float(np.mean([float(((x - y) ** 2).mean()) for x, y in zip(imgs["fast"], imgs["exact"])]))
                    r["psnr_vs_exact"] = float("inf") if mse == 0 else -10 * math.log10(mse)
                out.append(r)
                rows.append([f"{S}²", path, search, fmt(wall * 1e3, 1), fmt(1 / wall, 2),
                             "yes" if r["real_time"] else "no", fmt(r.get("psnr_vs_exact"), 1)])
                rep.data["render"] = {"frames": len(ids), "proxy": a.proxy, "rows": out}
                rep.write()
    p.embedding.search = "auto"
    print(table(["size", "path", "search", "ms/frame", "frames/s", f">= {REAL_TIME_FPS:.0f} fps",
                 "PSNR vs exact"], rows))


# ----------------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (a few minutes on a CPU): checks the script")
    ap.add_argument("--train-seconds", type=float, default=None, help="training time budget (default 240; quick 20)")
    ap.add_argument("--steps", type=int, default=None, help="training steps (default TrainConfig's, 4500; quick 30)")
    ap.add_argument("--data", type=Path, default=None,
                    help="a prepared portrait folder (holding data/) instead of the synthetic clip")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1)),
                    help="CPU threads (the CPU side of the comparisons)")
    ap.add_argument("--sections", nargs="+", default=["raster", "embedding", "train", "render"],
                    choices=["raster", "embedding", "train", "render"])
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default out/bench_gpu_work)")
    ap.add_argument("--json", type=Path, default=None, help="default $OUT/bench_gpu.json or out/bench_gpu.json")
    a = ap.parse_args(argv)
    q = a.quick
    a.train_seconds = a.train_seconds if a.train_seconds is not None else (20.0 if q else 240.0)
    from avatars.portrait.train import TrainConfig

    a.steps = a.steps if a.steps is not None else (30 if q else TrainConfig().steps)
    a.repeat = 2 if q else 3
    a.res, a.batch = ((64, 128), (1, 2)) if q else ((256, 512), (1, 8))
    a.embed_points = (2048,) if q else (32768, 524288)
    a.frames, a.clip_size, a.size, a.rays = (10, 64, 32, 256) if q else (120, 256, 128, 2048)
    a.render_sizes, a.proxy, a.render_frames = ((64, 32), 16, 2) if q else ((512, 256), 64, 8)

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        print(f"--device {a.device}: torch {torch.__version__} sees no CUDA device (torch.version.cuda = "
              f"{torch.version.cuda}); use a CUDA build of torch, or --device cpu", file=sys.stderr)
        return 2
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    out_dir = Path(os.environ["OUT"]) if os.environ.get("OUT") else REPO / "out"
    path = a.json or out_dir / "bench_gpu.json"
    work = a.work or REPO / "out" / "bench_gpu_work"
    env = environment(dev, a.threads)
    cpu_only = dev.type == "cpu"
    rep = Report(path, env=env, cpu_only=cpu_only, quick=q, argv=sys.argv[1:] if argv is None else list(argv))
    print("environment: " + ", ".join(f"{k}={v}" for k, v in env.items()))
    if cpu_only:
        print("*** CPU-ONLY RUN: no CUDA device; the device columns are empty and no number here is a GPU "
              "measurement ***")
    if q:
        print("*** QUICK RUN: tiny sizes, to check the script; not the benchmark ***")
    rep.write()
    t0 = time.time()
    if "raster" in a.sections:
        raster_section(a, dev, rep)
    if "embedding" in a.sections:
        import face3d

        embedding_section(a, dev, face3d.load_model("builtin"), rep)
    if "train" in a.sections or "render" in a.sections:
        p, d = train_section(a, dev, rep, work)
        if "render" in a.sections:
            render_section(a, dev, p, d, rep)
    rep.data["total_seconds"] = time.time() - t0
    rep.write()
    bad = [c["name"] for c in rep.data["checks"] if not c["ok"]]
    print(f"\n{'CPU-ONLY ' if cpu_only else ''}{'QUICK ' if q else ''}run finished in {time.time() - t0:.0f} s; "
          f"wrote {path}; checks: {len(rep.data['checks']) - len(bad)} ok, {len(bad)} failed{': ' if bad else ''}"
          f"{', '.join(bad)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
