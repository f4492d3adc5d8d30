"""The `studio` command run in-process by tests, as a user runs it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from studio.api import EXIT_OK

Cli = Callable[..., tuple[int, str, str]]  # (*args) -> (exit code, stdout, stderr)


def listed_models(cli: Cli) -> dict[str, dict]:
    """`studio models list --json`, by file name."""
    code, out, _ = cli("models", "list", "--json")
    assert code == EXIT_OK
    return {Path(row["path"]).name: row for row in json.loads(out)}
