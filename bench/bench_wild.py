"""Benchmarks of reconstruction on photos in the wild (not tests: numbers to read, targets beside them).

    .venv/bin/python bench/bench_wild.py [--cache DIR] [--skip detect landmarks fit] [--heads 20]

1. ``detect``: the detection cascade (:class:`face3d.reconstruct.detect.DlibDetector`) on real
   photos that ship inside packages, fetched at bench time into ``--cache`` (default
   ``~/.cache/face3d/wild_photos``; never committed; licences: see docs/performance.md):
   ``face_recognition==1.3.0`` sdist test images, the ``insightface==2.1`` wheel's images,
   skimage's astronaut and camera, matplotlib's grace_hopper and Debian ``opencv-doc``'s messi5
   and portraits (``apt-get download``; skipped where apt-get is missing). Each photo has a
   hand-counted number of faces; hard variants of each photo's largest face are made on the fly:
   ``tight`` (cropped to 85 % of its box), ``small`` (photo downscaled to 45 px eye-to-chin),
   ``tiny`` (25 px) and ``archival`` (grayscale at half contrast). Reports, per image, what each
   stage found and what it cost; a face counts as found when a detection overlaps where it is
   (IoU >= 0.3). Target: every face >= 40 px eye-to-chin found.
3. ``fit``: the landmark stage fitted to dlib's landmarks of every face found in the photos
   (sliding vs fixed contour): NME of the fitted landmarks vs dlib's, by the fitted yaw. No ground
   truth ships with the photos, so this measures agreement with the detector, not accuracy.
2. ``landmarks``: :func:`face3d.reconstruct.evaluate.landmark_benchmark` on the default model's
   synthetic heads (frontal / turned 30-60 deg / small / tight crop), sliding vs fixed jaw
   contour. Targets: NME <= 6 % frontal, <= 9 % turned.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np

# name -> (source, path inside it, hand-counted faces)
_FR = "face_recognition-1.3.0/tests/test_images/"
PHOTOS = {
    **{n: ("face_recognition", _FR + n, 1) for n in ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg",
                                                   "obama_partial_face.jpg", "obama_partial_face2.jpg", "32bit.png")},
    "t1.jpg": ("insightface", "insightface/data/images/t1.jpg", 6),
    "Tom_Hanks_54745.png": ("insightface", "insightface/data/images/Tom_Hanks_54745.png", 1),
    "mask_white.jpg": ("insightface", "insightface/data/images/mask_white.jpg", 0),  # a face mask, no face
    "mask_black.jpg": ("insightface", "insightface/data/images/mask_black.jpg", 0),
    "grace_hopper.jpg": ("matplotlib", "matplotlib/mpl-data/sample_data/grace_hopper.jpg", 1),
    "messi5.jpg": ("opencv-doc", "usr/share/doc/opencv-doc/examples/data/messi5.jpg", 1),
    "227943776_1.jpg": ("opencv-doc", "usr/share/doc/opencv-doc/opencv4/html/227943776_1.jpg", 1),
    "230501201_1.jpg": ("opencv-doc", "usr/share/doc/opencv-doc/opencv4/html/230501201_1.jpg", 1),
    "astronaut": ("skimage", "astronaut", 1),
    "camera": ("skimage", "camera", 1),
}


def _pip_download(cache: Path, spec: str, binary: bool) -> Path | None:
    flags = ["--only-binary", ":all:"] if binary else ["--no-binary", ":all:"]
    r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(cache), *flags, spec],
                       capture_output=True, text=True)
    name = spec.split("==")[0].replace("-", "_").lower()
    hits = [p for p in cache.iterdir() if p.name.replace("-", "_").lower().startswith(name)
            and p.suffix in (".whl", ".gz")]
    if not hits:
        print(f"  could not fetch {spec}: {r.stderr.strip()[-200:]}", file=sys.stderr)
    return hits[0] if hits else None


def fetch(cache: Path) -> dict[str, Path]:
    """Fetch and unpack the photos' packages into ``cache``; returns {source: unpacked folder}."""
    cache.mkdir(parents=True, exist_ok=True)
    roots: dict[str, Path] = {}
    for src, spec, binary in (("face_recognition", "face_recognition==1.3.0", False),
                              ("insightface", "insightface==2.1", True), ("matplotlib", "matplotlib", True)):
        root = cache / src
        if not root.is_dir():
            pkg = _pip_download(cache, spec, binary)
            if pkg is None:
                continue
            root.mkdir()
            if pkg.suffix == ".whl":
                with zipfile.ZipFile(pkg) as z:
                    for n in z.namelist():
                        if n.lower().endswith((".jpg", ".png")) and ("/images/" in n or "sample_data" in n):
                            z.extract(n, root)
            else:
                with tarfile.open(pkg) as t:
                    t.extractall(root, members=[m for m in t.getmembers() if "/tests/test_images/" in m.name],
                                 filter="data")
        roots[src] = root
    root = cache / "opencv-doc"
    if not root.is_dir() and shutil.which("apt-get") and shutil.which("dpkg-deb"):
        subprocess.run(["apt-get", "download", "opencv-doc"], cwd=cache, capture_output=True)
        debs = sorted(cache.glob("opencv-doc_*.deb"))
        if debs:
            subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(root)], check=True)
    if root.is_dir():
        roots["opencv-doc"] = root
    return roots


def load_photos(cache: Path) -> dict[str, tuple[np.ndarray, int]]:
    from face3d.reconstruct.images import load_image
    import skimage.data

    roots = fetch(cache)
    out = {}
    for name, (src, rel, n) in PHOTOS.items():
        if src == "skimage":
            out[name] = (getattr(skimage.data, rel)(), n)
        elif src in roots and (roots[src] / rel).is_file():
            out[name] = (load_image(roots[src] / rel), n)
        else:
            print(f"  {name}: not available ({src} not fetched)", file=sys.stderr)
    return out


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / u if u > 0 else 0.0


def _variants(img: np.ndarray, det) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
    """Hard versions of ``img``'s face ``det``: name -> (image, where the face's box is, eye-to-chin px)."""
    from PIL import Image

    from face3d.reconstruct.images import check_image

    x0, y0, x1, y1 = det.box
    out = {}
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, 0.85 * (x1 - x0) / 2
    a, b = int(max(0, cy - half)), int(max(0, cx - half))
    crop = img[a:int(cy + half), b:int(cx + half)]
    out["tight"] = (np.ascontiguousarray(crop), det.box - [b, a, b, a], det.eye_to_chin)
    H, W = img.shape[:2]
    for name, e2c in (("small", 45.0), ("tiny", 25.0)):
        k = e2c / det.eye_to_chin
        if k >= 1:
            continue
        size = (max(1, round(W * k)), max(1, round(H * k)))
        small = np.asarray(Image.fromarray(img).resize(size, Image.BOX))
        out[name] = (small, (det.box + 0.5) * k - 0.5, e2c)
    g = np.asarray(Image.fromarray(img).convert("L")).astype(np.float32)
    g = (g - g.mean()) * 0.5 + g.mean()  # half contrast: a faded print
    out["archival"] = (check_image(g.astype(np.uint8)), det.box, det.eye_to_chin)
    return out


def bench_detect(cache: Path) -> dict:
    from face3d.reconstruct.detect import DlibDetector

    det = DlibDetector()
    photos = load_photos(cache)
    rows, stage_cost = [], {}

    def run(name, img, expect_boxes=None, expect_n=None, size=None):
        t0 = time.perf_counter()
        r = det.detect_report(img)
        dt = time.perf_counter() - t0
        for s in r.stages:
            stage_cost.setdefault(s.stage, []).append(s.seconds)
        if expect_boxes is not None:
            hit = [d for d in r.detections if _iou(d.box, expect_boxes) >= 0.3]
            found, n = int(bool(hit)), 1
            stage = hit[0].stage if hit else "-"
        else:
            n = expect_n
            found = min(len(r.detections), n)
            stage = ",".join(sorted({d.stage for d in r.detections})) or "-"
        rows.append({"image": name, "size": f"{img.shape[1]}x{img.shape[0]}", "faces": n, "found": found,
                     "false": max(0, len(r.detections) - n) if expect_boxes is None else 0,
                     "stage": stage, "eye_to_chin": size if size is not None else
                     (round(max((d.eye_to_chin for d in r.detections), default=0))),
                     "stages_run": [s.stage for s in r.stages], "seconds": dt})
        print(f"  {name:34s} {rows[-1]['size']:>10s} faces {n} found {found} stage {stage:12s} "
              f"{dt:6.2f} s ({', '.join(f'{s.stage} {s.seconds:.2f}' for s in r.stages)})", flush=True)
        return r

    for name, (img, n) in photos.items():
        r = run(name, img, expect_n=n)
        if n >= 1 and r.detections:
            face = max(r.detections, key=lambda d: d.area)
            for vname, (vimg, vbox, e2c) in _variants(img, face).items():
                run(f"{name} [{vname}]", vimg, expect_boxes=vbox, size=round(e2c))
    return {"rows": rows, "stage_cost": {k: {"runs": len(v), "mean_s": float(np.mean(v)), "max_s": float(np.max(v))}
                                         for k, v in stage_cost.items()}}


def bench_fit(cache: Path) -> list[dict]:
    import torch

    from face3d.geometry.rotations import axis_angle_to_matrix
    from face3d.models import load_model
    from face3d.reconstruct.api import ReconstructConfig, resolve_estimator
    from face3d.reconstruct.detect import DlibDetector
    from face3d.reconstruct.fitter import FitConfig, fit

    model = load_model("builtin")
    try:
        net, est = resolve_estimator(model, ReconstructConfig())
    except FileNotFoundError:
        net, est = None, "none (mean head)"
    det = DlibDetector()
    rows = []
    for name, (img, n) in load_photos(cache).items():
        dets = det.detect(img)
        if not dets:
            continue
        L = torch.tensor(np.stack([d.landmarks68 for d in dets]), dtype=torch.float32)
        id0 = None
        if net is not None:
            with torch.no_grad():
                id0 = net.predict(L)
        H, W = img.shape[:2]
        iod = (L[:, 36] - L[:, 45]).norm(dim=-1)[:, None]
        res = {}
        for mode in ("sliding", "fixed"):
            r = fit(model, L, identity_init=id0, cfg=FitConfig(photo_steps=(), shape_steps=(), contour=mode),
                    width=W, height=H)
            e = (r.landmarks2d - L).norm(dim=-1) / iod
            res[mode] = (e.mean(-1), e[:, :17].mean(-1), r.rotation)
        R = axis_angle_to_matrix(res["sliding"][2])
        yaw = torch.rad2deg(torch.atan2(R[:, 0, 2], R[:, 2, 2]))
        for i, d in enumerate(dets):
            rows.append({"image": name, "face": i, "stage": d.stage, "yaw": float(yaw[i]), "estimator": est,
                         **{f"{k}_{m}": float(v[j][i]) for m, v in res.items() for j, k in ((0, "nme"), (1, "jaw"))}})
            w = rows[-1]
            print(f"  {name:24s} face {i} ({d.stage}) yaw {w['yaw']:6.1f}: NME sliding {100 * w['nme_sliding']:.2f} % "
                  f"fixed {100 * w['nme_fixed']:.2f} %, jaw {100 * w['jaw_sliding']:.2f} / {100 * w['jaw_fixed']:.2f} %")
    return rows


def bench_landmarks(n: int) -> dict:
    from face3d.models import load_model
    from face3d.reconstruct.evaluate import LandmarkBenchConfig, landmark_benchmark

    return landmark_benchmark(load_model("builtin"), LandmarkBenchConfig(n=n), progress=lambda s: print("  " + s))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/face3d/wild_photos"))
    ap.add_argument("--skip", nargs="*", default=[], choices=["detect", "landmarks", "fit"])
    ap.add_argument("--heads", type=int, default=20, help="synthetic heads per landmark subset")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    print(f"threads {args.threads}, load average {os.getloadavg()}")
    if "detect" not in args.skip:
        print("[detect]")
        r = bench_detect(Path(args.cache))
        rows = r["rows"]
        # One row per photo: the photo itself, then its variants (stage that found the face, s).
        cols = ["", "tight", "small", "tiny", "archival"]
        by: dict[str, dict[str, dict]] = {}
        for w in rows:
            base, _, var = w["image"].partition(" [")
            by.setdefault(base, {})[var.rstrip("]")] = w

        def cell(w):
            if w is None:
                return "-"
            ok = f"{w['found']}/{w['faces']}" + (f" +{w['false']} false" if w["false"] else "")
            return f"{ok} {w['stage']} {w['seconds']:.2f} s"

        print("\n| photo | size | eye-to-chin px | photo: found, stage, s | tight crop | small (45 px) | tiny (25 px) | "
              "archival (gray, half contrast) |")
        print("|---|---|---|---|---|---|---|---|")
        for base, v in by.items():
            w0 = v[""]
            print(f"| {base} | {w0['size']} | {w0['eye_to_chin']} | " + " | ".join(cell(v.get(c)) for c in cols) + " |")
        big = [w for w in rows if w["faces"] and (w["eye_to_chin"] or 0) >= 40]
        print(f"\nfaces >= 40 px eye-to-chin found: {sum(w['found'] for w in big)}/{sum(w['faces'] for w in big)}; "
              f"all faces: {sum(w['found'] for w in rows)}/{sum(w['faces'] for w in rows)}; "
              f"false detections: {sum(w['false'] for w in rows)}")
        print("\n| stage | runs | mean s | max s |\n|---|---|---|---|")
        for k, v in r["stage_cost"].items():
            print(f"| {k} | {v['runs']} | {v['mean_s']:.2f} | {v['max_s']:.2f} |")
    if "fit" not in args.skip:
        print("[fit]")
        rows = bench_fit(Path(args.cache))
        print(f"\nestimator {rows[0]['estimator'] if rows else '-'}; NME / jaw NME of the fitted landmarks vs dlib's")
        print("| fitted yaw | faces | NME sliding | NME fixed | jaw sliding | jaw fixed |\n|---|---|---|---|---|---|")
        for lo, hi in ((0, 15), (15, 30), (30, 90)):
            sel = [w for w in rows if lo <= abs(w["yaw"]) < hi]
            if sel:
                m = {k: 100 * float(np.mean([w[k] for w in sel])) for k in ("nme_sliding", "nme_fixed", "jaw_sliding", "jaw_fixed")}
                print(f"| {lo}-{hi} deg | {len(sel)} | {m['nme_sliding']:.2f} % | {m['nme_fixed']:.2f} % | "
                      f"{m['jaw_sliding']:.2f} % | {m['jaw_fixed']:.2f} % |")
    if "landmarks" not in args.skip:
        print("[landmarks]")
        r = bench_landmarks(args.heads)
        print(f"\nmodel {r['model']}, estimator {r['estimator']}, {args.heads} heads per subset, {r['seconds']:.0f} s")
        print("| subset | target | NME sliding | NME fixed | jaw NME sliding | jaw NME fixed |\n|---|---|---|---|---|---|")
        for sub in ("frontal", "turned", "small", "tight_crop"):
            t = {"frontal": "<= 6 %", "turned": "<= 9 %"}.get(sub, "-")
            s, f = r[sub]["sliding"], r[sub]["fixed"]
            print(f"| {sub} | {t} | {100 * s['nme']:.2f} % | {100 * f['nme']:.2f} % | {100 * s['jaw_nme']:.2f} % | "
                  f"{100 * f['jaw_nme']:.2f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
