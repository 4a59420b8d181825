"""``avatars portrait-train``, ``portrait-render`` and ``portrait-eval``."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _train(args: argparse.Namespace) -> int:
    from dataclasses import replace

    import torch

    import face3d
    from face3d import distributed
    from avatars.portrait.data import PortraitData, prepare
    from avatars.portrait.model import PortraitConfig
    from avatars.portrait.train import TrainConfig, train

    if args.threads:
        torch.set_num_threads(args.threads)
    src = Path(args.source)
    if not src.exists():
        print(f"error: source not found: {src} (expected a video file or a folder of frames)", file=sys.stderr)
        return 2
    info = distributed.init_from_env()  # under torchrun: rank 0 prepares the data, every rank trains its share
    try:
        err = None
        if info.is_main:
            try:
                prepare(src, args.out, model_spec=args.model, track_dir=args.track, size=max(256, args.size),
                        max_frames=args.max_frames, train_fraction=args.train_fraction, progress=_log)
            except (ValueError, FileNotFoundError) as e:
                err = str(e)
        err = distributed.broadcast_object(err, info)
        if err is not None:
            if info.is_main:
                print(f"error: {err}", file=sys.stderr)
            return 2
        data = PortraitData.load(Path(args.out) / "data")
        cfg = replace(PortraitConfig(), normals=not args.no_normals)
        tcfg = replace(TrainConfig(), size=args.size, rays=args.rays)
        tcfg = replace(tcfg, steps=args.steps) if args.steps is not None else tcfg
        train(data, args.out, face3d.load_model(args.model), cfg, tcfg, resume=not args.restart, log=_log, dist=info)
    finally:
        distributed.shutdown()
    if not info.is_main:
        distributed.exit_worker()  # rank 0 alone writes the portrait
    return 0


def _render(args: argparse.Namespace) -> int:
    import torch

    from avatars.portrait.render import (drive_from_audio, drive_from_sequence, drive_from_track, turntable_drive,
                                         write_drive)
    from avatars.portrait.train import load_portrait

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        p = load_portrait(args.portrait)
        if args.sequence:
            drive = drive_from_sequence(p, args.sequence)
        elif args.track:
            drive = drive_from_track(p, args.track)
        elif args.audio:
            drive = drive_from_audio(p, args.audio)
        else:
            drive = turntable_drive(p, frames=args.turntable)
        if args.max_frames:
            from dataclasses import replace

            n = args.max_frames
            drive = replace(drive, expression=drive.expression[:n], jaw=drive.jaw[:n], rotation=drive.rotation[:n],
                            translation=drive.translation[:n], neck=drive.neck[:n],
                            yaw_deg=None if drive.yaw_deg is None else drive.yaw_deg[:n])
        out = write_drive(p, drive, args.out, size=args.size, proxy=None if args.exact else args.proxy)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    _log(f"wrote {out} ({drive.n_frames} frames)")
    return 0


def _eval(args: argparse.Namespace) -> int:
    import torch

    from avatars.portrait.data import PortraitData
    from avatars.portrait.evaluate import comparison_figure, evaluate_clip
    from avatars.portrait.train import load_portrait

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        data = PortraitData.load(args.portrait)
        portraits = {"ours": load_portrait(args.portrait)}
        for spec in args.compare or []:
            name, _, path = spec.partition("=")
            if not path:
                raise ValueError(f"--compare: expected NAME=DIR, got {spec!r}")
            portraits[name] = load_portrait(path)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    s = evaluate_clip(data, portraits, size=args.size)
    print(f"held-out frames: {s.frames} at {args.size} px ({data.source})")
    print(f"{'method':<14}{'PSNR dB':>9}{'head dB':>9}{'SSIM':>8}{'s/frame':>9}")
    for n in s.psnr:
        print(f"{n:<14}{s.psnr[n]:>9.2f}{s.psnr_head[n]:>9.2f}{s.ssim[n]:>8.3f}{s.seconds_per_frame[n]:>9.2f}")
    if args.figure:
        comparison_figure(s, args.figure, names=("truth", "mesh", *portraits))
        _log(f"wrote {args.figure}")
    if args.json:
        from face3d.fileio import atomic_write_text

        atomic_write_text(args.json, json.dumps({"psnr": s.psnr, "psnr_head": s.psnr_head, "ssim": s.ssim,
                                                 "frames": s.frames, "size": args.size,
                                                 "seconds_per_frame": s.seconds_per_frame}, indent=1) + "\n")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("portrait-train", help="build a neural portrait from a video of one person",
                       description="Track the video (face3d track) or take --track, crop and mask it, and train a "
                       "portrait (NeRF head on the tracked 3DMM) on the first --train-fraction of its frames. "
                       "Rerunning with the same --out resumes from the last checkpoint.")
    p.add_argument("source", help="video file or folder of frames")
    p.add_argument("--out", required=True, help="output folder (data/, track/, checkpoint.pt, portrait.pt)")
    p.add_argument("--track", help="a face3d track folder of the same video (skips tracking)")
    p.add_argument("--model", default="builtin", help="model spec: builtin | flame:PATH | ict:PATH")
    p.add_argument("--steps", type=int, default=None, help="training steps (default TrainConfig's, 4500)")
    p.add_argument("--size", type=int, default=128, help="training resolution in px (square crop)")
    p.add_argument("--rays", type=int, default=2048, help="rays per step")
    p.add_argument("--max-frames", type=int, default=None)
    p.add_argument("--train-fraction", type=float, default=0.8, help="leading fraction of frames to train on")
    p.add_argument("--no-normals", action="store_true", help="ablation: colour not conditioned on normals")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.set_defaults(func=_train)

    p = sub.add_parser("portrait-render", help="render a trained portrait re-animated",
                       description="Drive a portrait by an expression sequence, another track (reenactment), "
                       "speech (via audio2exp, with the audio muxed into the MP4) or a turntable of novel views.")
    p.add_argument("portrait", help="folder with portrait.pt (from portrait-train) or the file")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--sequence", help="npz with expression (T, n_exp), jaw (T, 3) [, neck, rotation, translation, fps]")
    g.add_argument("--track", help="a face3d track folder to reenact")
    g.add_argument("--audio", help="speech file (WAV/MP3/...) -> talking portrait")
    g.add_argument("--turntable", type=int, default=36, metavar="FRAMES", help="novel-view turntable (default)")
    p.add_argument("--out", required=True, help="output .mp4 or .gif")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--proxy", type=int, default=64, help="fast path: proxy render size in px (see Portrait.render_frame)")
    p.add_argument("--exact", action="store_true", help="render every shell ray with every sample (slower)")
    p.add_argument("--max-frames", type=int, default=None)
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=_render)

    p = sub.add_parser("portrait-eval", help="PSNR/SSIM of a portrait on its held-out frames vs the 3DMM baseline",
                       description="Render the held-out frames of a trained portrait's clip and score them "
                       "(PSNR, head-region PSNR, SSIM) against the video, beside the tracked textured 3DMM.")
    p.add_argument("portrait", help="portrait-train output folder")
    p.add_argument("--compare", action="append", metavar="NAME=DIR", help="other portraits of the same clip")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--figure", help="write a comparison PNG (truth | mesh | portraits)")
    p.add_argument("--json", help="write the scores as JSON")
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=_eval)
