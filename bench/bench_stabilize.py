"""Stabilizer inference speed (pairs per second) on CPU, every method side by side.

    python bench/bench_stabilize.py [--model builtin] [--threads 2] [--pairs 512] [--batch 256]

Pairs are synthetic (face3d.stabilize.synth); timing covers ``estimate`` only (meshes in memory).
The learned method is also timed in "sequence" mode: N frames against one reference, which
encodes each frame once (what `face3d stabilize` does).
"""
from __future__ import annotations

import argparse
import os
import time

import torch


def _time(fn, repeats: int = 3) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="builtin")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pairs", type=int, default=512)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--methods", default="procrustes,upper,icp,learned")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from face3d.models import load_model
    from face3d.stabilize.api import load_stabilizer
    from face3d.stabilize.synth import SynthConfig, sample_pairs

    model = load_model(args.model)
    pairs = sample_pairs(model, args.pairs, SynthConfig(), 0)
    print(f"model {model.name!r} ({model.n_vertices} vertices), {args.pairs} pairs, batch {args.batch}, "
          f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f} "
          f"(other processes share the CPU)")
    rows = []
    for m in args.methods.split(","):
        st = load_stabilizer(m, args.model if m == "learned" else model, args.weights)
        n = args.pairs if m != "icp" else min(args.pairs, 64)  # ICP is ~ms per pair

        def run() -> None:
            with torch.no_grad():
                for s in range(0, n, args.batch):
                    st.estimate(pairs.source[s : s + args.batch][: n - s], pairs.target[s : s + args.batch][: n - s])

        rows.append((m, n / _time(run)))
        if m == "learned":
            def seq() -> None:
                with torch.no_grad():
                    P_r, Q_r = st.encode(pairs.source[:1])
                    for s in range(0, args.pairs, args.batch):
                        P, Q = st.encode(pairs.target[s : s + args.batch])
                        st.net.relative(P_r.expand(len(P), -1, -1), Q_r.expand(len(P), -1, -1), P, Q)

            rows.append(("learned (frames vs one reference)", args.pairs / _time(seq)))
    base = dict(rows).get("upper", rows[0][1])
    print("| method | pairs / s | vs upper-face Procrustes |\n|---|---|---|")
    for m, r in rows:
        print(f"| {m} | {r:,.0f} | {r / base:.2f}x |")


if __name__ == "__main__":
    main()
