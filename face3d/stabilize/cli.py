"""``face3d stabilize``, ``face3d stabilize-train`` and ``face3d stabilize-eval``."""
from __future__ import annotations

import argparse
import sys

_METHODS = ("learned", "procrustes", "upper", "icp")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "stabilize",
        help="remove rigid head motion from meshes of one topology (a performance or an expression set)",
        description="Stabilize OBJ/PLY meshes (the model's topology) onto a reference mesh: writes the "
        "stabilized meshes (original vertex order, faces and UVs) and per-frame 4x4 transforms (JSON) "
        "to --out. Rerunning resumes: frames already done are skipped. A broken mesh or one with another "
        "vertex count is reported and skipped; the exit code is then 1.",
    )
    p.add_argument("inputs", nargs="+", help="a folder of meshes (sorted by name) or mesh files")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--reference", default=None, help="reference frame: index or file name (default: the first)")
    p.add_argument("--method", default="learned", choices=_METHODS, help="stabilizer (default: learned)")
    p.add_argument("--model", default="builtin", help="model spec: builtin | flame:PATH | ict:PATH | npz:PATH")
    p.add_argument("--weights", default=None, help="learned weights (default: assets/stabilizer_builtin.pt for builtin)")
    p.add_argument("--batch-size", type=int, default=32, help="meshes per estimate (default: 32)")
    p.add_argument("--limit", type=int, default=None,
                   help="stop after stabilizing this many new frames (exit code 3; rerun to continue)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--per-folder", action="store_true",
                   help="each input folder is its own sequence (own reference, resume and transforms.json), "
                        "written to OUT/<folder name>/; needed with --ray")
    from face3d.scale import add_ray_flags

    add_ray_flags(p, "folders (with --per-folder; each folder is one job)")
    p.set_defaults(func=run_stabilize)

    t = sub.add_parser(
        "stabilize-train",
        help="train the learned stabilizer for a model on synthetic pairs",
        description="Train a stabilizer network from scratch on pairs generated on the fly from the model "
        "(deterministic for a seed), or on a stored set (--data), and save the weights. Runs data-parallel unchanged under "
        "`torchrun --nproc_per_node N` (--identities is the global count, split over the N processes; rank 0 "
        "writes --out).",
    )
    t.add_argument("--model", default="builtin", help="model spec: builtin | flame:PATH | ict:PATH | npz:PATH")
    t.add_argument("--out", required=True, help="weights file to write (.pt)")
    t.add_argument("--steps", type=int, default=None, help="optimiser steps (default: TrainConfig.steps)")
    t.add_argument("--identities", type=int, default=None, help="identities per step")
    t.add_argument("--per-identity", type=int, default=None, help="meshes per identity (all pairs inside are used)")
    t.add_argument("--lr", type=float, default=None, help="learning rate")
    t.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    t.add_argument("--points", type=int, default=None, help="encoder input vertices")
    t.add_argument("--hidden", type=int, default=None, help="hidden width")
    t.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    t.add_argument("--log-every", type=int, default=None, help="progress line every N steps")
    t.add_argument("--data", default=None, metavar="DIR",
                   help="train on the stored set in DIR (`face3d make-trainset stabilizer`), in shuffled epochs, "
                        "instead of fresh groups every step (--per-identity defaults to the set's)")
    t.set_defaults(func=run_train)

    e = sub.add_parser(
        "stabilize-eval",
        help="compare stabilizers on held-out synthetic pairs and performances (Markdown table)",
        description="Rotation, translation and skull errors (median / p95) and frame-to-frame jitter of every "
        "method on held-out synthetic data; prints a Markdown table.",
    )
    e.add_argument("--model", default="builtin", help="model spec")
    e.add_argument("--weights", default=None, help="learned weights (default: the built-in ones)")
    e.add_argument("--methods", default=",".join(("procrustes", "upper", "icp", "learned")),
                   help="comma-separated methods (default: all)")
    e.add_argument("--pairs", type=int, default=None, help="held-out pairs")
    e.add_argument("--sequences", type=int, default=None, help="synthetic performances")
    e.add_argument("--frames", type=int, default=None, help="frames per performance")
    e.add_argument("--seed", type=int, default=None, help="evaluation seed")
    e.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    e.add_argument("--out-md", default=None, help="also write the table to this file")
    e.set_defaults(func=run_eval)


def _folder_setup(cfg) -> tuple:
    """Per worker, once: the stabilizer (network weights) every folder of the job uses."""
    import torch

    from face3d.stabilize.api import load_stabilizer

    torch.set_num_threads(1)
    return cfg, load_stabilizer(cfg.method, cfg.model, cfg.weights)


def _stabilize_folder(ctx: tuple, job: tuple[str, str]) -> dict:
    """Stabilize one folder ``job = (folder, out_dir)`` (resumable: see face3d.stabilize.batch)."""
    from face3d.stabilize.batch import stabilize_files

    cfg, st = ctx
    folder, out_dir = job
    try:
        res = stabilize_files(folder, out_dir, cfg, stabilizer=st)
    except (ValueError, FileNotFoundError) as e:  # an unusable folder: reported, the others go on
        return {"folder": folder, "error": str(e)}
    return {"folder": folder, "done": len(res.done), "skipped": len(res.skipped), "failed": res.failed,
            "stopped_early": res.stopped_early}


def _run_per_folder(args: argparse.Namespace, cfg) -> int:
    import dataclasses
    from pathlib import Path

    from face3d.scale import map_items

    folders = [Path(f) for f in args.inputs]
    bad = [str(f) for f in folders if not f.is_dir()]
    names = [f.name for f in folders]
    if bad or len(set(names)) < len(names):
        print(f"error: --per-folder: expected folders with distinct names, got {args.inputs}", file=sys.stderr)
        return 2
    jobs = [(str(f), str(Path(args.out) / f.name)) for f in folders]
    cfg = dataclasses.replace(cfg, progress=False)  # one bar over the folders instead
    results = [None] * len(jobs)
    for i, r in map_items(_stabilize_folder, jobs, _folder_setup, (cfg,), ray=args.ray, workers=args.workers,
                          progress=not args.no_progress, desc="stabilize", unit="folder"):
        results[i] = r
    code = 0
    for r in results:  # input order
        if "error" in r:
            print(f"error: {r['folder']}: {r['error']}", file=sys.stderr)
            code = max(code, 2)
            continue
        print(f"{r['folder']}: stabilized {r['done']} meshes, {r['skipped']} already done, {len(r['failed'])} failed",
              file=sys.stderr)
        for why in r["failed"].values():
            print(f"failed: {why}", file=sys.stderr)
        code = max(code, 1 if r["failed"] else 3 if r["stopped_early"] else 0)
    return code


def run_stabilize(args: argparse.Namespace) -> int:
    from face3d.stabilize.batch import BatchConfig, stabilize_files

    cfg = BatchConfig(method=args.method, model=args.model, weights=args.weights, reference=args.reference,
                      batch_size=args.batch_size, limit=args.limit, progress=not args.no_progress)
    if args.ray is not None and not args.per_folder:
        print("error: --ray distributes folders: pass --per-folder (each input folder is one job)", file=sys.stderr)
        return 2
    if args.per_folder:
        from face3d.scale import ray_available

        if args.ray is not None and not ray_available("stabilize"):
            return 2
        return _run_per_folder(args, cfg)
    try:
        res = stabilize_files(args.inputs, args.out, cfg)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"stabilized {len(res.done)} meshes, {len(res.skipped)} already done, {len(res.failed)} failed; "
          f"transforms in {res.manifest}", file=sys.stderr)
    for name, why in res.failed.items():
        print(f"failed: {why}", file=sys.stderr)
    if res.failed:
        return 1
    if res.stopped_early:
        print(f"stopped after {len(res.done)} new meshes (--limit); rerun to continue", file=sys.stderr)
        return 3
    return 0


def run_train(args: argparse.Namespace) -> int:
    import dataclasses
    from pathlib import Path

    import torch

    from face3d.models import BUILTIN_PATH, load_model
    from face3d.fileio import file_sha256
    from face3d.stabilize.train import TrainConfig, save_checkpoint, train

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = TrainConfig(seed=args.seed)
    over = {k: v for k, v in (("steps", args.steps), ("identities", args.identities), ("per_identity", args.per_identity),
                              ("lr", args.lr), ("log_every", args.log_every)) if v is not None}
    net_over = {k: v for k, v in (("n_points", args.points), ("hidden", args.hidden)) if v is not None}
    cfg = dataclasses.replace(cfg, **over, network=dataclasses.replace(cfg.network, **net_over))
    model = load_model(args.model)
    data = None
    if args.data is not None:
        from face3d.trainset import load_trainset

        try:
            data = load_trainset(args.data, "stabilizer", model)
            k = data.manifest["config"]["per_identity"]
            if args.per_identity is None:
                cfg = dataclasses.replace(cfg, per_identity=k)
            elif args.per_identity != k:
                raise ValueError(f"--per-identity {args.per_identity}: the set holds groups of {k}")
            if data.n < cfg.identities:
                raise ValueError(f"--identities {cfg.identities}: expected at most the {data.n} groups of the set")
        except (ValueError, FileNotFoundError) as e:
            print(f"error: --data {args.data}: {e}", file=sys.stderr)
            return 2
    path = BUILTIN_PATH if args.model == "builtin" else Path(args.model.partition(":")[2] or args.model)
    sha = file_sha256(path) if path.is_file() else ""
    print(f"training the stabilizer for {model.name!r} ({model.n_vertices} vertices) with {torch.get_num_threads()} "
          f"threads: {cfg.steps} steps of {cfg.identities * cfg.per_identity * (cfg.per_identity - 1)} pairs", file=sys.stderr)
    from face3d import distributed

    info = distributed.init_from_env()  # under torchrun: join the job; each rank trains on its groups
    try:
        net, ckpt = train(model, cfg, model_spec=args.model, model_sha256=sha, dist=info, data=data)
    finally:
        distributed.shutdown()
    if not info.is_main:
        distributed.exit_worker()  # rank 0 alone evaluates and writes the weights
    save_checkpoint(ckpt, args.out)
    print(f"wrote {args.out} ({Path(args.out).stat().st_size / 1e6:.2f} MB, sha256 {file_sha256(args.out)}) "
          f"after {ckpt['train_seconds']:.0f} s", file=sys.stderr)
    return 0


def run_eval(args: argparse.Namespace) -> int:
    import dataclasses
    from pathlib import Path

    import torch

    from face3d.models import load_model
    from face3d.stabilize.api import load_stabilizer
    from face3d.stabilize.evaluate import EvalConfig, evaluate, markdown_table

    if args.threads:
        torch.set_num_threads(args.threads)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in _METHODS]
    if bad:
        print(f"error: --methods: unknown {bad}; expected a subset of {_METHODS}", file=sys.stderr)
        return 2
    model = load_model(args.model)
    try:
        sts = {m: load_stabilizer(m, args.model if m == "learned" else model, args.weights) for m in methods}
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cfg = EvalConfig()
    over = {k: v for k, v in (("n_pairs", args.pairs), ("n_sequences", args.sequences), ("n_frames", args.frames),
                              ("seed", args.seed)) if v is not None}
    cfg = dataclasses.replace(cfg, **over)
    table = markdown_table(evaluate(model, sts, cfg))
    print(table)
    if args.out_md:
        Path(args.out_md).write_text(table + "\n")
    return 0
