"""`studio info`: the same top-level keys for every tool's files, values as written, exit
codes 0, 2 or 3 only, and never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.foreign_images import FIELDS, collection, write_collection

from studio.api.commands import EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE
from studio.cli import main

KEYS = {"prompt", "negative_prompt", "seed", "steps", "guidance", "width", "height", "model"}
KEYS |= {"sampler", "source_format"}


def info(capsys: pytest.CaptureFixture[str], path: Path) -> tuple[int, dict | None, str]:
    code = main(["info", str(path), "--json"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == EXIT_OK else None), err


def test_info_json_of_every_collection_file(tmp_path: Path, capsys) -> None:
    for path, image in write_collection(tmp_path):
        code, data, _ = info(capsys, path)
        assert code == EXIT_OK and data is not None
        assert data.keys() >= KEYS
        assert {name: data[name] for name in FIELDS} == image.expected, image.name


def test_info_text_lists_values_and_notes(tmp_path: Path, capsys) -> None:
    image = next(i for i in collection() if i.name == "absurd_values.png")
    path = tmp_path / image.name
    path.write_bytes(image.data)
    assert main(["info", str(path)]) == EXIT_OK
    out = capsys.readouterr().out
    assert "prompt: an impossible request" in out
    assert "note: seed -5 is not a plausible value: left out" in out
    assert "steps:" not in out


@pytest.mark.parametrize(
    ("make", "code", "message"),
    [
        (lambda p: p.mkdir(), EXIT_USAGE, "is a folder"),
        (lambda p: None, EXIT_NOT_FOUND, "no such file"),
        (lambda p: p.write_bytes(b"not an image"), EXIT_USAGE, "not an image"),
        (lambda p: p.write_bytes(collection()[0].data[:-40]), EXIT_USAGE, "cut short"),
        (lambda p: p.write_bytes(b""), EXIT_USAGE, "not an image"),
    ],
)
def test_info_exit_codes(tmp_path: Path, capsys, make, code: int, message: str) -> None:
    path = tmp_path / "thing.png"
    make(path)
    assert main(["info", str(path)]) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_info_on_a_pipe_does_not_block(tmp_path: Path, capsys) -> None:
    pipe = tmp_path / "pipe.png"
    os.mkfifo(pipe)
    assert main(["info", str(pipe)]) == EXIT_USAGE
    assert "not a regular file" in capsys.readouterr().err


def test_info_of_an_unreadable_file_in_a_process(tmp_path: Path) -> None:
    path = tmp_path / "locked.png"
    path.write_bytes(collection()[0].data)
    path.chmod(0)
    if os.access(path, os.R_OK):  # root reads anything
        pytest.skip("this user can read a file without read permission")
    done = subprocess.run(
        [sys.executable, "-m", "studio", "info", str(path)], capture_output=True, text=True
    )
    assert done.returncode == EXIT_USAGE and "Traceback" not in done.stderr
