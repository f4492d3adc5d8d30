"""What a plugin's CLI command needs: errors with exit codes, output, and the core.

A plugin adds commands through the `studio.commands` entry-point group: a function
`register(commands, common)` that adds argparse subparsers (`common` carries `--json` and
`--data-dir`) and sets `run` to a function of the parsed arguments returning an exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from studio.core.app import Core

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class CliError(Exception):
    """Ends a command: `studio: MESSAGE` on stderr and exit with `code`."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def open_core(args: argparse.Namespace, executor: str = "thread") -> Core:
    """The core for `--data-dir` (a context manager: `with open_core(args) as core:`),
    its backends run by `executor` (see `Core.open`). Imported late, so that building
    the parser (and `--help`) stays instant."""
    from studio.core.app import Core

    try:
        core = Core.open(args.data_dir, executor=executor)
    except ValueError as error:
        raise CliError(str(error), EXIT_USAGE) from None
    if core.recovery is not None:
        print(f"studio: {core.recovery.message()}", file=sys.stderr)
    return core


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    """Print `data` as JSON with --json, else `text`."""
    print(json.dumps(data, ensure_ascii=False, indent=2) if args.json else text)
