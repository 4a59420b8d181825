"""Benchmarks of metric face reconstruction (not tests: numbers to read, with targets beside them).

    .venv/bin/python bench/bench_reconstruct.py [--threads 2] [--frames 100] [--heads 20] [--skip ...]

1. ``photo``: end-to-end time of `reconstruct` on skimage's astronaut (512 px) -- model and
   detector loading, detection, estimate, fit, writing all outputs -- and the 68-landmark NME
   (mean distance of the fitted landmarks' projections to dlib's, / outer-eye distance).
   Targets: <= 15 s on 2 cores, NME <= 5 %.
2. ``track``: a synthetic 256-px clip (the astronaut photo shifted by a few pixels per frame),
   tracked with `face3d.reconstruct.track` in batches. Target: 100 frames <= 10 min.
3. ``metric``: the synthetic metric benchmark (`face3d eval-metric`): mean neutral-face error
   without alignment for the mean head, landmark-only fitting from the mean head, the estimator
   alone and estimator + fitting. Targets: ours >= 30 % below the mean head, below landmark-only.

The machine's CPU may be shared with other jobs; the script prints the load average beside the
timings.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np


def bench_photo() -> dict:
    import torch

    from face3d.models import load_model
    from face3d.reconstruct.api import ReconstructConfig, fit_detections, write_reconstruction
    from face3d.reconstruct.detect import DlibDetector, largest
    from skimage.data import astronaut

    t0 = time.time()
    img = astronaut()
    model = load_model("builtin")
    det = DlibDetector()
    t1 = time.time()
    d = largest(det.detect(img))
    t2 = time.time()
    rec = fit_detections(model, img, [d], ReconstructConfig())[0]
    t3 = time.time()
    with tempfile.TemporaryDirectory() as td:
        write_reconstruction(rec, model, img, td, "astronaut")
    t4 = time.time()
    return {"load_s": t1 - t0, "detect_s": t2 - t1, "estimate_fit_s": t3 - t2, "write_s": t4 - t3,
            "total_s": t4 - t0, "nme": rec.nme, "threads": torch.get_num_threads(),
            "measurements": rec.measurements}


def bench_track(n_frames: int, photometric: bool = False) -> dict:
    from PIL import Image

    from face3d.models import load_model
    from face3d.reconstruct.track import TrackConfig, track
    from skimage.data import astronaut

    a = np.asarray(Image.fromarray(astronaut()).resize((256, 256), Image.BILINEAR))
    frames = [np.roll(a, (int(round(4 * np.sin(i / 5))), int(round(6 * np.cos(i / 7)))), axis=(0, 1))
              for i in range(n_frames)]
    model = load_model("builtin")
    t0 = time.time()
    res = track(model, frames, TrackConfig(photometric=photometric))
    dt = time.time() - t0
    iod = np.linalg.norm(res.detected_landmarks[:, 36] - res.detected_landmarks[:, 45], axis=-1)
    nme = np.linalg.norm(res.landmarks2d - res.detected_landmarks, axis=-1).mean(-1) / iod
    jitter = np.abs(np.diff(res.rotation, axis=0)).mean()
    return {"frames": n_frames, "seconds": dt, "per_frame_s": dt / n_frames, "nme_mean": float(nme.mean()),
            "rotation_step_rad": float(jitter), "detected": res.n_detected, "photometric": photometric}


def bench_metric(n: int) -> dict:
    from face3d.models import load_model
    from face3d.reconstruct.evaluate import MetricBenchConfig, metric_benchmark

    return metric_benchmark(load_model("builtin"), MetricBenchConfig(n=n))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--heads", type=int, default=20)
    ap.add_argument("--skip", nargs="*", default=[], choices=["photo", "track", "metric"])
    ap.add_argument("--track-photometric", action="store_true", help="track with the photometric stage too")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    print(f"threads {args.threads}, load average {os.getloadavg()}")
    if "photo" not in args.skip:
        r = bench_photo()
        print(f"[photo] astronaut 512 px: total {r['total_s']:.1f} s (target 15 s, ratio {r['total_s'] / 15:.2f}) "
              f"= load {r['load_s']:.1f} + detect {r['detect_s']:.1f} + estimate/fit {r['estimate_fit_s']:.1f} "
              f"+ write {r['write_s']:.1f}; NME {100 * r['nme']:.2f} % (target 5 %, ratio {r['nme'] / 0.05:.2f})")
        print(f"[photo] measurements (mm): " + ", ".join(f"{k} {v:.1f}" for k, v in r["measurements"].items()))
    if "track" not in args.skip:
        r = bench_track(args.frames, args.track_photometric)
        print(f"[track] {r['frames']} frames 256 px{' + photometric' if r['photometric'] else ''}: {r['seconds']:.1f} s ({r['per_frame_s']:.2f} s/frame; "
              f"target 600 s, ratio {r['seconds'] / 600:.2f}); NME {100 * r['nme_mean']:.2f} %, "
              f"mean |d rotation| {r['rotation_step_rad']:.4f} rad/frame, detected {r['detected']}")
    if "metric" not in args.skip:
        r = bench_metric(args.heads)
        m = r["methods"]
        base = m["mean_head"]["mean_mm"]
        print(f"[metric] {r['n']} synthetic heads, mean neutral-face error without alignment ({r['seconds']:.0f} s):")
        for k, v in m.items():
            print(f"  {k:16s} {v['mean_mm']:6.2f} mm  (median {v['median_mm']:5.2f})  ratio to mean head {v['mean_mm'] / base:.2f}")
        print(f"  ours vs mean head: {100 * r['ours_vs_mean_head_reduction']:.1f} % lower (target >= 30 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
