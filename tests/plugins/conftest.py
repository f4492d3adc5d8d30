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
