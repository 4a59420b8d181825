"""``face3d demo``: the README's main job on bundled defaults.

Reconstructs the astronaut photo that ships with scikit-image (a public-domain photo of a real
face) into a metric head and writes the mesh, parameters, overlay and measurements; also renders
the bundled head model from three sides.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the main job on bundled defaults (astronaut photo -> metric head)",
        description="Reconstruct skimage's astronaut photo with the bundled head and render the "
        "bundled head. Writes everything under --out.",
    )
    p.add_argument("--out", default="out/demo", help="output folder (default: out/demo)")
    p.add_argument("--model", default="builtin", help="model spec: builtin (the bundled head) | character | flame:PATH | ict:PATH")
    p.add_argument("--skip-reconstruct", action="store_true", help="only render the model")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    import face3d
    from face3d.viz import grid, head_framing, render_preview, save_png

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = face3d.load_model(args.model)
    print(f"model {model.name}: {model.n_vertices} vertices, {model.n_identity} identity and "
          f"{model.n_expression} expression components", file=sys.stderr)
    with torch.no_grad():
        v = model().vertices[0]
    center, radius = head_framing(model, v)
    views = render_preview(v, model.faces, yaw_deg=(0.0, 45.0, 90.0), center=center, radius=radius,
                           vertex_colors=model.albedo)
    save_png(out / "model_views.png", grid(list(views), cols=3, labels=["front", "three-quarter", "side"]))
    print(f"wrote {out / 'model_views.png'}", file=sys.stderr)
    if args.skip_reconstruct:
        return 0
    from face3d.cli import main

    code = main(["reconstruct", "--example", "astronaut", "--out", str(out), "--model", args.model])
    for meas in sorted(out.glob("*_measurements.json")):
        print(f"{meas}:")
        print(json.dumps(json.loads(meas.read_text()), indent=2))
    return code
