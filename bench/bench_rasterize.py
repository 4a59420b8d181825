"""Rasterization speed: every installed backend side by side, with ratios (not a test).

Mesh: the built-in head model (assets/builtin_head.npz) when present, else the procedural
head proxy (an ellipsoid with a nose bump) at ~20k triangles; framed so it covers ~40 % of the
image. Cases: 256² and 512², batch 1 and 8, forward (rasterize only) and forward+backward
(rasterize + interpolate vertex colours + antialias + backward of a weighted image sum to
positions and colours; for pytorch3d: rasterize_meshes + backward of a weighted sum of its
barycentrics and z-buffer).

pytorch3d cannot live in the same environment as torch 2.13, so it is measured in a separate
virtualenv and merged through JSON::

    PYTHONPATH=. /work/p3d-venv/bin/python bench/bench_rasterize.py --threads 1 --repeat 3 --json /tmp/bench_p3d.json
    .venv/bin/python bench/bench_rasterize.py --threads 1 --include /tmp/bench_p3d.json --write-doc docs/performance.md

Timings are the median of ``--repeat`` runs after one warm-up, in milliseconds.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from face3d.render import Camera, antialias, interpolate, rasterize  # noqa: E402
from face3d.render.backends import available_backends  # noqa: E402
from face3d.models.toy import head_proxy  # noqa: E402

START = "<!-- bench_rasterize:start -->"
END = "<!-- bench_rasterize:end -->"


def load_mesh():
    path = REPO / "assets" / "builtin_head.npz"
    if path.is_file():
        import face3d

        m = face3d.load_model("builtin")
        v, f = m.template.float(), m.faces
        if f.shape[0] >= 10000:
            return v - v.mean(0), f, "built-in head model"
    v, f, _ = head_proxy(100, 100)
    return v, f, "procedural head proxy (ellipsoid + nose)"


def framing(verts: torch.Tensor, faces: torch.Tensor, res: int, target: float = 0.40) -> Camera:
    """A frontal camera whose distance makes the head cover ``target`` of the image."""
    ext = verts.amax(0) - verts.amin(0)
    # projected ellipse area ~ pi/4 * w * h * (f/d)^2 = target * res^2
    f = 0.5 * res / torch.tan(torch.tensor(15.0).deg2rad())
    d = float(f * torch.sqrt(torch.pi / 4 * ext[0] * ext[1] / (target * res * res)))
    for _ in range(3):  # refine: coverage scales with 1/d^2
        cam = Camera.look_at((0.0, 0.0, d), fov_deg=30, width=res, height=res)
        cov = float((rasterize(cam.to_clip(verts[None]), faces.int(), (res, res))[0][..., 3] > 0).float().mean())
        d *= (cov / target) ** 0.5
    return Camera.look_at((0.0, 0.0, d), fov_deg=30, width=res, height=res)


def timeit(fn, repeat: int) -> tuple[float, float]:
    """(median wall time, median process CPU time) in ms, all threads (on a shared machine wall
    time includes waiting for a core, CPU time does not)."""
    fn()
    ts, cs = [], []
    for _ in range(repeat):
        c0 = time.process_time()
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
        cs.append(time.process_time() - c0)
    return statistics.median(ts) * 1e3, statistics.median(cs) * 1e3


def torch_passes(pos, tri, res, colors, wts):
    """The two timed cases of the torch backend, as functions of no arguments: ``fwd`` (rasterize
    only; returns its output) and ``fwd_bwd`` (rasterize + interpolate ``colors`` + antialias +
    backward of the ``wts``-weighted image sum; returns ``(rast, image, position gradient)``).
    Also used by bench_gpu.py, on whatever device the inputs are."""
    def fwd():
        with torch.no_grad():
            return rasterize(pos, tri, (res, res), backend="torch")

    def fwd_bwd():
        p = pos.detach().requires_grad_(True)
        c = colors.detach().requires_grad_(True)
        rast, _ = rasterize(p, tri, (res, res), backend="torch")
        img, _ = interpolate(c, rast, tri, backend="torch")
        img = antialias(img, rast, p, tri, backend="torch")
        (img * wts).sum().backward()
        return rast.detach(), img.detach(), p.grad

    return fwd, fwd_bwd


def bench_torch(pos, tri, res, colors, repeat):
    fwd, fwd_bwd = torch_passes(pos, tri, res, colors, torch.rand(pos.shape[0], res, res, 3))
    return timeit(fwd, repeat), timeit(fwd_bwd, repeat)


def bench_pytorch3d(pos, tri, res, repeat):
    from pytorch3d.renderer.mesh.rasterize_meshes import rasterize_meshes
    from pytorch3d.structures import Meshes

    B = pos.shape[0]
    verts = torch.stack((-pos[..., 0] / pos[..., 3], -pos[..., 1] / pos[..., 3], pos[..., 3]), -1)
    faces = tri.long()

    def run(v):
        meshes = Meshes(verts=list(v.unbind(0)), faces=[faces] * B)
        return rasterize_meshes(meshes, image_size=(res, res), blur_radius=0.0, faces_per_pixel=1,
                                perspective_correct=True, bin_size=0)

    def fwd():
        with torch.no_grad():
            run(verts)

    w1 = torch.rand(B, res, res, 1, 3)

    def fwd_bwd():
        v = verts.detach().requires_grad_(True)
        _, zbuf, bary, _ = run(v)
        ((bary * w1).sum() + zbuf.sum() * 1e-3).backward()

    return timeit(fwd, repeat), timeit(fwd_bwd, repeat)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--res", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--backends", nargs="+", default=None, help="default: every installed CPU backend")
    ap.add_argument("--p3d-max-batch", type=int, default=1,
                    help="pytorch3d's CPU rasterizer is brute force (minutes at 512² x 8): skip larger batches")
    ap.add_argument("--json", type=Path, help="write the measurements here")
    ap.add_argument("--include", type=Path, nargs="*", default=[], help="JSON files from other environments")
    ap.add_argument("--write-doc", type=Path, help="replace the Rasterization section of this markdown file")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    verts, faces, mesh_name = load_mesh()
    tri = faces.int()
    backends = args.backends or [b for b in available_backends() if b != "nvdiffrast"]
    rows = []
    for res in args.res:
        cam = framing(verts, faces, res)
        pos1 = cam.to_clip(verts[None])
        cover = float((rasterize(pos1, tri, (res, res))[0][..., 3] > 0).float().mean())
        for B in args.batch:
            pos = pos1.expand(B, -1, -1).contiguous()
            colors = torch.rand(B, verts.shape[0], 3)
            for be in backends:
                if be == "torch":
                    (f_ms, f_cpu), (fb_ms, fb_cpu) = bench_torch(pos, tri, res, colors, args.repeat)
                elif be == "pytorch3d":
                    if B > args.p3d_max_batch:
                        continue
                    (f_ms, f_cpu), (fb_ms, fb_cpu) = bench_pytorch3d(pos, tri, res, 1)
                else:
                    continue
                row = dict(backend=be, res=res, batch=B, fwd_ms=f_ms, fwd_bwd_ms=fb_ms, fwd_cpu_ms=f_cpu,
                           fwd_bwd_cpu_ms=fb_cpu, load=os.getloadavg()[0], coverage=cover,
                           faces=int(tri.shape[0]), threads=args.threads, torch=torch.__version__.split("+")[0])
                rows.append(row)
                print(f"{be:10s} {res:4d}² B={B}  fwd {f_ms:9.1f} ms (cpu {f_cpu:9.1f})  fwd+bwd {fb_ms:9.1f} ms "
                      f"(cpu {fb_cpu:9.1f})  coverage {cover:.2f}  load {row['load']:.1f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(dict(mesh=mesh_name, rows=rows), indent=1))
    for inc in args.include:
        rows += json.loads(inc.read_text())["rows"]
    if args.write_doc:
        write_doc(args.write_doc, rows, mesh_name, int(tri.shape[0]), args)
    return 0


def table(rows) -> str:
    """Markdown table: one column pair per (backend, torch version); ratios pytorch3d / torch
    are taken within one environment (same torch build)."""
    def col(r):
        return (r["backend"], r["torch"])

    order = ["torch", "nvdiffrast", "pytorch3d"]
    cols = sorted({col(r) for r in rows}, key=lambda c: (order.index(c[0]), c[1]))
    by = {(col(r), r["res"], r["batch"]): r for r in rows}
    cases = sorted({(r["res"], r["batch"]) for r in rows})
    ratio_envs = sorted({c[1] for c in cols if c[0] == "pytorch3d" and ("torch", c[1]) in cols})
    head = ["image", "batch"]
    for b, t in cols:
        head += [f"{b} (torch {t}) fwd", f"{b} (torch {t}) fwd+bwd"]
    for t in ratio_envs:
        head += [f"pytorch3d / torch fwd (torch {t})", f"pytorch3d / torch fwd+bwd (torch {t})"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for res, B in cases:
        cells = [f"{res}²", str(B)]
        for c in cols:
            r = by.get((c, res, B))
            cells += ([f"{r['fwd_ms']:.1f} ({r['fwd_cpu_ms']:.1f})", f"{r['fwd_bwd_ms']:.1f} ({r['fwd_bwd_cpu_ms']:.1f})"]
                      if r else ["–", "–"])
        for t in ratio_envs:
            a, p = by.get((("torch", t), res, B)), by.get((("pytorch3d", t), res, B))
            cells += ([f"{p['fwd_ms'] / a['fwd_ms']:.0f}×", f"{p['fwd_bwd_ms'] / a['fwd_bwd_ms']:.0f}×"]
                      if a and p else ["–", "–"])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_doc(path: Path, rows, mesh_name, n_faces, args) -> None:
    cov = ", ".join(f"{res}²: {c:.0%}" for res, c in sorted({r["res"]: r["coverage"] for r in rows}.items()))
    envs = sorted({(r["backend"], r["torch"], r["threads"]) for r in rows})
    env_txt = "; ".join(f"{b}: torch {t}, {n} thread(s)" for b, t, n in envs)
    body = f"""{START}
Measured by `bench/bench_rasterize.py` on {platform.machine()} ({os.cpu_count()} CPUs, shared with other jobs),
{mesh_name}, {n_faces} triangles, image coverage {cov}. Median of {args.repeat} runs (pytorch3d: 1 run)
after a warm-up: wall-clock ms, with process CPU ms in parentheses (the machine was shared with other
jobs, so wall time includes waiting for a core). Ratios use wall time.
Environments: {env_txt}.

{table(rows)}

Commands:

    PYTHONPATH=. /work/p3d-venv/bin/python bench/bench_rasterize.py --threads {args.threads} --repeat 3 --json /tmp/bench_p3d.json
    .venv/bin/python bench/bench_rasterize.py --threads {args.threads} --repeat {args.repeat} --include /tmp/bench_p3d.json --write-doc docs/performance.md
{END}"""
    text = path.read_text() if path.is_file() else "# Performance\n"
    if START in text and END in text:
        a, b = text.index(START), text.index(END) + len(END)
        text = text[:a] + body + text[b:]
    else:
        text = text.rstrip() + "\n\n## Rasterization\n\n" + body + "\n"
    path.write_text(text)


if __name__ == "__main__":
    raise SystemExit(main())
