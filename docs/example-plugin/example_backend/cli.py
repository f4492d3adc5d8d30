"""`studio gradient-colours`: the colours the example backend knows (a plugin's command)."""

from __future__ import annotations

import argparse
from typing import Any

from studio.api import EXIT_OK, EXIT_USAGE, CliError, emit


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    cmd = commands.add_parser(
        "gradient-colours", parents=[common], help="the colours example-gradient knows"
    )
    cmd.add_argument("--starting", default="", help="only those starting with this")
    cmd.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from example_backend.backend import colour_table  # imported late: --help stays instant

    table = colour_table()
    names = [name for name in table if name.startswith(args.starting)]
    if not names:
        raise CliError(f"no colour starts with {args.starting!r}", EXIT_USAGE)
    rgb = {name: [int(v) for v in table[name]] for name in names}
    emit(args, rgb, "\n".join(f"{name}  {tuple(rgb[name])}" for name in names))
    return EXIT_OK
