"""The example plugin of docs/writing-a-backend.md keeps the contract the page describes.

It is not installed in the development environment; test_wheels.py installs its wheel."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from studio.api import EXIT_OK, EXIT_USAGE, Backend, Cancelled, CliError, GenerationRequest

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "example-plugin"


class Context:
    def __init__(self, cancel_after: int | None = None) -> None:
        self.steps: list[tuple[int, int]] = []
        self.cancel_after = cancel_after

    def check_cancelled(self) -> None:
        if self.cancel_after is not None and len(self.steps) >= self.cancel_after:
            raise Cancelled

    def progress(self, step: int, total: int) -> None:
        self.steps.append((step, total))
        self.check_cancelled()

    def preview(self, image: object) -> None:
        pass


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.syspath_prepend(str(EXAMPLE))
    import example_backend.backend
    import example_backend.cli

    yield example_backend
    for name in [m for m in sys.modules if m.partition(".")[0] == "example_backend"]:
        del sys.modules[name]


def test_the_example_backend_keeps_the_contract(example: ModuleType) -> None:
    backend = example.backend.GradientBackend()
    assert isinstance(backend, Backend)
    backend.load("")
    request = GenerationRequest("red and blue", seed=2**32 - 2, count=3, width=96, height=72)
    assert backend.capabilities().problems(request) == []
    ctx = Context()
    candidates = backend.generate(request, ctx)
    assert [c.seed for c in candidates] == [2**32 - 2, 2**32 - 1, 0]  # every one a valid seed
    assert ctx.steps[-1] == (len(ctx.steps), len(ctx.steps)) and len(ctx.steps) == 3 * 3
    assert all(c.image.shape == (72, 96, 3) and c.image.dtype == np.uint8 for c in candidates)
    alone = backend.generate(request.replace(seed=2**32 - 1, count=1), Context())
    assert np.array_equal(alone[0].image, candidates[1].image)  # image i: its seed's alone
    with pytest.raises(Cancelled):
        backend.generate(request, Context(cancel_after=2))
    assert backend.capabilities().problems(request.replace(width=100, count=9, candidates=9))
    with pytest.raises(FileNotFoundError):
        backend.load("no-such-model")


def test_the_example_command(example: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true")
    example.cli.register(parser.add_subparsers(), common)
    args = parser.parse_args(["gradient-colours", "--starting", "gr", "--json"])
    assert args.run(args) == EXIT_OK
    assert json.loads(capsys.readouterr().out) == {"green": [40, 170, 70], "grey": [128] * 3}
    args = parser.parse_args(["gradient-colours", "--starting", "zz"])
    with pytest.raises(CliError) as raised:
        args.run(args)
    assert raised.value.code == EXIT_USAGE
