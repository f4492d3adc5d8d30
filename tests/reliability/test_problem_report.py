"""A problem report holds the log, versions and backends; prompts only when asked."""

from __future__ import annotations

import logging
import zipfile

import pytest
from PIL import Image

from studio.api import EXIT_OK
from studio.cli import main
from studio.core.app import Core
from studio.core.metadata import ImageMetadata
from studio.core.request import GenerationRequest

SECRET = "a portrait of my neighbour's secret garden"


@pytest.mark.reliability
def test_report_leaves_prompts_out_unless_asked(tmp_path, install_plugins) -> None:
    install_plugins()
    home = tmp_path / "home"
    core = Core.open(home)
    try:
        request = GenerationRequest(SECRET, negative_prompt="blurry faces", seed=1, backend="fake")
        core.history.save([(Image.new("RGB", (8, 8)), ImageMetadata(request))], "job")
        logging.getLogger("studio.test").error("job 1 failed for %r (blurry faces)", SECRET)
        core.log_handler.flush()
    finally:
        core.close()
    out = tmp_path / "report.zip"
    assert main(["report", "--data-dir", str(home), "--out", str(out)]) == EXIT_OK
    with zipfile.ZipFile(out) as archive:
        names = archive.namelist()
        log = archive.read("studio.log").decode()
        versions = archive.read("versions.txt").decode()
        backends = archive.read("backends.txt").decode()
    assert {"versions.txt", "backends.txt", "studio.log"} <= set(names)
    assert 'job 1 failed for "[prompt]" ([prompt])' in log and SECRET not in log
    assert "Studio " in versions and "Python " in versions and "fake:" in backends
    assert main(["report", "--data-dir", str(home), "--out", str(out), "--with-prompts"]) == 0
    with zipfile.ZipFile(out) as archive:
        assert SECRET in archive.read("studio.log").decode()
