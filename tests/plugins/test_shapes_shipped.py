"""The shipped built-in model: it loads with both runtimes, is deterministic, and draws."""

from __future__ import annotations

import json

import numpy as np
import pytest

from shapes_backend.backend import ShapesBackend
from shapes_backend.model.bundle import SHIPPED
from shapes_backend.onnx_backend import ShapesOnnxBackend
from shapes_backend.parser import parse_prompt
from shapes_lab.judge import Judge
from studio.api import EXIT_OK, EXIT_USAGE, GenerationRequest
from studio.cli import main


class Quiet:
    cancelled = False
    device = "cpu"

    def check_cancelled(self) -> None:
        pass

    def progress(self, step: int, total: int) -> None:
        pass

    def preview(self, image) -> None:
        pass


@pytest.fixture(scope="module", params=[ShapesOnnxBackend, ShapesBackend], ids=["onnx", "torch"])
def backend(request):
    backend = request.param(SHIPPED)
    backend.load("")
    return backend


def test_shipped_weights_are_deterministic_for_a_seed(backend) -> None:
    request = GenerationRequest(
        "two green squares on a white background", seed=7, count=2, candidates=4
    )
    first = backend.generate(request, Quiet())
    again = backend.generate(request, Quiet())
    assert all(np.array_equal(a.image, b.image) for a, b in zip(first, again, strict=True))


def test_shipped_model_draws_what_a_simple_prompt_asks(backend) -> None:
    prompt = "a red circle"
    candidates = backend.generate(
        GenerationRequest(prompt, seed=1, count=4, candidates=16), Quiet()
    )
    judge, spec = Judge.load(), parse_prompt(prompt)
    passed = sum(judge.check(c.image, spec).passed for c in candidates)
    assert passed >= 4  # an untrained model draws none; the shipped one most of them


def test_shipped_model_binds_colours_to_shapes_by_phrase(backend) -> None:
    """Two held-out pairs at once: drawn under the whole prompt only, the colours go to
    the wrong shapes (the pairs it has seen); under each object's phrase, the right ones."""
    prompt = "a cyan triangle and a purple star"
    judge, spec = Judge.load(), parse_prompt(prompt)

    def passed(phrases: bool) -> int:  # of 16 kept images: 4 requests, the best 4 of 16 each
        options = {"phrases": phrases}
        return sum(
            judge.check(c.image, spec).passed
            for seed in (3, 4, 5, 6)
            for c in backend.generate(
                GenerationRequest(prompt, seed=seed, count=4, candidates=16, options=options),
                Quiet(),
            )[:4]
        )

    assert passed(phrases=False) == 0
    assert passed(phrases=True) >= 12  # 16 with either runtime when written


def test_cli_generate_with_the_default_backend(capsys, tmp_path) -> None:
    code = main(
        [
            "generate",
            "a blue star wearing a hat",
            "--seed",
            "3",
            "--count",
            "2",
            "--out",
            str(tmp_path),
            "--json",
        ]
    )
    assert code == EXIT_OK
    result = json.loads(capsys.readouterr().out)
    assert result["request"]["backend"] == "shapes"
    assert result["unknown_words"] == ["wearing", "hat"]
    assert len(result["images"]) == 2
    assert main(["generate", "bonjour tout le monde"]) == EXIT_USAGE  # before loading
    err = capsys.readouterr().err
    assert (
        err
        == "studio: the model knows none of the words of this prompt: bonjour, tout, le, monde\n"
    )


def test_cli_names_where_a_long_prompt_is_cut_and_refuses_steps(capsys) -> None:
    prompt = ("two red circles " * 2000)[:20_000]  # the most a request takes: 4,000 words
    assert main(["generate", prompt, "--count", "1", "--seed", "1", "--json"]) == EXIT_OK
    captured = capsys.readouterr()
    cut = len("two red circles " * 10) + len("two red ")  # the 33rd word
    assert json.loads(captured.out)["ignored_from"] == cut
    note = "studio: note: the model reads only the first 32 words of a prompt; it ignores "
    assert f"{note}the rest, from character {cut}: 'circles two red circles" in captured.err
    assert main(["generate", "a red circle", "--steps", "5"]) == EXIT_USAGE
    assert "this backend has no steps to set" in capsys.readouterr().err


def test_the_model_label_comes_from_the_bundle(tmp_path) -> None:
    from shapes_backend.backend import model_info
    from shapes_backend.model.bundle import MODEL_CARD, write_model_card

    card = json.loads((SHIPPED / MODEL_CARD).read_text())
    assert model_info(SHIPPED).name == f"Shapes v{card['version']} (built in)"
    assert model_info(tmp_path).name == "Shapes, unversioned (built in)"
    write_model_card(tmp_path, "7")
    assert model_info(tmp_path).name == "Shapes v7 (built in)"
