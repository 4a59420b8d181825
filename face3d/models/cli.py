"""``face3d model-sheet`` (a model's contact sheet) and ``face3d build-head`` (the bundled head from ICT-FaceKit)."""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "model-sheet",
        help="render a labelled contact sheet of a morphable model",
        description="Render the mean head (front, 3/4, side), +-3 sigma along the first identity "
        "components and every expression at weight 1 into one PNG.",
    )
    p.add_argument("--model", default="builtin", help="model spec: builtin, flame:PATH, ict:PATH, npz:PATH (default builtin)")
    p.add_argument("--out", default="docs/model_contact_sheet.png", help="output PNG (default docs/model_contact_sheet.png)")
    p.add_argument("--tile", type=int, default=200, help="side of one rendered view in pixels (default 200)")
    p.add_argument("--n-identity", type=int, default=6, help="identity components to show (default 6)")
    p.add_argument("--sigma", type=float, default=3.0, help="identity extremes in standard deviations (default 3)")
    p.add_argument("--backend", choices=("auto", "torch", "nvdiffrast", "pytorch3d"), default="auto",
                   help="face3d.render backend (auto: nvdiffrast on CUDA, else torch)")
    p.set_defaults(func=run)

    p = subparsers.add_parser(
        "build-head",
        help="build the bundled head (assets/builtin_head.npz) from an ICT-FaceKit FaceXModel folder",
        description="Build the compact bundled head from ICT-FaceKit (MIT): skin, mouth, teeth and eyes "
        "of ICT's topology, 100 identity modes, 53 expressions, measured jaw, painted albedo.",
    )
    build_head_parser(p)


def build_head_parser(p: argparse.ArgumentParser) -> None:
    """The flags of ``face3d build-head`` (also ``python -m face3d.models.ict_build``)."""
    p.add_argument("folder", help="ICT-FaceKit FaceXModel folder (generic_neutral_mesh.obj, identity*.obj, ...)")
    p.add_argument("--out", default=None, help="output .npz (default assets/builtin_head.npz)")
    p.set_defaults(func=_build_head)


def _build_head(args: argparse.Namespace) -> int:
    from face3d.models.ict_build import run as build

    return build(args)


def run(args: argparse.Namespace) -> int:
    from face3d.models import load_model
    from face3d.models.contact_sheet import ContactSheetConfig, make_contact_sheet

    cfg = ContactSheetConfig(tile=args.tile, n_identity=args.n_identity, sigma=args.sigma, backend=args.backend)
    path = make_contact_sheet(load_model(args.model), args.out, cfg)
    print(f"wrote {path}")
    return 0
