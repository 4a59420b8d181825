"""A/B of `face3d reconstruct --ray` between checkouts, runs interleaved so that a shared machine's
load shifts both alike. Wall time of the whole command; threads per worker 1.

    python bench/bench_ray_ab.py NAME=DIR [NAME=DIR ...] [--n 1] [--reps 4] [--workers 1]

Each DIR is a checkout (e.g. `git archive BASE | tar -x -C /tmp/base`, with its `assets/`); the
photos are bench_scale's (astronaut variants). Prints every run with the load average before it,
then the mean per checkout.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scale import make_photos  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkouts", nargs="+", metavar="NAME=DIR")
    ap.add_argument("--n", type=int, default=1, help="photos")
    ap.add_argument("--reps", type=int, default=4)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--work", default=str(ROOT / "out" / "bench_ray_ab"))
    a = ap.parse_args()
    roots = dict(c.split("=", 1) for c in a.checkouts)
    work = Path(a.work)
    photos = make_photos(work / f"photos{a.n}", a.n)
    src = str(photos[0]) if a.n == 1 else str(work / f"photos{a.n}")
    res: dict[str, list[float]] = {k: [] for k in roots}
    for r in range(a.reps):
        for name, root in roots.items():
            out = work / f"o_{name}_{r}"
            shutil.rmtree(out, ignore_errors=True)
            # cwd = the checkout: `python -m face3d` finds the package in the current folder first.
            env = {**os.environ, "PYTHONPATH": root, "OMP_NUM_THREADS": "1"}
            load = os.getloadavg()[0]
            t = time.perf_counter()
            p = subprocess.run([sys.executable, "-m", "face3d", "reconstruct", src, "--out", str(out), "--quiet",
                                "--threads", "1", "--ray", "--workers", str(a.workers)],
                               env=env, cwd=root, capture_output=True, text=True)
            dt = time.perf_counter() - t
            if p.returncode != 0:
                raise SystemExit(f"{name} failed ({p.returncode}):\n{p.stderr[-2000:]}")
            res[name].append(round(dt, 2))
            print(f"{name:10s} rep {r}: {dt:6.2f} s   load average {load:.2f}", flush=True)
    print(json.dumps({k: {"runs": v, "mean": round(sum(v) / len(v), 2)} for k, v in res.items()}, indent=1))


if __name__ == "__main__":
    main()
