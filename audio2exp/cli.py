"""The ``audio2exp`` command line."""
from __future__ import annotations

import argparse
import sys

from face3d.cli import build_parser, run


def _channels(args: argparse.Namespace) -> int:
    import face3d

    model = face3d.load_model(args.model)
    print(f"{model.name}: {model.n_expression} expression channels (the output of audio-to-expression)")
    for i, n in enumerate(model.expression_names):
        print(f"{i:3d}  {n}")
    return 0


def _animate(args: argparse.Namespace) -> int:
    import face3d
    from audio2exp.animate import AnimationConfig, load_sequence, render_sequence
    from audio2exp.video import write_video

    model = face3d.load_model(args.model)
    seq = load_sequence(args.sequence, model)
    cfg = AnimationConfig(size=args.size, fps=args.fps)
    frames = render_sequence(model, seq, cfg=cfg)
    write_video(args.out, frames, fps=cfg.fps, audio=args.audio)
    print(f"wrote {args.out} ({len(frames)} frames at {cfg.fps} fps)", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("channels", help="list the expression channels of a model")
    p.add_argument("--model", default="builtin", help="model spec: builtin | flame:PATH | ict:PATH")
    p.set_defaults(func=_channels)

    p = sub.add_parser("animate", help="render an expression sequence (.npz) to MP4/GIF, with audio",
                       description="Render a sequence file with 'expression' (T, n_expression) and optional "
                       "'jaw', 'neck', 'rotation' (T, 3) and 'eyes' (T, 6) arrays to a video.")
    p.add_argument("sequence", help=".npz sequence file")
    p.add_argument("--model", default="builtin")
    p.add_argument("--out", default="out/animation.mp4", help="output .mp4 or .gif")
    p.add_argument("--audio", default=None, help="audio file to mux into the MP4")
    p.add_argument("--fps", type=float, default=25.0)
    p.add_argument("--size", type=int, default=256)
    p.set_defaults(func=_animate)


def main(argv=None) -> int:
    return run(build_parser("audio2exp", modules=("audio2exp.cli",),
                            description="Speech to facial expression, rendered. Run `audio2exp COMMAND --help`."), argv)


if __name__ == "__main__":
    sys.exit(main())
