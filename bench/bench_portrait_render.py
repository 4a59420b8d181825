"""Portrait rendering speed at 256² (and 128²): exact vs the fast proxy path, wall and CPU time.

    python bench/bench_portrait_render.py PORTRAIT_DIR [--frames 8] [--threads 1 2]

Renders held-out frames of the portrait's clip and prints seconds per frame (wall clock and
process CPU time), frames per second, the speed-up of the fast path and its PSNR against the
exact render (how much the shortcut changes the picture).
"""
from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np
import torch


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("portrait")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 128])
    a = ap.parse_args(argv)
    from avatars.portrait.data import PortraitData
    from avatars.portrait.render import camera_for
    from avatars.portrait.train import load_portrait

    p = load_portrait(a.portrait)
    d = PortraitData.load(a.portrait)
    ids = list(range(d.n_train, d.n_frames))[: a.frames]
    print(f"{a.portrait}: {len(ids)} held-out frames; load average {np.round(__import__('os').getloadavg(), 2).tolist()}")
    print(f"{'size':>5}{'threads':>8}{'path':>7}{'wall s':>8}{'cpu s':>7}{'fps':>6}{'speed-up':>9}{'PSNR vs exact':>14}")
    for S in a.sizes:
        cam = camera_for(p, S)
        for th in a.threads:
            torch.set_num_threads(th)
            res = {}
            for path, proxy in (("exact", None), ("fast", 64)):
                p.render_frame(**d.params(ids[0]), camera=cam, proxy=proxy)  # warm up
                w0, c0 = time.perf_counter(), time.process_time()
                imgs = [p.render_frame(**d.params(i), camera=cam, proxy=proxy)["rgb"] for i in ids]
                wall, cpu = (time.perf_counter() - w0) / len(ids), (time.process_time() - c0) / len(ids)
                res[path] = (wall, cpu, imgs)
            for path in ("exact", "fast"):
                wall, cpu, imgs = res[path]
                ratio = res["exact"][0] / wall
                mse = np.mean([float(((x - y) ** 2).mean()) for x, y in zip(imgs, res["exact"][2])])
                q = "" if path == "exact" else f"{-10 * math.log10(max(mse, 1e-12)):>14.1f}"
                print(f"{S:>5}{th:>8}{path:>7}{wall:>8.2f}{cpu:>7.2f}{1 / wall:>6.2f}{ratio:>8.2f}x{q}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
