"""The built-in model takes pictures end to end, as a user drives it from the command line:
an edit keeps the picture outside the snapped mask, `--from` makes a shown image again
pixel for pixel, `--vary` varies a history entry, and history knows what came from what."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from shapes_backend.model.bundle import SHIPPED, Tokenizers
from shapes_backend.model.common import ImagePrompt
from shapes_backend.model.edit import snapped_mask
from studio.api import EXIT_OK
from studio.cli import main


def run(capsys, *args: str) -> dict:
    code = main([*args, "--json"])
    out, err = capsys.readouterr()
    assert code == EXIT_OK, err
    return json.loads(out)


def test_edit_replay_and_variations_from_the_command_line(capsys, tmp_path) -> None:
    made = run(capsys, "generate", "a red circle above a blue square", "--seed", "3")
    source = made["images"][0]
    mask = np.zeros((64, 64), np.uint8)
    mask[32:] = 255  # the bottom half repainted: the top half given
    Image.fromarray(mask).save(tmp_path / "mask.png")
    prompt = "a red circle above a green triangle"
    edit = run(
        capsys, "generate", prompt, "--image", source["path"], "--mask", str(tmp_path / "mask.png")
    )
    picture = np.asarray(Image.open(source["path"]).convert("RGB"))
    keep = ~snapped_mask(
        Tokenizers.load(SHIPPED).image, ImagePrompt(picture, mask.astype(np.float32) / 255)
    )
    shown = edit["images"]
    for image in shown:
        assert np.array_equal(np.asarray(Image.open(image["path"]))[keep], picture[keep])
    # --from: the second image shown, exactly, from its own file's metadata.
    again = run(capsys, "generate", "--from", shown[1]["path"])
    assert len(again["images"]) == 1 and again["request"]["mask"]
    first = np.asarray(Image.open(shown[1]["path"]))
    assert np.array_equal(np.asarray(Image.open(again["images"][0]["path"])), first)
    # --vary: the entry's pixels as input, its prompt, new seeds; history links them.
    varied = run(capsys, "generate", "--vary", str(source["id"]), "--count", "2")
    assert varied["request"]["prompt"] == "a red circle above a blue square"
    assert varied["request"]["strength"] == 0.3  # the backend's default, as it ran
    for image in varied["images"]:  # the model's own image, varied: not that image again
        assert not np.array_equal(np.asarray(Image.open(image["path"])), picture)
    parent = run(capsys, "history", "show", str(source["id"]))
    children = {i["id"] for i in edit["images"] + varied["images"]}
    assert children <= set(parent["children"])
    assert run(capsys, "history", "show", str(shown[0]["id"]))["made_from"][0] == source["id"]
