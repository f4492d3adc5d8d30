"""Every image regenerates exactly from its own metadata: `studio generate --from FILE`
makes its pixels again, for each backend and sampler, for an image that was not the first
of its job, and from a JPEG or WebP copy as from the PNG. The built-in model's image is a
ranked one (shown third of 8 candidates): its own seed alone draws it again.

The SD models are tiny random ones (`support.random_sd`); the built-in model is the
shipped one. Ancestral samplers ("Euler a") add noise at every step: each image's from its
own seed, on both SD backends, or a batch's second image would not come back alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from support.random_sd import build_random_sd

from studio.api import EXIT_OK
from studio.cli import main
from studio.core.metadata import read_metadata, save_image

torch.set_num_threads(1)

PROMPT = 'a red cat, (oil: 1.2), "night"\non a roof'


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    from sd_backends.backend import load_diffusers_folder
    from sd_backends.export_onnx import export

    home = tmp_path_factory.mktemp("home")
    models = home / "data" / "models"
    build_random_sd(models / "tiny")
    export(load_diffusers_folder(models / "tiny", torch.float32), models / "tiny-onnx")
    return home


@pytest.fixture
def run(home, monkeypatch, capsys):
    monkeypatch.setenv("STUDIO_HOME", str(home))

    def run(*args: str) -> dict:
        assert main([*args, "--json"]) == EXIT_OK, capsys.readouterr().err
        return json.loads(capsys.readouterr().out)

    return run


def pixels(path: str | Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def made_again_from_each_copy(run, image: dict, folder: Path) -> None:
    """`--from` the image's own file, and from JPEG and WebP copies: its pixels, alone."""
    original = pixels(image["path"])
    written = read_metadata(image["path"]).studio
    assert written is not None
    sources = [Path(image["path"])]
    for fmt in ("jpeg", "webp"):  # the copies' pixels differ (lossy): their metadata doesn't
        sources.append(folder / f"copy-{image['id']}.{fmt}")
        save_image(Image.open(image["path"]), sources[-1], fmt, written)
    for source in sources:
        again = run("generate", "--from", str(source))
        assert len(again["images"]) == 1
        assert np.array_equal(pixels(again["images"][0]["path"]), original), source.name


@pytest.mark.parametrize(
    ("model", "sampler"),
    [
        ("tiny", "Euler a"),
        ("tiny", "DPM++ 2M Karras"),
        ("tiny-onnx", "Euler a"),
        ("tiny-onnx", "DDIM"),
    ],
)
def test_an_sd_image_not_first_of_its_batch_is_made_again(run, tmp_path, model, sampler) -> None:
    made = run(
        "generate", PROMPT, "--negative", "blurry, low: quality", "--model", model,
        "--sampler", sampler, "--steps", "3", "--count", "3", "--seed", "11",
    )  # fmt: skip
    second = made["images"][1]
    info = run("info", second["path"])
    assert (info["sampler"], info["seed"], info["steps"]) == (sampler, 12, 3)
    made_again_from_each_copy(run, second, tmp_path)


def test_a_ranked_built_in_image_not_first_is_made_again(run, tmp_path) -> None:
    made = run(
        "generate", "two red circles and a blue square", "--seed", "7",
        "--count", "4", "--candidates", "8",
    )  # fmt: skip
    third = made["images"][2]
    info = run("info", third["path"])
    assert (info["rank"], info["request"]["candidates"], info["steps"]) == (2, 8, None)
    assert 7 <= info["seed"] < 15  # its own candidate's seed: 7 + its place in the draw
    assert info["sampler"] == "top-k 32 temperature 0.3"  # in our JSON as in the text
    settings = read_metadata(third["path"]).raw["parameters"].splitlines()[-1]
    assert settings.startswith("Steps: 1, Sampler: top-k 32 temperature 0.3, CFG scale: 2")
    made_again_from_each_copy(run, third, tmp_path)
