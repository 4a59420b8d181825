"""The ``audio2exp`` command line (flags -> config dataclasses -> library calls)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from face3d.cli import build_parser, run


def _channels(args: argparse.Namespace) -> int:
    import face3d

    model = face3d.load_model(args.model)
    print(f"{model.name}: {model.n_expression} expression channels (the output of audio-to-expression)")
    for i, n in enumerate(model.expression_names):
        print(f"{i:3d}  {n}")
    return 0


def _render(args, model, seq_np: dict, audio_path) -> None:
    import torch

    from audio2exp.animate import SEQUENCE_KEYS, AnimationConfig, render_sequence
    from audio2exp.video import write_video

    cfg = AnimationConfig(size=args.size, fps=args.fps)
    seq = {k: torch.as_tensor(v) for k, v in seq_np.items() if k in SEQUENCE_KEYS}
    frames = render_sequence(model, seq, cfg=cfg)
    gif = str(args.out).lower().endswith(".gif")  # a GIF carries no sound
    write_video(args.out, frames, fps=cfg.fps, audio=None if gif else audio_path)
    print(f"wrote {args.out} ({len(frames)} frames at {cfg.fps} fps)", file=sys.stderr)


def _from_audio(args, audio_path) -> int:
    import face3d
    from audio2exp.api import predict_file, save_csv, save_sequence

    model = face3d.load_model(args.model)
    seq = predict_file(audio_path, model, weights=args.weights, fps=args.fps, blinks=not args.no_blinks,
                       head_motion=not args.no_head_motion)
    if args.sequence_out:
        save_sequence(args.sequence_out, seq)
        print(f"wrote {args.sequence_out}", file=sys.stderr)
    if args.csv_out:
        save_csv(args.csv_out, seq, model.expression_names)
        print(f"wrote {args.csv_out}", file=sys.stderr)
    if args.out:
        _render(args, model, seq, audio_path)
    return 0


def _animate(args: argparse.Namespace) -> int:
    import face3d
    from audio2exp.animate import load_sequence

    if str(args.input).lower().endswith(".npz"):
        model = face3d.load_model(args.model)
        seq = load_sequence(args.input, model)
        if args.audio is not None and str(args.out).lower().endswith(".gif"):
            raise SystemExit("--audio: a GIF cannot carry sound; write an .mp4")
        _render(args, model, {k: v.numpy() for k, v in seq.items()}, args.audio)
        return 0
    if args.audio is not None:
        raise SystemExit("--audio is for .npz sequences; an audio input is muxed into the video itself")
    return _from_audio(args, args.input)


def _speak(args: argparse.Namespace) -> int:
    import tempfile
    import wave

    import numpy as np

    from audio2exp.corpus import synthesize

    u = synthesize(args.text, args.voice, args.rate)
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(args.wav_out) if args.wav_out else Path(tmp) / "speech.wav"
        wav.parent.mkdir(parents=True, exist_ok=True)
        with wave.open(str(wav), "wb") as w:
            w.setnchannels(1), w.setsampwidth(2), w.setframerate(u.sample_rate)
            w.writeframes((np.clip(u.audio, -1, 1) * 32767).astype(np.int16).tobytes())
        return _from_audio(args, wav)


def _train(args: argparse.Namespace) -> int:
    from audio2exp.train import TrainConfig, train_and_save

    from face3d.scale import ray_available

    if args.ray is not None and not ray_available("train", "audio2exp"):
        return 2
    cfg = TrainConfig(model=args.model, n_utterances=args.n_utterances, steps=args.steps, threads=args.threads,
                      augment=not args.no_augment, seed=args.seed, checkpoint_every=args.checkpoint_every,
                      **{k: getattr(args, k) for k in ("batch", "crop", "d_model", "n_layers", "dropout", "n_augmented",
                                                       "lr", "log_every") if getattr(args, k) is not None})
    import face3d

    out = args.out or f"assets/audio2exp_{face3d.load_model(args.model).name}.pt"
    train_and_save(cfg, out, ray=args.ray, workers=args.workers)
    return 0


def _eval(args: argparse.Namespace) -> int:
    import json

    import torch

    import face3d
    from audio2exp.api import load_predictor
    from audio2exp.evaluate import EvalConfig, evaluate_real, evaluate_synthetic, format_table
    from audio2exp.rig import model_rig

    torch.set_num_threads(args.threads)
    model = face3d.load_model(args.model)
    pred = load_predictor(model, args.weights)
    rig = model_rig(model)
    cfg = EvalConfig(n_utterances=args.n_utterances, seed=args.seed, augment=not args.clean)
    syn = evaluate_synthetic(model, rig, pred, cfg)
    real = evaluate_real(model, rig, pred, cfg) if not args.no_real else None
    print(format_table(syn, real))
    print(f"held-out synthetic: {syn['n_utterances']} utterances, {syn['audio_seconds']:.0f} s, {syn['n_frames']} frames "
          f"at {cfg.fps} fps" + (f"; real: {', '.join(real['recordings'])} ({real['audio_seconds']:.0f} s)" if real else ""))
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps({"synthetic": syn, "real": real}, indent=1))
    return 0


def _audio_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="builtin", help="model spec: builtin | character | flame:PATH | ict:PATH")
    p.add_argument("--weights", default=None, help="network weights (default assets/audio2exp_<model>.pt)")
    p.add_argument("--out", default=None, help="output .mp4 (with the audio) or .gif")
    p.add_argument("--sequence-out", default=None, help="also write the sequence as .npz")
    p.add_argument("--csv-out", default=None, help="also write an ARKit-style CSV (one column per channel)")
    p.add_argument("--fps", type=float, default=25.0)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--no-blinks", action="store_true", help="no procedural blinks")
    p.add_argument("--no-head-motion", action="store_true", help="no slight head motion")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("channels", help="list the expression channels of a model")
    p.add_argument("--model", default="builtin", help="model spec: builtin | character | flame:PATH | ict:PATH")
    p.set_defaults(func=_channels)

    p = sub.add_parser("animate", help="speech audio (any ffmpeg-readable file) or an .npz sequence -> MP4/GIF",
                       description="Animate a talking head from an audio file (any format, rate, channel count; "
                       "its sound is muxed into the MP4), or render a sequence file with 'expression' (T, n_expression) "
                       "and optional 'jaw', 'neck', 'rotation' (T, 3) and 'eyes' (T, 6) arrays.")
    p.add_argument("input", help="audio file, or .npz sequence file")
    _audio_flags(p)
    p.add_argument("--audio", default=None, help="for an .npz input: audio file to mux into the MP4")
    p.set_defaults(func=_animate, out="out/animation.mp4")

    p = sub.add_parser("speak", help="text -> espeak-ng speech -> talking head MP4")
    p.add_argument("text")
    _audio_flags(p)
    p.add_argument("--voice", default="en-us", help="espeak-ng voice, e.g. en-us, en, en-us+f3")
    p.add_argument("--rate", type=int, default=165, help="words per minute")
    p.add_argument("--wav-out", default=None, help="also keep the synthesized speech as WAV")
    p.set_defaults(func=_speak, out="out/talk.mp4")

    p = sub.add_parser("train", help="train the audio-to-expression network from scratch (synthetic corpus)")
    p.add_argument("--model", default="builtin")
    p.add_argument("--out", default=None, help="default assets/audio2exp_<model>.pt")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--checkpoint-every", type=int, default=0, help="also save every N steps")
    p.add_argument("--n-utterances", type=int, default=400)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-augment", action="store_true", help="train on clean synthetic speech only")
    p.add_argument("--batch", type=int, help="crops per step (default 12); under torchrun the global batch, split "
                                             "over the processes")
    p.add_argument("--crop", type=int, help="network frames per crop (default 120)")
    p.add_argument("--n-augmented", type=int, help="degraded copies per utterance (default 2)")
    p.add_argument("--d-model", type=int, help="network width (default 96)")
    p.add_argument("--n-layers", type=int, help="network layers (default 3)")
    p.add_argument("--dropout", type=float, help="dropout (default 0.1)")
    p.add_argument("--lr", type=float, help="peak learning rate (default 2e-3)")
    p.add_argument("--log-every", type=int, help="steps between log lines (default 100)")
    from face3d.scale import add_ray_flags

    add_ray_flags(p, "speech corpus (utterance by utterance)", shared_out=False, worker_threads="one torch thread")
    p.set_defaults(func=_train)

    p = sub.add_parser("eval", help="LVE / viseme accuracy on held-out synthetic speech, closure rates on real speech")
    p.add_argument("--model", default="builtin")
    p.add_argument("--weights", default=None)
    p.add_argument("--n-utterances", type=int, default=40)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--clean", action="store_true", help="held-out set without augmentation")
    p.add_argument("--no-real", action="store_true", help="skip the real recordings (they are fetched with pip)")
    p.add_argument("--json-out", default=None)
    p.set_defaults(func=_eval)


def main(argv=None) -> int:
    return run(build_parser("audio2exp", modules=("audio2exp.cli",),
                            description="Speech to facial expression, rendered. Run `audio2exp COMMAND --help`."), argv)


if __name__ == "__main__":
    sys.exit(main())
