"""`studio generate`'s progress on stderr, through the real CLI and engine with the fake
backend: plain lines when piped, one line rewritten in place on a terminal."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys

import pytest

from studio.api import EXIT_OK
from studio.cli import main

GENERATE = ["generate", "a fake", "--backend", "fake", "--size", "16x16", "--count", "2"]
PHASES = ["--model", "big", "--steps", "3", "--option", "decode_tiles=2"]


@pytest.fixture
def env(install_plugins) -> dict[str, str]:
    return install_plugins({"fake": "fake_backend:FakeBackend"})


def test_piped_every_phase_is_a_plain_line(env, capsys) -> None:
    assert main([*GENERATE, *PHASES]) == EXIT_OK
    lines = capsys.readouterr().err.splitlines()
    loading = [f"loading {tenth / 10 * 4.27:.2f} / 4.27 GB" for tenth in range(11)]
    assert lines == [
        "queued",
        "loading",
        *loading,  # the fake reads its 4.27 GB in tenths: each is a line
        "running",
        "step 1/3",
        "step 2/3",
        "step 3/3",
        "decoding",
        "decoding tile 1/2",
        "decoding tile 2/2",
        "saving",
        "done",
    ]


def test_json_keeps_stderr_quiet(env, capsys) -> None:
    assert main([*GENERATE, *PHASES, "--json"]) == EXIT_OK
    out, err = capsys.readouterr()
    assert err == "" and len(json.loads(out)["images"]) == 2


def test_on_a_terminal_one_line_is_rewritten(env, tmp_path) -> None:
    ours, theirs = pty.openpty()
    command = [sys.executable, "-m", "studio", *GENERATE, *PHASES, "--data-dir", str(tmp_path)]
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=theirs) as done:
        os.close(theirs)
        seen = b""
        while True:
            try:
                chunk = os.read(ours, 4096)
            except OSError:  # the other end closed: the process ended
                break
            if not chunk:
                break
            seen += chunk
        assert done.wait(120) == EXIT_OK, seen
    os.close(ours)
    shown = [part.rstrip() for part in seen.decode().split("\r") if part.strip()]
    texts = [line.lstrip("# ") for line in shown]
    assert "loading 1.28 / 4.27 GB" in texts and "loading 4.27 / 4.27 GB" in texts
    assert texts.index("step 3/3") < texts.index("decoding") < texts.index("decoding tile 2/2")
    assert texts.index("decoding tile 2/2") < texts.index("saving")
    assert shown[texts.index("step 3/3")].startswith("#" * 30)  # the bar, full
    assert seen.count(b"\n") <= 2  # one line rewritten, ended once (a pty writes \r\n)
