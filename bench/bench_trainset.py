"""`face3d make-trainset` on the bundled head: single process vs `--ray --workers 1` and `2`, and
whether the sets are byte-identical. Prints and writes out/bench_trainset.json.

    python bench/bench_trainset.py [--estimator-n 100000] [--stabilizer-n 4096] [--keep]

Wall times are of the whole command (process start, model loading, for --ray starting a local
Ray and its workers, writing the chunks); the load average is printed beside them because other
work on the machine skews them. The sets are deleted afterwards unless --keep.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.iterdir()):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--estimator-n", type=int, default=100_000)
    ap.add_argument("--estimator-chunk", type=int, default=512)
    ap.add_argument("--stabilizer-n", type=int, default=4096)
    ap.add_argument("--stabilizer-chunk", type=int, default=256)
    ap.add_argument("--work", default=str(ROOT / "out" / "bench_trainset"))
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    work = Path(a.work)
    shutil.rmtree(work, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    res = {"cpus": os.cpu_count(), "runs": {}}
    for part, n, chunk in (("estimator", a.estimator_n, a.estimator_chunk),
                           ("stabilizer", a.stabilizer_n, a.stabilizer_chunk)):
        sums = {}
        for name, extra in (("single", []), ("ray_w1", ["--ray", "--workers", "1"]),
                            ("ray_w2", ["--ray", "--workers", "2"])):
            out = work / f"{part}_{name}"
            cmd = [sys.executable, "-m", "face3d", "make-trainset", part, "--n", str(n), "--chunk", str(chunk),
                   "--out", str(out), "--quiet", *extra]
            load0 = os.getloadavg()[0]
            t = time.perf_counter()
            r = subprocess.run(cmd, env=env, capture_output=True, text=True)
            dt = time.perf_counter() - t
            if r.returncode != 0:
                raise SystemExit(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr[-2000:]}")
            sums[name] = digest(out)
            mb = sum(p.stat().st_size for p in out.iterdir()) / 1e6
            res["runs"][f"{part}_{name}"] = {"seconds": round(dt, 2), "n": n, "chunk": chunk, "MB": round(mb, 1),
                                             "load_before": round(load0, 2), "load_after": round(os.getloadavg()[0], 2)}
            print(f"{part:10s} {name:7s} {dt:7.1f} s  {mb:7.1f} MB  load average {load0:.2f} -> "
                  f"{os.getloadavg()[0]:.2f}", flush=True)
            if not a.keep:
                shutil.rmtree(out)
        runs = res["runs"]
        res[f"{part}_identical"] = len(set(sums.values())) == 1
        res[f"{part}_speedup_ray_w2_vs_single"] = round(runs[f"{part}_single"]["seconds"] / runs[f"{part}_ray_w2"]["seconds"], 2)
        res[f"{part}_speedup_ray_w2_vs_ray_w1"] = round(runs[f"{part}_ray_w1"]["seconds"] / runs[f"{part}_ray_w2"]["seconds"], 2)
    print(json.dumps(res, indent=1))
    (ROOT / "out").mkdir(exist_ok=True)
    (ROOT / "out" / "bench_trainset.json").write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
