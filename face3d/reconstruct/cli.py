"""Command-line front end: ``face3d reconstruct``, ``face3d track``, ``face3d train-estimator``,
``face3d eval-metric`` and ``face3d eval-now``.

Module-level imports stay light (argparse only); the work happens in the run functions.
"""
from __future__ import annotations

import sys
from pathlib import Path

EXAMPLES = ("astronaut",)
# Kept in sync with face3d.reconstruct.detect.STAGES (not imported: this module stays light).
STAGES_DEFAULT = ("hog", "hog_upsampled", "hog_padded", "cnn")


def register(subparsers) -> None:
    """Add this module's subcommands to an argparse ``subparsers`` object."""
    from face3d.scale import add_ray_flags

    p = subparsers.add_parser(
        "reconstruct", help="metric 3D faces from photos (mesh, params, overlay, measurements)",
        description="Reconstruct a metric (mm) 3D face per image: dlib detection + 68 landmarks, learned "
                    "shape estimate, landmark + photometric fit. Writes DIR/<name>.obj (+ texture), "
                    "<name>_params.json/.npz, <name>_overlay.png, <name>_measurements.json. Failures are "
                    "reported per image; the exit code is 1 if any image failed.")
    p.add_argument("images", nargs="*", help="image files or folders (searched for images, not recursively)")
    p.add_argument("--example", choices=EXAMPLES, action="append", default=[],
                   help="add a built-in example photo (skimage.data.astronaut(), public domain)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--model", default="builtin", help="model spec (builtin, flame:PATH, ict:PATH, npz:PATH)")
    p.add_argument("--estimator", default=None, help="estimator weights (default: assets/estimator_builtin.pt)")
    p.add_argument("--no-estimator", action="store_true", help="start from the mean head (landmark-only baseline)")
    p.add_argument("--all-faces", action="store_true", help="reconstruct every face (default: the largest)")
    p.add_argument("--face", type=int, default=None, metavar="INDEX",
                   help="reconstruct face INDEX (as numbered in report.json and the overlay, most confident first) "
                        "instead of the largest")
    p.add_argument("--min-score", type=float, default=0.3, help="dlib HOG detection score threshold")
    p.add_argument("--detector-stages", default=",".join(STAGES_DEFAULT),
                   help="detection cascade stages in order, comma-separated, from "
                        f"{','.join(STAGES_DEFAULT)} (later ones run only when earlier ones find no face)")
    p.add_argument("--dlib-models", default=None, metavar="DIR",
                   help="folder with dlib's .dat model files (default: the face_recognition_models package's)")
    p.add_argument("--all-stages", action="store_true",
                   help="run every detection stage and merge their faces (slower; for photos with easy and hard faces)")
    p.add_argument("--fast", action="store_true", help="landmarks only (no photometric stages, no texture)")
    p.add_argument("--keep-shape", action="store_true",
                   help="skip the photometric shape stage: keep the estimator's shape (for photos whose skin is far "
                        "from one colour: heavy make-up, face paint, hard shadows)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: the fit is many small ops, which extra threads slow down)")
    add_ray_flags(p, "images")
    p.set_defaults(func=run_reconstruct)

    p = subparsers.add_parser(
        "track", help="fit a video or image sequence of one person (shared identity, smooth pose)",
        description="Track a video (any format imageio-ffmpeg reads) or a folder of frames: one identity "
                    "for all frames, per-frame pose/expression/jaw, temporally smoothed, fitted in batches. "
                    "Writes DIR/track.npz and DIR/track.json (per-frame parameters + camera).")
    p.add_argument("sources", nargs="+", metavar="source",
                   help="video file or folder of frames (sorted by name); with several, each is tracked on its "
                        "own into OUT/<name>/ and one that is done already (its track.json exists) is skipped")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--model", default="builtin")
    p.add_argument("--estimator", default=None)
    p.add_argument("--batch", type=int, default=16, help="frames fitted together")
    p.add_argument("--max-frames", type=int, default=None)
    p.add_argument("--size", type=int, default=None, help="resize frames so the longer side is SIZE px")
    p.add_argument("--photometric", action="store_true",
                   help="add the photometric stages: shape from shading on the first batch (shared identity), then "
                        "appearance (slower)")
    p.add_argument("--temporal", type=float, default=0.02,
                   help="temporal smoothness weight (0.02 halves frame-to-frame jerk on a synthetic turn)")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: the fit is many small ops, which extra threads slow down)")
    add_ray_flags(p, "videos (each one is one job)")
    p.set_defaults(func=run_track)

    p = subparsers.add_parser(
        "train-estimator", help="train the landmarks -> metric identity network on synthetic data",
        description="Train face3d.reconstruct.estimator.ShapeEstimator for a model on random synthetic "
                    "heads (identities, expressions, poses, focal lengths, landmark noise/dropout). Runs "
                    "data-parallel unchanged under `torchrun --nproc_per_node N` (--batch is the global "
                    "batch, split over the N processes; rank 0 writes --out).")
    p.add_argument("--model", default="builtin")
    p.add_argument("--out", required=True, help="weights file to write (.pt)")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default=None, metavar="DIR",
                   help="train on the stored set in DIR (`face3d make-trainset estimator`), in shuffled epochs, "
                        "instead of fresh batches every step")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run_train)

    p = subparsers.add_parser(
        "eval-metric", help="synthetic metric benchmark: ours vs mean head vs landmark-only fitting",
        description="Held-out synthetic heads of known size rendered through face3d.render; landmarks are "
                    "the model's projected landmarks + noise (dlib does not fire reliably on untextured "
                    "renders). Reports mean scan-to-mesh error in mm without scale alignment.")
    p.add_argument("--model", default="builtin")
    p.add_argument("--estimator", default=None)
    p.add_argument("--n", type=int, default=20, help="number of test heads")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--landmarks-only", action="store_true",
                   help="fit landmarks only (skip the photometric shape stage on the renders; faster)")
    p.add_argument("--json", default=None, help="write the numbers to this JSON file")
    p.set_defaults(func=run_eval_metric)

    p = subparsers.add_parser(
        "eval-now", help="NoW-protocol error of predicted meshes against scans",
        description="For each PRED mesh and SCAN (+ 7 scan landmarks, one 'x y z' per line): rigid (+scale "
                    "unless --metric) alignment on 7 landmarks, ICP refinement on scan-to-mesh distance, "
                    "scan cropped around the nose; prints median/mean/std mm.")
    p.add_argument("--pred", nargs="+", required=True, help="predicted meshes (model topology)")
    p.add_argument("--scan", nargs="+", required=True, help="scan meshes, same order")
    p.add_argument("--scan-landmarks", nargs="+", required=True, help="7-point scan landmark files, same order")
    p.add_argument("--model", default="builtin", help="model whose 'now7' (or ibug68) landmarks the predictions use")
    p.add_argument("--metric", action="store_true", help="metric variant: no scale in the alignment")
    p.set_defaults(func=run_eval_now)


# ----------------------------------------------------------------------------------- helpers
# Library messages name config fields; a CLI user sets them through these flags.
_CONFIG_TO_FLAG = {
    "DlibConfig(models_dir=...)": "--dlib-models DIR",
    "DlibConfig.stages": "--detector-stages",
    "ReconstructConfig(estimator_path=FILE)": "--estimator FILE",
    "use_estimator=False": "--no-estimator",
}


def _as_cli_message(e: BaseException) -> str:
    msg = str(e)
    for cfg, flag in _CONFIG_TO_FLAG.items():
        msg = msg.replace(cfg, flag)
    return msg


def _example(name: str):
    if name == "astronaut":
        from skimage.data import astronaut

        return astronaut()
    raise ValueError(f"--example: expected one of {EXAMPLES}, got {name!r}")


# ----------------------------------------------------------------------------------- commands
# `face3d reconstruct` is one per-image function (`_reconstruct_item`) over a context built once
# (`_reconstruct_setup`: model, estimator, detector). The single-process loop and the Ray workers
# (face3d.scale.RayPool, `--ray`) call exactly these two, and the driver merges the per-image
# results in input order, so report.json does not depend on where an image was processed.
#
# Resume: after an image's files are written, `done/<name>.json` records the run settings and the
# input file's size and mtime together with the image's report entries. A rerun skips images whose
# record matches and redoes the others (an interrupted image has no record: the record is written
# last and every write is atomic). Failed images get no record, so a rerun retries them.
RECORD_DIR = "done"


def _reconstruct_settings(args) -> dict:
    """The flags that the per-image work needs, as a plain dict (sent to Ray workers)."""
    return {
        "out": str(args.out), "model": args.model, "estimator": args.estimator, "no_estimator": args.no_estimator,
        "all_faces": args.all_faces, "face": args.face, "min_score": args.min_score,
        "stages": tuple(s.strip() for s in args.detector_stages.split(",") if s.strip()),
        "all_stages": args.all_stages, "dlib_models": args.dlib_models, "fast": args.fast,
        "keep_shape": args.keep_shape, "threads": max(1, args.threads),
    }


class _SetupError(Exception):
    """A settings problem found before any image is processed (exit code 2)."""


def _reconstruct_setup(s: dict) -> dict:
    """Load what every image needs once: model, estimator, detector. Raises :class:`_SetupError`."""
    import torch

    torch.set_num_threads(s["threads"])
    from face3d.models import load_model
    from face3d.reconstruct.api import MissingEstimatorError, ReconstructConfig, resolve_estimator
    from face3d.reconstruct.detect import DlibConfig, DlibDetector
    from face3d.reconstruct.fitter import FitConfig

    model = load_model(s["model"])
    if s["fast"]:
        fit_cfg = FitConfig(photo_steps=(), shape_steps=())
    else:
        fit_cfg = FitConfig(shape_steps=()) if s["keep_shape"] else FitConfig()
    cfg = ReconstructConfig(fit=fit_cfg, use_estimator=not s["no_estimator"], all_faces=s["all_faces"],
                            estimator_path=s["estimator"], face=s["face"])
    # Once, before the batch: a model without estimator weights fails here, not once per image.
    try:
        estimator = resolve_estimator(model, cfg)
    except (MissingEstimatorError, FileNotFoundError, ValueError) as e:
        if isinstance(e, MissingEstimatorError):
            msg = (f"{str(e).split(';')[0]}; train weights with `face3d train-estimator --model {s['model']} --out FILE` "
                   "and pass --estimator FILE, or pass --no-estimator to start from the mean head")
        else:
            msg = f"--estimator {s['estimator']}: {type(e).__name__}: {_as_cli_message(e)}"
        raise _SetupError(msg) from e
    try:
        detector = DlibDetector(DlibConfig(min_score=s["min_score"], stages=s["stages"], exhaustive=s["all_stages"],
                                           models_dir=s["dlib_models"]))
    except (ImportError, FileNotFoundError, ValueError) as e:
        raise _SetupError(_as_cli_message(e)) from e
    run = {"model": s["model"], "model_name": model.name, "n_vertices": model.n_vertices, "estimator": estimator[1],
           **{k: s[k] for k in ("no_estimator", "all_faces", "face", "min_score", "stages", "all_stages", "fast",
                                "keep_shape")}}
    return {"s": s, "model": model, "cfg": cfg, "estimator": estimator, "detector": detector,
            "run_key": _run_key(run)}


def _context_run_key(ctx: dict) -> str:
    """The run key of a context built by :func:`_reconstruct_setup` (asked of a Ray worker)."""
    return ctx["run_key"]


def _run_key(run: dict) -> str:
    import hashlib
    import json

    return hashlib.sha256(json.dumps(run, sort_keys=True).encode()).hexdigest()[:16]


def _input_id(src) -> dict:
    if isinstance(src, str):
        return {"example": src}
    st = Path(src).stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _record_path(out: Path, name: str) -> Path:
    return out / RECORD_DIR / f"{name}.json"


def _load_record(out: Path, name: str, src, run_key: str) -> list | None:
    """The report entries of an image done by an earlier run with the same settings, or None."""
    import json

    try:
        rec = json.loads(_record_path(out, name).read_text())
        if rec.get("run") == run_key and rec.get("input") == _input_id(src):
            return rec["succeeded"]
    except (OSError, ValueError, KeyError):
        pass  # missing or damaged record: redo the image
    return None


def _reconstruct_item(ctx: dict, job: tuple) -> dict:
    """Reconstruct one image ``job = (name, src)`` and write its files and record.

    Returns ``{"succeeded": [entry, ...]}`` or ``{"failed": {"input", "error"}}`` (JSON-ready).
    """
    from face3d.reconstruct.api import fit_detections, write_reconstruction
    from face3d.reconstruct.detect import select_face
    from face3d.reconstruct.images import load_image
    from face3d.reconstruct.outputs import _jsonable, write_json

    name, src = job
    s = ctx["s"]
    out = Path(s["out"])
    try:
        img = _example(src) if isinstance(src, str) else load_image(src)
        report = ctx["detector"].detect_report(img)
        dets = report.detections
        if not dets:
            tried = ", ".join(f"{r.stage} {r.seconds:.1f} s" for r in report.stages)
            raise LookupError(f"no face found ({img.shape[1]}x{img.shape[0]} px; stages tried: {tried}; "
                              f"HOG min score {s['min_score']})")
        picked = list(enumerate(dets)) if s["all_faces"] else [select_face(dets, s["face"])]
        recs = fit_detections(ctx["model"], img, [d for _, d in picked], ctx["cfg"], estimator=ctx["estimator"])
        rep = report.as_dict()
        done = []
        for (idx, _), rec in zip(picked, recs):
            fname = name if len(recs) == 1 else f"{name}_face{idx}"
            write_reconstruction(rec, ctx["model"], img, out, fname, detections=dets, detection_report=rep)
            done.append({"input": str(src), "output": fname, "face": idx, "stage": rec.detection_stage,
                         "score": rec.detection_score, "nme": rec.nme, "measurements_mm": rec.measurements,
                         "detection": rep})
        done = _jsonable(done)
        # Last, after every file of the image: marks it done for a rerun.
        write_json(_record_path(out, name), {"run": ctx["run_key"], "input": _input_id(src), "succeeded": done})
        return {"succeeded": done}
    except Exception as e:  # batch tool: report per item and go on
        return {"failed": {"input": str(src), "error": f"{type(e).__name__}: {_as_cli_message(e)}"}}


def run_reconstruct(args) -> int:
    from face3d.reconstruct.images import collect_images
    from face3d.reconstruct.outputs import write_json

    jobs: list[tuple[str, object]] = [(f"example_{e}", e) for e in args.example]
    jobs += [(p.stem, p) for p in collect_images(args.images)]
    if not jobs:
        print("face3d reconstruct: no images given (pass files, folders or --example astronaut)", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from face3d.scale import RayPool, map_items, ray_available

    if args.ray is not None and not ray_available("reconstruct"):
        return 2
    settings = _reconstruct_settings(args)
    stems: dict[str, int] = {}
    named = []
    for stem, src in jobs:
        n = stems.get(stem, 0)
        stems[stem] = n + 1
        named.append((stem if n == 0 else f"{stem}_{n}", src))
    # With --ray, Ray starts and the workers load the model, estimator and detector in the
    # background while the driver goes on; the driver does not load them a second time: a worker's
    # setup checks the flags and its _SetupError comes back here with the same message (exit 2),
    # before any image is sent. Unless every image has a record already: a resumed run with
    # nothing left to do should not start Ray at all (then the driver checks the flags itself).
    pool = None
    if args.ray is not None and any(not _record_path(out, name).is_file() for name, _ in named):
        pool = RayPool(_reconstruct_setup, (settings,), address=args.ray, workers=args.workers,
                       max_items=len(named))
    try:
        ctx = None
        try:
            if pool is not None:
                run_key = pool.probe(_context_run_key)  # waits for the first worker's setup
            else:
                ctx = _reconstruct_setup(settings)
                run_key = ctx["run_key"]
        except _SetupError as e:
            print(f"face3d reconstruct: {e}", file=sys.stderr)
            return 2
        results: list[dict | None] = [None] * len(named)
        todo = []
        for i, (name, src) in enumerate(named):
            entries = _load_record(out, name, src, run_key)
            if entries is None:
                todo.append(i)
            else:
                results[i] = {"succeeded": entries}

        def report_failure(r: dict) -> None:
            if "failed" in r:
                print(f"face3d reconstruct: FAILED {r['failed']['input']}: {r['failed']['error']}", file=sys.stderr)

        for k, r in map_items(_reconstruct_item, [named[i] for i in todo], _reconstruct_setup, (settings,),
                              ray=args.ray, workers=args.workers, progress=not args.quiet, desc="reconstruct",
                              unit="img", context=ctx, done_before=len(named) - len(todo),
                              pool=pool):
            results[todo[k]] = r
            report_failure(r)
    finally:
        if pool is not None:
            pool.close()
    done = [e for r in results for e in r.get("succeeded", [])]
    failures = [r["failed"] for r in results if "failed" in r]
    write_json(out / "report.json", {"succeeded": done, "failed": failures})
    print(f"face3d reconstruct: {len(done)} face(s) written to {out}, {len(failures)} input(s) failed"
          + (f", {len(named) - len(todo)} done earlier" if len(todo) < len(named) else "")
          + (f" (see {out / 'report.json'})" if failures else ""))
    return 1 if failures else 0


def run_train(args) -> int:
    from face3d.fileio import file_sha256
    from face3d.models import load_model
    from face3d.reconstruct.estimator import TrainConfig, save_estimator, train_estimator
    from face3d.reconstruct.evaluate import estimator_holdout_error

    model_sha = ""
    if args.model == "builtin":
        from face3d.models import BUILTIN_PATH

        # Hash the file before loading it, so the record names the model actually trained on.
        model_sha = file_sha256(BUILTIN_PATH)
    model = load_model(args.model)
    cfg = TrainConfig(steps=args.steps, batch=args.batch, lr=args.lr, seed=args.seed)
    data = None
    if args.data is not None:
        from face3d.trainset import load_trainset

        try:
            data = load_trainset(args.data, "estimator", model)
            if data.n < cfg.batch:
                raise ValueError(f"--batch {cfg.batch}: expected at most the {data.n} scenes of {args.data}")
        except (ValueError, FileNotFoundError) as e:
            print(f"error: --data: {e}", file=sys.stderr)
            return 2

    def progress(step, loss):
        if not args.quiet:
            print(f"step {step:5d}  loss {loss:.3f} mm", file=sys.stderr, flush=True)

    from face3d import distributed

    info = distributed.init_from_env()  # under torchrun: join the job; each rank trains on its slice
    try:
        net, stats = train_estimator(model, cfg, progress, dist=info, data=data)
    finally:
        distributed.shutdown()
    if not info.is_main:
        distributed.exit_worker()  # rank 0 alone evaluates and writes the weights
    stats["processes"] = info.world
    held = estimator_holdout_error(model, net)
    sha = save_estimator(net, model, args.out, {
        "train_config": {"steps": cfg.steps, "batch": cfg.batch, "lr": cfg.lr, "seed": cfg.seed,
                         "data": None if data is None else {"path": str(args.data), "n": data.n, "seed": data.manifest["seed"]}},
        "model_spec": args.model, "model_file_sha256": model_sha, "holdout": held, "train_stats": stats,
    })
    print(f"wrote {args.out} (sha256 {sha}); held-out mean vertex error {held['estimator_mm']:.2f} mm "
          f"vs mean head {held['mean_head_mm']:.2f} mm")
    return 0


def run_eval_metric(args) -> int:
    from face3d.models import load_model
    from face3d.reconstruct.evaluate import MetricBenchConfig, metric_benchmark
    from face3d.reconstruct.outputs import write_json

    model = load_model(args.model)
    res = metric_benchmark(model, MetricBenchConfig(n=args.n, seed=args.seed, photometric=not args.landmarks_only),
                           estimator_path=args.estimator, progress=print)
    print(f"{'method':28s} {'mean mm':>8s} {'median mm':>9s}")
    for k, v in res["methods"].items():
        print(f"{k:28s} {v['mean_mm']:8.2f} {v['median_mm']:9.2f}")
    if args.json:
        write_json(args.json, res)
    return 0


def run_eval_now(args) -> int:
    import numpy as np
    import torch

    from face3d.geometry.mesh_io import load_mesh
    from face3d.models import load_model
    from face3d.reconstruct.now import NowConfig, now_error, model_now_landmarks

    if not (len(args.pred) == len(args.scan) == len(args.scan_landmarks)):
        print("face3d eval-now: expected as many --pred as --scan and --scan-landmarks files, got "
              f"{len(args.pred)}, {len(args.scan)}, {len(args.scan_landmarks)}", file=sys.stderr)
        return 2
    model = load_model(args.model)
    dists = []
    for pp, sp, lp in zip(args.pred, args.scan, args.scan_landmarks):
        pred = load_mesh(pp)
        scan = load_mesh(sp)
        lm = np.loadtxt(lp).reshape(-1, 3)
        plm = model_now_landmarks(model, torch.from_numpy(pred.vertices).float())
        r = now_error(torch.from_numpy(pred.vertices), torch.from_numpy(pred.faces), plm.double(),
                      torch.from_numpy(scan.vertices), torch.from_numpy(lm), NowConfig(scale=not args.metric))
        dists.append(r.distances.numpy())
        print(f"{pp}: median {r.median:.3f} mean {r.mean:.3f} std {r.std:.3f} mm")
    d = np.concatenate(dists)
    print(f"ALL ({'metric' if args.metric else 'non-metric'}): median {np.median(d):.3f} mean {d.mean():.3f} std {d.std():.3f} mm")
    return 0


def _track_setup(s: dict) -> tuple:
    """Per worker, once: the model and the tracking settings."""
    import torch

    torch.set_num_threads(s["threads"])
    from face3d.models import load_model
    from face3d.reconstruct.track import TrackConfig

    cfg = TrackConfig(batch=s["batch"], photometric=s["photometric"], temporal=s["temporal"],
                      estimator_path=s["estimator"])
    return s, load_model(s["model"]), cfg


def _track_item(ctx: tuple, job: tuple[str, str]) -> dict:
    """Track one video ``job = (source, out_dir)``; per-video failures are returned, not raised."""
    from face3d.reconstruct.track import read_frames, track, write_track

    s, model, cfg = ctx
    source, out = job
    try:
        frames = read_frames(source, max_frames=s["max_frames"], size=s["size"])
        log = None if s["quiet"] or s["several"] else (lambda m: print(m, file=sys.stderr))
        res = track(model, frames, cfg, progress=log)
        write_track(res, out)  # track.json last: marks the video done for a rerun
    except Exception as e:  # batch tool: report per video and go on
        return {"source": source, "error": f"{type(e).__name__}: {_as_cli_message(e)}"}
    return {"source": source, "out": out, "frames": res.n_frames, "detected": res.n_detected}


def run_track(args) -> int:
    from face3d.scale import map_items, ray_available

    if args.ray is not None and not ray_available("track"):
        return 2
    several = len(args.sources) > 1
    names = [Path(src).stem for src in args.sources]
    if several and len(set(names)) < len(names):
        print(f"face3d track: several sources share an output name ({names}); rename or run them separately",
              file=sys.stderr)
        return 2
    jobs = [(src, str(Path(args.out) / n) if several else args.out) for src, n in zip(args.sources, names)]
    # With several videos, finished ones are skipped (resume); a single one is always redone.
    todo = [j for j in jobs if not (several and (Path(j[1]) / "track.json").is_file())]
    s = {"model": args.model, "batch": args.batch, "photometric": args.photometric, "temporal": args.temporal,
         "estimator": args.estimator, "max_frames": args.max_frames, "size": args.size, "quiet": args.quiet,
         "several": several, "threads": max(1, args.threads)}
    failed = 0
    for _, r in map_items(_track_item, todo, _track_setup, (s,), ray=args.ray, workers=args.workers,
                          progress=several and not args.quiet, desc="track", unit="video",
                          done_before=len(jobs) - len(todo)):
        if "error" in r:
            failed += 1
            print(f"face3d track: FAILED {r['source']}: {r['error']}", file=sys.stderr)
        else:
            print(f"tracked {r['frames']} frames ({r['detected']} with a detected face) -> {r['out']}/track.npz, "
                  "track.json")
    if len(todo) < len(jobs):
        print(f"face3d track: {len(jobs) - len(todo)} video(s) done earlier, skipped")
    return 1 if failed else 0
