"""The ``avatars`` command line."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from face3d.cli import build_parser, run


def _turntable(args: argparse.Namespace) -> int:
    import face3d
    from avatars.turntable import TurntableConfig, sample_identities, turntable
    from audio2exp.video import write_video

    model = face3d.load_model(args.model)
    ident = sample_identities(model, 1, args.sigma, args.seed) if args.sigma > 0 else None
    frames = turntable(model, ident, cfg=TurntableConfig(frames=args.frames, size=args.size))
    write_video(args.out, frames, fps=args.fps)
    print(f"wrote {args.out} ({len(frames)} frames)", file=sys.stderr)
    return 0


def _sample(args: argparse.Namespace) -> int:
    import torch

    import face3d
    from avatars.turntable import sample_identities
    from face3d.geometry.mesh_io import Mesh, save_mesh

    model = face3d.load_model(args.model)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ids = sample_identities(model, args.n, args.sigma, args.seed)
    with torch.no_grad():
        verts = model(identity=ids).vertices
    for i, v in enumerate(verts):
        path = out / f"identity_{i:03d}.obj"
        save_mesh(path, Mesh(vertices=v.double().numpy(), faces=model.faces.numpy(),
                             uvs=model.uvs.numpy(), uv_faces=model.uv_faces.numpy()))
        print(path)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("turntable", help="render a 360° turntable video or GIF of a head",
                       description="Render a head of the model (mean, or a random identity with --sigma) "
                       "from all sides into an MP4 or GIF.")
    p.add_argument("--model", default="builtin", help="model spec: builtin | flame:PATH | ict:PATH")
    p.add_argument("--out", default="out/turntable.mp4", help="output .mp4 or .gif")
    p.add_argument("--frames", type=int, default=36)
    p.add_argument("--fps", type=int, default=12)
    p.add_argument("--size", type=int, default=256, help="image size in pixels")
    p.add_argument("--sigma", type=float, default=0.0, help="draw a random identity with this prior scale (0 = mean head)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_turntable)

    p = sub.add_parser("sample", help="export random identities as OBJ meshes (mm, with UVs)")
    p.add_argument("--model", default="builtin")
    p.add_argument("--n", type=int, default=4)
    p.add_argument("--sigma", type=float, default=1.0, help="prior scale in standard deviations")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="out/identities")
    p.set_defaults(func=_sample)


def main(argv=None) -> int:
    return run(build_parser("avatars", modules=("avatars.cli", "avatars.sketch.cli", "avatars.portrait.cli"),
                            description="Face avatars on face3d's models. Run `avatars COMMAND --help`."), argv)


if __name__ == "__main__":
    sys.exit(main())
