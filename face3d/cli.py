"""The ``face3d`` command line.

Each feature lives in a command module that exposes ``register(subparsers)``; this file only
assembles them, so ``face3d --help`` lists every subcommand and a feature's flags live next to its
code. Command modules import their heavy dependencies inside the functions they run.
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES = (
    "face3d.demo",
    "face3d.models.cli",
    "face3d.reconstruct.cli",
    "face3d.stabilize.cli",
    "face3d.trainset_cli",
)


def build_parser(prog: str = "face3d", modules=COMMAND_MODULES, description: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description or (
            "Morphable head models, differentiable rendering, metric reconstruction and "
            "stabilization of 3D faces. Run `face3d COMMAND --help` for each command."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in modules:
        importlib.import_module(name).register(sub)
    return parser


def run(parser: argparse.ArgumentParser, argv=None) -> int:
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    from face3d.scale import RayConnectError  # light: imports no Ray

    try:
        return int(args.func(args) or 0)
    except RayConnectError as e:
        print(f"{parser.prog} {args.command}: {e}", file=sys.stderr)
        return 2


def main(argv=None) -> int:
    return run(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
