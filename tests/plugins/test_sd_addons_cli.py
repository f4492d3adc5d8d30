"""LoRAs and ControlNets from the command line, on the PyTorch SD backend with a tiny
random model, LoRAs and a ControlNet in the user's model folder: the prompt's
<lora:NAME:W> is --lora PATH:W, weight 0 is no LoRA, weights add up as they should, and
what an image was made with is in its metadata, read by `studio info` and made again by
`--from`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from support.pictures import photo
from support.random_controlnets import build_random_controlnet, save_controlnet_folder
from support.random_loras import write_kohya
from support.random_sd import build_random_sd

from studio.api import EXIT_OK
from studio.cli import main

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("home")
    models = home / "data" / "models"
    base = build_random_sd(models / "tiny")
    write_kohya(base, models / "ink.safetensors", seed=1)
    write_kohya(base, models / "grain.safetensors", seed=2)
    save_controlnet_folder(build_random_controlnet(base), models / "edges")
    photo(64, 64).save(home / "room.png")
    return home


def generate(home: Path, capsys, *args: str) -> tuple[dict, np.ndarray]:
    common = ["--model", "tiny", "--steps", "2", "--count", "1", "--seed", "4", "--json"]
    assert main(["generate", *args, *common]) == EXIT_OK, capsys.readouterr().err
    made = json.loads(capsys.readouterr().out)
    return made, np.asarray(Image.open(made["images"][0]["path"]))


@pytest.fixture
def run(home, monkeypatch, capsys):
    monkeypatch.setenv("STUDIO_HOME", str(home))
    return lambda *args: generate(home, capsys, *args)


def test_the_prompts_lora_tag_is_the_lora_flag_and_weight_0_is_none(run, home) -> None:
    _, plain = run("a red cat")
    _, tagged = run("a red cat <lora:ink:1>")
    _, flagged = run("a red cat", "--lora", f"{home / 'data/models/ink.safetensors'}:1")
    _, zero = run("a red cat <lora:ink:0>")
    assert not np.array_equal(tagged, plain)
    assert np.array_equal(tagged, flagged)
    assert np.array_equal(zero, plain)
    _, halves = run("a red cat <lora:ink:0.5> <lora:grain:0.5>")
    _, one = run("a red cat <lora:ink:1>")
    assert not np.array_equal(halves, one)
    _, again = run("a red cat")  # back to none: the base weights, exactly
    assert np.array_equal(again, plain)


def test_what_an_image_was_made_with_round_trips_through_info_and_from(run, home, capsys) -> None:
    made, image = run(
        "a red cat <lora:ink:0.8>", "--lora", "grain:0.3",
        "--control-model", "edges", "--control-image", str(home / "room.png"),
        "--control-preprocess", "canny", "--control-weight", "0.9", "--control-end", "0.8",
    )  # fmt: skip
    path = made["images"][0]["path"]
    assert main(["info", path, "--json"]) == EXIT_OK
    info = json.loads(capsys.readouterr().out)
    hashes = dict(pair.split(": ") for pair in info["extra"]["Lora hashes"].split(", "))
    assert list(hashes) == ["ink", "grain"] and all(len(h) == 12 for h in hashes.values())
    unit = info["extra"]["ControlNet 0"]
    assert unit.startswith("Module: canny, Model: edges [") and "Weight: 0.9" in unit
    assert "Guidance End: 0.8" in unit
    again, same = run("--from", path)
    assert np.array_equal(same, image)
    assert again["request"]["controls"] == made["request"]["controls"]
    _, without = run("a red cat <lora:ink:0.8>", "--lora", "grain:0.3")
    assert not np.array_equal(without, image)  # the ControlNet mattered


def test_an_add_on_that_does_not_fit_is_refused_with_the_reason(run, home, capsys) -> None:
    from support.random_sd import build_random_sdxl

    other = build_random_sdxl(home / "xl")
    write_kohya(other, home / "xl-style.safetensors", seed=3)
    code = main(["generate", "a cat", "--model", "tiny", "--steps", "1",
                 "--lora", str(home / "xl-style.safetensors")])  # fmt: skip
    assert code != EXIT_OK
    err = capsys.readouterr().err
    assert "xl-style.safetensors does not fit this model" in err


def test_export_a_controlnet_with_its_base_and_run_both_add_ons_in_onnx(run, home, capsys) -> None:
    models = home / "data" / "models"
    code = main(["sd-export-onnx", "edges", str(home / "edges-onnx")])
    assert code != EXIT_OK and "--base MODEL" in capsys.readouterr().err
    code = main(["sd-export-onnx", "ink", str(home / "ink-onnx")])
    assert code != EXIT_OK and "ink is a LoRA: it needs no export" in capsys.readouterr().err
    assert main(["sd-export-onnx", "tiny", str(models / "tiny-onnx")]) == EXIT_OK
    code = main(["sd-export-onnx", "edges", str(models / "edges-onnx"), "--base", "tiny"])
    assert code == EXIT_OK
    capsys.readouterr()
    addons = ["--lora", "ink:0.7", "--control-model", "edges", "--control-image"]
    addons += [str(home / "room.png"), "--control-preprocess", "canny"]
    _, torch_image = run("a red cat", *addons)
    common = ["--steps", "2", "--count", "1", "--seed", "4", "--json"]
    onnx_addons = [a if a != "edges" else "edges-onnx" for a in addons]
    args = ["generate", "a red cat", "--model", "tiny-onnx", *onnx_addons, *common]
    assert main(args) == EXIT_OK, capsys.readouterr().err
    made = json.loads(capsys.readouterr().out)
    assert made["images"][0]["backend"] == "diffusion-onnx"
    onnx_image = np.asarray(Image.open(made["images"][0]["path"]))
    difference = np.abs(onnx_image.astype(int) - torch_image.astype(int))
    assert difference.max() <= 3, difference.max()  # the text-only path's tolerance
