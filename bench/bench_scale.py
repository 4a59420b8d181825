"""`face3d reconstruct` on 16 photos: single process vs `--ray` with 1 and 2 workers, and the
overhead of `--ray` on one photo. Threads per worker = 1. Prints and writes out/bench_scale.json.

    python bench/bench_scale.py [--n 16] [--fast]

The photos are skimage's astronaut (public domain) with small shifts, crops and flips, so every
one is a different fit. Wall times include process start, model loading and (for --ray) starting
a local Ray; the load average is printed beside them because other work on the machine skews them.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def make_photos(folder: Path, n: int) -> list[Path]:
    from PIL import Image
    from skimage.data import astronaut

    a = astronaut()
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        dy, dx = 4 * (i % 4), 6 * (i // 4)
        img = a[dy: 480 + dy - 16, dx: 480 + dx - 24]
        if i % 2:
            img = img[:, ::-1]
        p = folder / f"photo{i:02d}.png"
        Image.fromarray(np.ascontiguousarray(img)).save(p)
        paths.append(p)
    return paths


def timed(args: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "face3d", "reconstruct", *args, "--quiet", "--threads", "1"],
                       env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"failed ({r.returncode}): {' '.join(args)}\n{r.stderr[-2000:]}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--fast", action="store_true", help="landmarks only")
    ap.add_argument("--work", default=str(ROOT / "out" / "bench_scale"))
    a = ap.parse_args()
    work = Path(a.work)
    photos = make_photos(work / "photos", a.n)
    extra = ["--fast"] if a.fast else []
    res = {"n_photos": a.n, "fast": a.fast, "cpus": os.cpu_count(), "runs": {}}

    def run(name, args):
        load0 = os.getloadavg()[0]
        dt = timed(args)
        res["runs"][name] = {"seconds": round(dt, 2), "load_before": round(load0, 2),
                             "load_after": round(os.getloadavg()[0], 2)}
        print(f"{name:22s} {dt:7.1f} s   load average {load0:.2f} -> {os.getloadavg()[0]:.2f}", flush=True)

    run("single_1", [str(photos[0]), "--out", str(work / "o_single_1"), *extra])
    run("ray_1", [str(photos[0]), "--out", str(work / "o_ray_1"), "--ray", "--workers", "1", *extra])
    run("single", [str(work / "photos"), "--out", str(work / "o_single"), *extra])
    run("ray_w1", [str(work / "photos"), "--out", str(work / "o_ray_w1"), "--ray", "--workers", "1", *extra])
    run("ray_w2", [str(work / "photos"), "--out", str(work / "o_ray_w2"), "--ray", "--workers", "2", *extra])
    r = res["runs"]
    res["speedup_ray_w2_vs_single"] = round(r["single"]["seconds"] / r["ray_w2"]["seconds"], 2)
    res["speedup_ray_w2_vs_ray_w1"] = round(r["ray_w1"]["seconds"] / r["ray_w2"]["seconds"], 2)
    res["ray_overhead_one_photo_s"] = round(r["ray_1"]["seconds"] - r["single_1"]["seconds"], 2)
    # Per-photo fit cost from the report (wall time of the single-process run's items).
    rep = json.loads((work / "o_single" / "report.json").read_text())
    per = []
    for e in rep["succeeded"]:
        pj = json.loads((work / "o_single" / f"{e['output']}_params.json").read_text())
        per.append(sum(pj["timings_s"].values()) + sum(s["seconds"] for s in pj["detection"]["stages"]))
    res["per_photo_detect_fit_s_mean"] = round(float(np.mean(per)), 2)
    res["succeeded"] = len(rep["succeeded"])
    print(json.dumps(res, indent=1))
    (ROOT / "out").mkdir(exist_ok=True)
    (ROOT / "out" / "bench_scale.json").write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
