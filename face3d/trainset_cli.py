"""``face3d make-trainset {estimator,stabilizer}``: write a stored synthetic training set
(:mod:`face3d.trainset`), which ``train-estimator --data DIR`` / ``stabilize-train --data DIR``
train on. Module-level imports stay light (argparse only)."""
from __future__ import annotations

import sys


def register(sub) -> None:
    from face3d.scale import add_ray_flags

    p = sub.add_parser(
        "make-trainset", help="write a fixed synthetic training set for the estimator or the stabilizer",
        description="Write N synthetic items (estimator: scenes with 68 landmarks; stabilizer: identity groups of "
                    "--per-identity meshes) to --out in chunks of --chunk, chunk i drawn from its own generator "
                    "seeded from (--seed, i): the set is the same whichever process or Ray worker made which chunk. "
                    "Chunks are written atomically as they finish; rerunning the same command resumes (existing "
                    "chunks skipped); DIR/manifest.json records the settings and a rerun with others is refused. "
                    "Train on it with `face3d train-estimator --data DIR` or `face3d stabilize-train --data DIR`. "
                    "Exit code 1 if a chunk failed (rerun to retry it), 3 if --limit stopped the run.")
    p.add_argument("part", choices=("estimator", "stabilizer"), help="which learned part the set is for")
    p.add_argument("--n", type=int, required=True, help="items: scenes (estimator) or identity groups (stabilizer)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--chunk", type=int, default=512, help="items per chunk file (default: 512)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--model", default="builtin", help="model spec: builtin | character | flame:PATH | ict:PATH | npz:PATH")
    p.add_argument("--per-identity", type=int, default=None,
                   help="stabilizer: meshes per identity group (default: stabilize-train's, 6)")
    p.add_argument("--points", type=int, default=None,
                   help="stabilizer: encoder input vertices the set stores (default: the network's, 384)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads of the single-process run (default 1, as each Ray worker uses, so the "
                        "bytes agree)")
    p.add_argument("--limit", type=int, default=None, help="stop after writing this many new chunks (exit code 3)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_ray_flags(p, "chunks", shared_out=False, worker_threads="one torch thread")
    p.set_defaults(func=run_make_trainset)


def run_make_trainset(args) -> int:
    from face3d.scale import ray_available

    if args.ray is not None and not ray_available("make-trainset"):
        return 2
    import dataclasses

    from face3d.models import load_model
    from face3d.trainset import EstimatorSetConfig, StabilizerSetConfig, TrainSetConfig, make_trainset

    if args.part == "estimator":
        if args.per_identity is not None or args.points is not None:
            print("error: --per-identity and --points are stabilizer settings", file=sys.stderr)
            return 2
        data = EstimatorSetConfig()
    else:
        data = StabilizerSetConfig()
        over = {k: v for k, v in (("per_identity", args.per_identity), ("n_points", args.points)) if v is not None}
        data = dataclasses.replace(data, **over)
    try:
        cfg = TrainSetConfig(args.part, n=args.n, chunk=args.chunk, seed=args.seed, data=data)
        model = load_model(args.model)
        res = make_trainset(model, args.out, cfg, model_spec=args.model, ray=args.ray, workers=args.workers,
                            threads=args.threads, limit=args.limit, progress=not args.quiet)
    except (ValueError, FileNotFoundError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{args.out}: {len(res.written)} chunks written, {len(res.skipped)} already there, {len(res.failed)} failed "
          f"(of {cfg.n_chunks}; {cfg.n} items)", file=sys.stderr)
    for i, why in sorted(res.failed.items()):
        print(f"failed: chunk {i}: {why}", file=sys.stderr)
    if res.failed:
        return 1
    if res.stopped_early:
        print("stopped early (--limit); rerun to continue", file=sys.stderr)
        return 3
    return 0
