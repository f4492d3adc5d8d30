"""img2img and inpainting on the PyTorch SD backend, with tiny random SD and SDXL models:
pictures as users have them, the picture's pixels kept outside the mask, only-masked
mode, strength and steps, determinism per seed."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from contexts import Context
from PIL import Image
from support.pictures import box_mask, photo
from support.random_sd import build_random_sd, build_random_sdxl

from sd_backends.backend import DiffusionBackend
from studio.api import GenerationRequest, ModelLibrary, RequestError
from studio.core.inputs import InputStore

torch.set_num_threads(1)


@pytest.fixture(scope="module", params=["sd", "sdxl"])
def backend(request, tmp_path_factory) -> DiffusionBackend:
    folder = tmp_path_factory.mktemp("models")
    (build_random_sd if request.param == "sd" else build_random_sdxl)(folder / "tiny")
    backend = DiffusionBackend()
    cache = tmp_path_factory.mktemp("cache") / "hashes.json"
    backend.model_library = lambda: ModelLibrary([folder], [], cache)
    backend.load("")
    return backend


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> InputStore:
    return InputStore(tmp_path_factory.mktemp("inputs"))


def request(store: InputStore, picture, mask=None, **fields) -> GenerationRequest:
    image = store.add(picture)
    size = image.open().size
    defaults = {
        "prompt": "a red cat",
        "backend": "diffusion",
        "seed": 5,
        "count": 2,
        "candidates": 2,
        "steps": 4,
        "guidance": 5.0,
        "width": size[0],
        "height": size[1],
        "image": image,
        "mask": None if mask is None else store.add(mask, mask=True),
    }
    return GenerationRequest(**{**defaults, **fields})


def test_img2img_runs_the_last_steps_times_strength(backend, store) -> None:
    picture = photo(64, 48)
    context = Context()
    half = backend.generate(request(store, picture, strength=0.5), context)
    assert context.steps[-1] == (4, 4)  # 2 images x 2 steps of the 4
    assert half[0].image.shape == (48, 64, 3)
    full = backend.generate(request(store, picture, strength=1.0), Context())
    assert not np.array_equal(half[0].image, full[0].image)
    again = backend.generate(request(store, picture, strength=0.5), Context())
    alone = backend.generate(request(store, picture, strength=0.5, seed=6, count=1), Context())
    assert np.array_equal(half[0].image, again[0].image)  # the same picture, the same seed
    assert np.array_equal(alone[0].image, half[1].image)  # image i is seed + i alone
    with pytest.raises(ValueError, match="runs no step"):
        backend.generate(request(store, picture, strength=0.1), Context())


@pytest.mark.parametrize("area", ["whole", "masked"])
def test_inpainting_keeps_every_pixel_outside_the_mask(backend, store, area) -> None:
    size = (150, 100)  # not the model's size: generated at its own, scaled back
    picture, mask = photo(*size, seed=2), box_mask(size, (90, 20, 130, 60))
    options = {"inpaint_area": area, "inpaint_padding": 8, "mask_blur": 2}
    made = backend.generate(request(store, picture, mask, options=options), Context())
    outside = np.asarray(mask) < 128
    for candidate in made:
        assert candidate.image.shape == (100, 150, 3)
        assert np.array_equal(candidate.image[outside], np.asarray(picture)[outside])
        assert not np.array_equal(candidate.image[~outside], np.asarray(picture)[~outside])
    if area == "masked":  # nothing changes beyond the padded box around the mask
        changed = np.argwhere((made[0].image != np.asarray(picture)).any(axis=2))
        assert changed[:, 0].min() >= 20 and changed[:, 1].min() >= 90


def test_pictures_as_users_have_them(backend, store, tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # a phone photo stored sideways
    sideways = io.BytesIO()
    photo(40, 24).save(sideways, "JPEG", exif=exif.tobytes())
    rgba = Image.new("RGBA", (33, 17), (255, 0, 0, 128))
    grey16 = Image.fromarray(np.arange(30 * 20, dtype=np.uint16).reshape(20, 30) * 100)
    for source in (sideways.getvalue(), rgba, grey16, photo(17, 51).convert("L")):
        made = backend.generate(request(store, source, count=1, strength=0.5), Context())
        picture = store.add(source).open()
        assert made[0].image.shape == (picture.height, picture.width, 3)


@pytest.fixture(scope="module")
def inpainting(tmp_path_factory) -> DiffusionBackend:
    folder = tmp_path_factory.mktemp("inpainting-models")
    build_random_sd(folder / "tiny-inpainting", inpainting=True)
    backend = DiffusionBackend()
    cache = tmp_path_factory.mktemp("cache") / "hashes.json"
    backend.model_library = lambda: ModelLibrary([folder], [], cache)
    backend.load("")
    return backend


def test_an_inpainting_checkpoint_repaints_the_mask_only(inpainting, store) -> None:
    assert inpainting._pipeline.unet.config.in_channels == 9
    size = (80, 64)
    picture, mask = photo(*size, seed=4), box_mask(size, (10, 10, 50, 40))
    made = inpainting.generate(request(store, picture, mask), Context())
    outside = np.asarray(mask) < 128
    assert np.array_equal(made[0].image[outside], np.asarray(picture)[outside])
    assert not np.array_equal(made[0].image[~outside], np.asarray(picture)[~outside])
    text_only = GenerationRequest("a red cat", backend="diffusion", steps=2, width=64, height=64)
    with pytest.raises(RequestError, match="inpainting model: give it a picture"):
        inpainting.generate(text_only, Context())


def test_a_cancel_stops_a_picture_request_between_steps(backend, store) -> None:
    from studio.api import Cancelled

    context = Context(cancel_at=1)
    with pytest.raises(Cancelled):
        backend.generate(request(store, photo(64, 64), count=1, strength=1.0), context)
    assert context.steps == [(1, 4)]


def test_cli_pictures_keep_their_size_and_replay_from_their_metadata(
    tmp_path, monkeypatch, capsys
) -> None:
    import json

    from studio.api import EXIT_OK
    from studio.cli import main

    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "home"))
    build_random_sd(tmp_path / "home" / "data" / "models" / "tiny")

    def run(*args: str) -> dict:
        assert main([*args, "--json"]) == EXIT_OK
        return json.loads(capsys.readouterr().out)

    photo(101, 67).save(tmp_path / "photo.png")
    box_mask((101, 67), (20, 10, 60, 40)).save(tmp_path / "mask.png")
    common = ("--model", "tiny", "--steps", "4", "--count", "2", "--seed", "3")
    varied = run("generate", "a blue dog", "--image", str(tmp_path / "photo.png"), *common)
    assert (varied["request"]["width"], varied["request"]["height"]) == (104, 64)  # snapped
    assert varied["request"]["strength"] == 0.75  # the backend's default, as it ran
    edited = run(
        "generate", "a blue dog", "--image", str(tmp_path / "photo.png"),
        "--mask", str(tmp_path / "mask.png"), "--mask-blur", "2", *common,
    )  # fmt: skip
    second = edited["images"][1]
    assert Image.open(second["path"]).size == (101, 67)  # an inpainted photo keeps its size
    info = run("info", second["path"])
    assert info["extra"]["Denoising strength"] and info["extra"]["Mask blur"] == "2"
    again = run("generate", "--from", second["path"])
    made = np.asarray(Image.open(again["images"][0]["path"]))
    assert np.array_equal(made, np.asarray(Image.open(second["path"])))
