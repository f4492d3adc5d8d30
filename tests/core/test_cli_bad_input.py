"""The CLI given what a new user gives it: unusable folders, prompts the model cannot read,
bad templates and numbers, and the settings the app has (sampler, backend options)."""

from __future__ import annotations

import json
import os
import pickle
import stat
import tempfile
from pathlib import Path

import pytest

from studio.api import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from studio.cli import build_parser, main
from studio.core.backend import Capabilities
from studio.core.request import GenerationRequest

FAKE = ["--backend", "fake", "--size", "16x16"]


@pytest.fixture
def env(install_plugins) -> None:
    install_plugins({"fake": "fake_backend:FakeBackend"})


def run_json(capsys, *args: str) -> object:
    code = main([*args, "--json"])
    captured = capsys.readouterr()
    assert code == EXIT_OK, captured.err
    return json.loads(captured.out)


def failing(capsys, args: list[str], code: int) -> str:
    """Run the CLI, expect `code`, and return stderr: a message at the end (after any
    progress lines), no traceback."""
    assert main(args) == code
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("studio: ") and "Traceback" not in err
    return err


# -- the data folder ----------------------------------------------------------------------


def test_a_data_dir_that_is_a_file_is_refused_with_a_message(tmp_path, capsys) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder")
    for data_dir in (a_file, a_file / "below"):
        err = failing(capsys, ["history", "list", "--data-dir", str(data_dir)], EXIT_USAGE)
        assert f"{a_file} is a file, not a folder" in err


def test_a_data_dir_that_cannot_be_written_is_refused(tmp_path, capsys, monkeypatch) -> None:
    def no_writing(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "TemporaryFile", no_writing)  # as a read-only folder
    err = failing(capsys, ["history", "list", "--data-dir", str(tmp_path / "d")], EXIT_USAGE)
    assert f"cannot keep files in {tmp_path / 'd' / 'data'}: Permission denied" in err


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes anyway")
def test_a_read_only_data_dir_is_refused(tmp_path, capsys) -> None:
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        err = failing(capsys, ["history", "list", "--data-dir", str(folder)], EXIT_USAGE)
    finally:
        folder.chmod(stat.S_IRWXU)
    assert "Permission denied" in err


# -- prompts the model cannot read --------------------------------------------------------


def test_a_prompt_of_only_unknown_words_is_refused_before_loading(env, capsys) -> None:
    import fake_backend

    fake_backend.CALLS.clear()
    err = failing(capsys, ["generate", "zzz xyzzy zzz", *FAKE], EXIT_USAGE)
    assert "the model knows none of the words of this prompt: zzz, xyzzy" in err
    assert fake_backend.CALLS == []  # never loaded


def test_a_backend_that_fails_reading_the_prompt_is_a_message(env, capsys, monkeypatch) -> None:
    import fake_backend

    def broken(self, prompt: str) -> list[str]:
        raise KeyError("vocabulary")

    monkeypatch.setattr(fake_backend.FakeBackend, "unknown_words", broken)
    err = failing(capsys, ["generate", "a circle", *FAKE], EXIT_FAILED)
    assert "backend 'fake' failed unexpectedly: 'vocabulary' (details in the log)" in err
    assert "KeyError" not in err  # a class name says nothing to a user


def test_unknown_words_beside_known_ones_are_a_note(env, capsys) -> None:
    assert main(["generate", "a zzz circle", *FAKE, "--count", "1", "--json"]) == EXIT_OK
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["unknown_words"] == ["zzz"] and result["ignored_from"] is None
    assert "note: the model does not know (and ignores): zzz" in captured.err


def test_words_past_the_models_limit_are_named(env, capsys) -> None:
    prompt = "a red circle " * 20  # 60 words: the fake model reads 50
    result = run_json(capsys, "generate", prompt, *FAKE, "--count", "1")
    cut = len("a red circle " * 16) + len("a red ")  # the 51st word
    assert result["ignored_from"] == cut
    assert len(result["images"]) == 1
    main(["generate", prompt, *FAKE, "--count", "1"])
    err = capsys.readouterr().err
    assert "reads only the first 50 words of a prompt" in err
    assert f"from character {cut}: 'circle a red circle" in err


def test_known_words_only_past_the_limit_are_refused(env, capsys) -> None:
    err = failing(capsys, ["generate", "zzz " * 50 + "a circle", *FAKE], EXIT_USAGE)
    assert "none of the words of the first 50 words of this prompt (all it reads): zzz" in err


# -- history ------------------------------------------------------------------------------


def test_history_export_files_follow_the_umask(env, capsys, tmp_path) -> None:
    (image,) = run_json(capsys, "generate", "a circle", *FAKE, "--count", "1")["images"]
    for mask, mode in ((0o022, 0o644), (0o027, 0o640)):
        old = os.umask(mask)
        try:
            out = tmp_path / f"out-{mask:o}"
            (path,) = run_json(capsys, "history", "export", str(image["id"]), "--out", str(out))
        finally:
            os.umask(old)
        assert stat.S_IMODE(Path(path).stat().st_mode) == mode


def test_a_bad_export_template_is_refused_and_makes_nothing(env, capsys, tmp_path) -> None:
    (image,) = run_json(capsys, "generate", "a circle", *FAKE, "--count", "1")["images"]
    out = tmp_path / "out"
    for template in ("{nope}", "{date"):
        args = ["history", "export", str(image["id"]), "--out", str(out), "--name", template]
        err = failing(capsys, args, EXIT_USAGE)
        assert "--name: " in err and "template" in err
        assert not out.exists()


@pytest.mark.parametrize("flag", ["--limit", "--offset"])
def test_history_list_refuses_negative_numbers(capsys, flag) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["history", "list", flag, "-1"])
    assert exited.value.code == EXIT_USAGE
    assert f"argument {flag}: must be " in capsys.readouterr().err


# -- numbers, help ------------------------------------------------------------------------


def test_too_many_images_is_one_message(env, capsys) -> None:
    err = failing(capsys, ["generate", "a circle", *FAKE, "--count", "100000"], EXIT_USAGE)
    assert "images to show must be from 1 to 64 (got 100000)" in err
    assert "candidates" not in err  # not given, so not named


def test_steps_for_a_backend_without_steps_say_so() -> None:
    problems = Capabilities(max_steps=0).problems(GenerationRequest("a circle", steps=5))
    assert problems == ["this backend has no steps to set"]
    assert Capabilities(max_steps=0).problems(GenerationRequest("a circle")) == []
    assert Capabilities(max_steps=9).problems(GenerationRequest("x", steps=10)) == [
        "steps must be at most 9"
    ]


def test_help_explains_seed_steps_guidance_and_shows_defaults() -> None:
    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    generate = " ".join(commands["generate"].format_help().split())
    assert (
        "--seed SEED 0 to 4294967295: the same seed and settings make the same images" in generate
    )
    assert "--steps STEPS sampling steps" in generate and "(default: the backend's)" in generate
    assert "--guidance CFG how closely to follow the prompt" in generate
    assert "--format {png,jpg,webp} of the files in --out (default: png)" in generate
    listing = " ".join(commands["history"]._subparsers._group_actions[0].choices["list"]
                       .format_help().split())  # fmt: skip
    assert "--limit LIMIT entries to list (default: 50)" in listing
    assert "(default: 0)" in listing and "(default: None)" not in listing


# -- sampler and backend options ----------------------------------------------------------


def test_sampler_and_options_go_into_the_request(env, capsys) -> None:
    args = ["generate", "a circle", *FAKE, "--count", "1", "--sampler", "FAKE"]
    args += ["--option", "step_s=0", "--option", "note=two words", "--option", "on=true"]
    request = run_json(capsys, *args)["request"]
    assert request["options"] == {"sampler": "fake", "step_s": 0, "note": "two words", "on": True}
    rows = {row["id"]: row for row in run_json(capsys, "backends")}
    assert rows["fake"]["samplers"] == ["fake"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--sampler", "Euler a"], "backend 'fake' has no sampler 'Euler a' (its samplers: fake)"),
        (["--option", "no-equals"], "--option takes KEY=VALUE (got 'no-equals')"),
        (["--option", "=3"], "--option takes KEY=VALUE"),
        (["--backend", "nope"], "unknown backend 'nope' (installed: "),
    ],
)
def test_a_bad_sampler_option_or_backend_is_refused(env, capsys, flags, message) -> None:
    assert message in failing(capsys, ["generate", "a circle", *FAKE, *flags], EXIT_USAGE)


# -- models -------------------------------------------------------------------------------


def test_adding_a_folder_counts_only_the_models_it_can_use(capsys, tmp_path) -> None:
    folder = tmp_path / "junk"
    folder.mkdir()
    (folder / "old.ckpt").write_bytes(pickle.dumps({"weights": 1}))  # a pickle: refused
    (folder / "notes.txt").write_text("no model")
    result = run_json(capsys, "models", "add", str(folder))
    assert (result["models"], result["refused"]) == (0, 1)
    main(["models", "add", str(folder)])
    out = capsys.readouterr().out
    assert "(0 models in it; 1 refused: see `studio models list`)" in out


# -- where the images are when --out fails ------------------------------------------------


def test_out_that_cannot_be_written_says_where_the_images_are(env, capsys, tmp_path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("in the way")
    args = ["generate", "a circle", *FAKE, "--count", "2", "--out", str(blocked)]
    err = failing(capsys, args, EXIT_FAILED)
    listed = run_json(capsys, "history", "list")
    assert len(listed) == 2
    assert f"could not write the images to {blocked}: it is a file, not a folder" in err
    assert "they are kept in the history (" + ", ".join(f"#{e['id']}" for e in listed) in err
    assert str(Path(listed[0]["path"]).parent) in err
