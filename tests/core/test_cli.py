"""The CLI end to end: real engine, history, metadata and the fake backend plugin."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from studio.api import EXIT_FAILED, EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE
from studio.cli import main


@pytest.fixture
def env(install_plugins) -> dict[str, str]:
    return install_plugins({"fake": "fake_backend:FakeBackend", "broken": "broken_import:X"})


def run_json(capsys, *args: str) -> object:
    code = main([*args, "--json"])
    out = capsys.readouterr().out
    assert code == EXIT_OK, out
    return json.loads(out)


def generate(capsys, *extra: str) -> dict:
    args = ["generate", "two blue squares", "--backend", "fake", "--size", "16x16", *extra]
    return run_json(capsys, *args)  # type: ignore[return-value]


def test_generate_saves_to_history_and_writes_files_with_metadata(env, capsys, tmp_path) -> None:
    out = tmp_path / "out"
    result = generate(
        capsys,
        "--count",
        "2",
        "--candidates",
        "5",
        "--seed",
        "42",
        "--steps",
        "3",
        "--guidance",
        "2.5",
        "--negative",
        "blurry",
        "--out",
        str(out),
        "--format",
        "webp",
    )
    assert result["request"]["seed"] == 42 and result["request"]["candidates"] == 5
    images = result["images"]
    assert len(images) == 2
    for image in images:
        exported = Path(image["exported"])
        assert exported.parent == out and exported.suffix == ".webp"
        assert Path(image["path"]).is_file()  # the history copy
    info = run_json(capsys, "info", images[0]["exported"])
    assert info["prompt"] == "two blue squares"
    assert info["negative_prompt"] == "blurry"
    assert (info["steps"], info["guidance"], info["width"]) == (3, 2.5, 16)
    assert info["seed"] == images[0]["seed"]

    listed = run_json(capsys, "history", "list")
    assert [e["id"] for e in listed] == [i["id"] for i in images]  # one job: best first
    found = run_json(capsys, "history", "search", "blue")
    assert len(found) == 2
    assert run_json(capsys, "history", "search", "green") == []


def test_generate_prints_paths_for_scripts(env, capsys) -> None:
    assert main(["generate", "a circle", "--backend", "fake", "--size", "16x16"]) == EXIT_OK
    lines = capsys.readouterr().out.split()
    assert len(lines) == 4  # the default count
    assert all(Path(line).is_file() for line in lines)


def test_history_show_export_delete(env, capsys, tmp_path) -> None:
    (image,) = generate(capsys, "--count", "1", "--seed", "7")["images"]
    shown = run_json(capsys, "history", "show", str(image["id"]))
    assert shown["request"]["prompt"] == "two blue squares"
    assert shown["model_hash"] == "0123456789"

    folder = tmp_path / "exported"
    (path,) = run_json(
        capsys, "history", "export", str(image["id"]), "--out", str(folder), "--format", "jpg"
    )
    assert Image.open(path).format == "JPEG"
    assert run_json(capsys, "info", path)["seed"] == image["seed"]  # the best of 16 seeds
    assert 7 <= image["seed"] < 7 + 16

    assert run_json(capsys, "history", "delete", str(image["id"])) == {"deleted": 1}
    assert not Path(image["path"]).exists()
    assert main(["history", "show", str(image["id"])]) == EXIT_NOT_FOUND
    assert "no history entry with id" in capsys.readouterr().err


def test_backends_lists_status_models_and_errors(env, capsys) -> None:
    rows = {row["id"]: row for row in run_json(capsys, "backends")}
    assert rows["fake"]["status"] == "ready"
    assert rows["fake"]["models"][0]["hash"] == "0123456789"
    assert rows["broken"]["status"] == "failed"
    assert rows["broken"]["error"] == "this plugin needs a library that is not installed"
    assert "ImportError" in rows["broken"]["traceback"]  # the class name is for the details


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["generate", "   ", "--backend", "fake"], EXIT_USAGE, "the prompt is empty"),
        (["generate", "x", "--backend", "fake", "--size", "12x16"], EXIT_USAGE, "multiple of 8"),
        (
            ["generate", "x", "--backend", "fake", "--count", "9", "--candidates", "2"],
            EXIT_USAGE,
            "candidates must be from",
        ),
        (["generate", "x", "--backend", "broken"], EXIT_FAILED, "this plugin needs a library"),
        (
            ["generate", "a circle", "--backend", "fake", "--model", "zzz", "--size", "16x16"],
            EXIT_FAILED,  # found when the backend loads it
            "no model named 'zzz'",
        ),
        (["info", "/no/such/file.png"], EXIT_NOT_FOUND, "no such file"),
    ],
)
def test_errors_have_exit_codes_and_messages(env, capsys, args, code, message) -> None:
    assert main(args) == code
    assert message in capsys.readouterr().err


def test_info_on_a_non_image(tmp_path, capsys) -> None:
    fake_png = tmp_path / "notes.png"
    fake_png.write_text("just text")
    assert main(["info", str(fake_png)]) == EXIT_USAGE
    assert capsys.readouterr().err.startswith("studio: ")


def test_python_dash_m_studio_in_a_subprocess(env, tmp_path) -> None:
    home = tmp_path / "elsewhere"
    command = [
        sys.executable,
        "-m",
        "studio",
        "generate",
        "a red heart",
        "--backend",
        "fake",
        "--size",
        "16x16",
        "--count",
        "1",
        "--data-dir",
        str(home),
        "--json",
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == EXIT_OK, done.stderr
    (image,) = json.loads(done.stdout)["images"]
    assert Path(image["path"]).is_relative_to(home)
    unknown = subprocess.run(
        [
            sys.executable,
            "-m",
            "studio",
            "generate",
            "x",
            "--backend",
            "nope",
            "--data-dir",
            str(home),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert unknown.returncode == EXIT_USAGE
    assert "unknown backend 'nope' (installed: " in unknown.stderr


def test_generate_without_any_backend(monkeypatch, capsys) -> None:
    monkeypatch.setattr("studio.core.registry.entry_points", lambda group: [])
    assert main(["generate", "a red circle"]) == EXIT_FAILED
    assert "no generation backend is installed" in capsys.readouterr().err
