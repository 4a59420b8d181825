"""``avatars sketch``, ``sketch-train``, ``sketch-eval`` and ``sketch-app``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _detail_spec(spec: str) -> tuple[str, float]:
    """``"left.png@-45"`` -> ``("left.png", -45.0)``."""
    path, _, yaw = spec.rpartition("@")
    try:
        if path:
            return path, float(yaw)
    except ValueError:
        pass
    raise ValueError(f"expected DRAWING@YAW (e.g. left.png@-45), got {spec!r}")


def _sketch(args: argparse.Namespace) -> int:
    import torch

    from avatars.sketch import SketchInputError, SketchModeler
    from avatars.sketch.views import add_detail, view_image

    torch.set_num_threads(args.threads)
    modeler = SketchModeler.load(args.weights)
    try:
        details = [_detail_spec(spec) for spec in args.detail or []]
    except ValueError as e:
        print(f"error: --detail: {e}", file=sys.stderr)
        return 2
    where = args.drawing
    try:
        result = modeler(args.drawing, fine=not args.coarse_only)
        for where, yaw in details:
            result = add_detail(modeler, result, where, yaw)
    except (SketchInputError, ValueError) as e:
        print(f"error: {where}: {e}", file=sys.stderr)
        return 2
    modeler.save(result, args.out)
    if args.views_out:
        from face3d.viz import save_png

        out = Path(args.views_out)
        out.mkdir(parents=True, exist_ok=True)
        for yaw in args.view_yaws:
            save_png(out / f"view_{yaw:+.0f}.png", view_image(modeler, result, yaw))
        print(f"wrote {len(args.view_yaws)} view pictures to {out} (draw detail strokes over one and pass it back "
              f"with --detail DRAWING@YAW)", file=sys.stderr)
    if args.coefficients:
        import json

        Path(args.coefficients).write_text(json.dumps({
            "identity": result.identity[0].tolist(), "expression": dict(zip(modeler.model.expression_names, result.expression[0].tolist())),
            "neck": result.neck[0].tolist()}, indent=1))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _train(args: argparse.Namespace) -> int:
    import hashlib
    from dataclasses import replace

    import torch

    import face3d
    from avatars.sketch.api import save_weights
    from avatars.sketch.train import TrainConfig, train

    from face3d.scale import ray_available

    if args.ray is not None and not ray_available("sketch-train", "avatars"):
        return 2
    torch.set_num_threads(args.threads)
    model = face3d.load_model(args.model)
    cfg = TrainConfig()
    cfg = replace(cfg, **{k: getattr(args, k) for k in ("heads", "styles", "coarse_steps", "coarse_batch", "fine_steps",
                                                        "fine_batch", "fine_heads", "seed") if getattr(args, k) is not None})
    from face3d import distributed

    info = distributed.init_from_env()  # under torchrun: join the job; each rank trains on its slices
    try:
        out = train(model, cfg, log=lambda s: print(s, file=sys.stderr, flush=True), ray=args.ray, workers=args.workers,
                    dist=info)
    finally:
        distributed.shutdown()
    if not info.is_main:
        distributed.exit_worker()  # rank 0 alone writes the weights
    model_sha = hashlib.sha256(Path(model.source).read_bytes()).hexdigest() if model.source and Path(model.source).is_file() else ""
    sha = save_weights(args.out, model, out["coarse"], out["fine"],
                       {"train_config": out["config"], "train_seconds": out["train_seconds"], "model_file_sha256": model_sha,
                        "processes": out["processes"], "history": out["history"]})
    print(f"wrote {args.out} (sha256 {sha}) in {out['train_seconds']:.0f} s", file=sys.stderr)
    return 0


def _eval(args: argparse.Namespace) -> int:
    import torch

    from avatars.sketch import SketchModeler
    from avatars.sketch.evaluate import evaluate, table

    torch.set_num_threads(args.threads)
    res = evaluate(SketchModeler.load(args.weights), n=args.n, log=lambda s: print(s, file=sys.stderr, flush=True))
    print(table(res))
    print(f"\nmedian seconds per drawing (coarse + fine): {res['seconds_per_drawing']:.3f}; per local edit: "
          f"{res['seconds_per_edit']:.3f}; per detail drawing: {res['seconds_per_detail']:.3f}")
    if args.figure:
        from avatars.sketch.evaluate import figure
        from face3d.viz import save_png

        save_png(args.figure, figure(SketchModeler.load(args.weights)))
        print(f"wrote {args.figure}", file=sys.stderr)
    return 0


def _app(args: argparse.Namespace) -> int:
    from avatars.sketch.app import launch

    launch(args.weights, host=args.host, port=args.port)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from avatars.sketch.api import DEFAULT_WEIGHTS

    p = sub.add_parser("sketch", help="a front drawing of a head -> a mesh (OBJ/PLY/GLB)",
                       description="Read a line drawing (black contours; optional red ridges and green valleys; any size, "
                       "scans welcome) and write the head mesh of the model the weights were trained for.")
    p.add_argument("drawing", help="PNG/JPEG drawing")
    p.add_argument("--out", default="head.obj", help="output mesh (.obj, .ply or .glb)")
    p.add_argument("--weights", default=str(DEFAULT_WEIGHTS))
    p.add_argument("--coarse-only", action="store_true", help="skip the fine stage")
    p.add_argument("--coefficients", help="also write the coarse coefficients as JSON here")
    p.add_argument("--detail", action="append", metavar="DRAWING@YAW",
                   help="a detail drawing made over the view picture at YAW degrees (see --views-out); repeatable, "
                        "applied in order")
    p.add_argument("--views-out", metavar="DIR", help="also write the mesh seen from --view-yaws (PNG) to draw detail over")
    p.add_argument("--view-yaws", type=float, nargs="+", default=[-45.0, 45.0], metavar="DEG")
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=_sketch)

    p = sub.add_parser("sketch-train", help="train the sketch networks from synthetic drawings")
    p.add_argument("--model", default="builtin")
    p.add_argument("--out", default=str(DEFAULT_WEIGHTS))
    p.add_argument("--heads", type=int)
    p.add_argument("--coarse-steps", type=int)
    p.add_argument("--fine-steps", type=int)
    p.add_argument("--fine-heads", type=int)
    p.add_argument("--styles", type=int, help="drawings per head (default 1)")
    p.add_argument("--coarse-batch", type=int, help="drawings per coarse step (default 32); under torchrun the "
                                                    "global batch, split over the processes")
    p.add_argument("--fine-batch", type=int, help="examples per fine step (default 8); split like --coarse-batch")
    p.add_argument("--seed", type=int)
    p.add_argument("--threads", type=int, default=1)
    from face3d.scale import add_ray_flags

    add_ray_flags(p, "training drawings (chunks of 16 heads; the same drawings as without)", shared_out=False, worker_threads="one torch thread")
    p.set_defaults(func=_train)

    p = sub.add_parser("sketch-eval", help="benchmark the sketch networks on held-out synthetic drawings")
    p.add_argument("--weights", default=str(DEFAULT_WEIGHTS))
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--figure", help="also write drawings beside their coarse and fine meshes as one PNG here")
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=_eval)

    p = sub.add_parser("sketch-app", help="a local web page to draw a head and see the mesh")
    p.add_argument("--weights", default=str(DEFAULT_WEIGHTS))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    p.set_defaults(func=_app)
