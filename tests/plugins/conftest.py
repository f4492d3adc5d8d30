"""A micro-trained built-in model, trained once per test session (under two minutes)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def micro_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from shapes_lab.model.config import get_config
    from shapes_lab.model.train import RunLog, train

    run = tmp_path_factory.mktemp("micro-run")
    return train(get_config("micro"), run, None, RunLog(run / "log.txt"))


@pytest.fixture
def outputs(monkeypatch) -> list:
    """The model's outputs (numpy arrays) as either SD backend hands them to
    `pictures.put_back`."""
    import numpy as np

    from sd_backends import pictures

    seen: list = []
    original = pictures.put_back

    def spy(picture, made, *args, **kwargs):
        seen.append(np.array(made))
        return original(picture, made, *args, **kwargs)

    monkeypatch.setattr(pictures, "put_back", spy)
    return seen


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    """Run `studio` in-process with this test's data folder: (exit code, stdout, stderr)."""
    from studio.cli import main

    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "home"))

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run
