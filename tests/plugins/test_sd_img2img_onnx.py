"""img2img and inpainting on the ONNX SD backend: the same images as the PyTorch backend
from the same picture, mask and seed (tiny SD, SDXL and a 9-channel inpainting SD, each
exported with the real export code), whole and only-masked, for each deterministic
sampler; the picture's own pixels outside the mask; folders exported before pictures
refused with the way out."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from contexts import Context
from support.random_sd import build_random_sd, build_random_sdxl
from test_sd_img2img import box_mask, photo, request

from sd_backends.backend import DiffusionBackend, load_diffusers_folder
from sd_backends.export_onnx import export
from sd_backends.onnx_backend import DiffusionOnnxBackend
from studio.api import ModelFileError, ModelLibrary
from studio.core.inputs import InputStore

torch.set_num_threads(1)
RAW = 2e-3  # the model's output before it goes back: the text-only tests' tolerance
FINAL = 2  # levels of 255 in the composited result (a rounding, then a Lanczos resize)
SIZE, BOX = (150, 100), (90, 20, 130, 60)  # not the model's size; a mask off-centre
MODELS = {
    "sd": lambda folder: build_random_sd(folder),
    "sdxl": lambda folder: build_random_sdxl(folder),
    "sd-inpainting": lambda folder: build_random_sd(folder, inpainting=True),
}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("models")
    for name, build in MODELS.items():
        build(root / name)
        kind = "SDXL" if name == "sdxl" else "unknown"
        export(load_diffusers_folder(root / name, torch.float32), root / f"{name}-onnx", kind)
    return root


@pytest.fixture(scope="module", params=list(MODELS))
def pair(request, models) -> tuple[DiffusionBackend, DiffusionOnnxBackend]:
    torch_backend, onnx_backend = DiffusionBackend(), DiffusionOnnxBackend(threads=1)
    for backend, name in ((torch_backend, request.param), (onnx_backend, f"{request.param}-onnx")):
        backend.model_library = lambda: ModelLibrary([models], [], models / "hashes.json")
        backend.load(name)
    return torch_backend, onnx_backend


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> InputStore:
    return InputStore(tmp_path_factory.mktemp("inputs"))


def both(pair, r, outputs) -> tuple[list, list, list, list]:
    """(ONNX's results, PyTorch's, ONNX's outputs, PyTorch's)."""
    ours = pair[1].generate(r, Context())
    count = len(outputs)
    theirs = pair[0].generate(r, Context())
    return ours, theirs, outputs[:count], outputs[count:]


def assert_close(ours, theirs, raw_ours, raw_theirs) -> None:
    for a, b in zip(raw_ours, raw_theirs, strict=True):
        assert a.shape == b.shape and np.abs(a - b).max() < RAW
    for a, b in zip(ours, theirs, strict=True):
        assert a.seed == b.seed and a.image.shape == b.image.shape
        assert np.abs(a.image.astype(int) - b.image.astype(int)).max() <= FINAL


@pytest.mark.parametrize("strength", [0.5, 1.0])
def test_img2img_makes_the_pytorch_backends_images(pair, store, outputs, strength) -> None:
    if pair[1]._runtime.index["unet_in_channels"] == 9:
        pytest.skip("see test_an_inpainting_model_takes_a_picture_without_a_mask")
    r = request(store, photo(*SIZE), strength=strength, options={"sampler": "Euler"})
    ours, theirs, raw_ours, raw_theirs = both(pair, r, outputs)
    assert_close(ours, theirs, raw_ours, raw_theirs)
    assert ours[0].image.shape == (SIZE[1], SIZE[0], 3)


@pytest.mark.parametrize("sampler", ["Euler", "DDIM", "DPM++ 2M Karras"])
@pytest.mark.parametrize("area", ["whole", "masked"])
def test_inpainting_makes_the_pytorch_backends_images(pair, store, outputs, sampler, area):
    picture, mask = photo(*SIZE, seed=2), box_mask(SIZE, BOX)
    options = {"inpaint_area": area, "inpaint_padding": 8, "mask_blur": 2, "sampler": sampler}
    strength = 0.75 if sampler == "Euler" else 0.0  # no strength with a mask: all steps
    r = request(store, picture, mask, strength=strength, options=options)
    ours, theirs, raw_ours, raw_theirs = both(pair, r, outputs)
    assert_close(ours, theirs, raw_ours, raw_theirs)
    outside = np.asarray(mask) < 128
    for a, b in zip(ours, theirs, strict=True):  # the picture's own pixels, in both
        assert np.array_equal(a.image[outside], np.asarray(picture)[outside])
        assert np.array_equal(b.image[outside], a.image[outside])
        assert not np.array_equal(a.image[~outside], np.asarray(picture)[~outside])


def test_an_inpainting_model_takes_a_picture_without_a_mask(models, store) -> None:
    """A 9-channel model given a picture alone repaints all of it: its masked picture is
    all grey, which the VAE encodes ill-conditioned (a constant image normalised by
    GroupNorm: the rounding decides), so the two runtimes' images differ; ONNX's is still
    one image per seed."""
    backend = DiffusionOnnxBackend(threads=1)
    backend.model_library = lambda: ModelLibrary([models], [], models / "hashes.json")
    backend.load("sd-inpainting-onnx")
    r = request(store, photo(*SIZE), strength=0.5, options={"sampler": "DDIM"})
    first, again = backend.generate(r, Context()), backend.generate(r, Context())
    assert all(np.array_equal(a.image, b.image) for a, b in zip(first, again, strict=True))
    assert first[0].image.shape == (SIZE[1], SIZE[0], 3)


def test_progress_counts_the_steps_that_run(pair, store) -> None:
    r = request(store, photo(*SIZE), strength=0.5, steps=4, count=1)
    context = Context()
    pair[1].generate(r, context)
    assert context.steps == [(1, 2), (2, 2)] and len(context.previews) == 2
    with pytest.raises(ValueError, match="runs no step"):
        pair[1].generate(request(store, photo(*SIZE), strength=0.1), Context())


def test_capabilities_are_the_pytorch_backends(pair) -> None:
    ours, theirs = pair[1].capabilities(), pair[0].capabilities()
    assert (ours.image, ours.mask, ours.strength) == (True, True, True)
    assert ours.default_strength == theirs.default_strength == 0.75
    assert ours.max_picture_size == theirs.max_picture_size


def test_a_folder_without_the_vae_encoder_refuses_pictures(models, store, tmp_path) -> None:
    old = tmp_path / "exported-before-pictures"
    shutil.copytree(models / "sd-onnx", old)
    shutil.rmtree(old / "vae_encoder")
    backend = DiffusionOnnxBackend(threads=1)
    backend.model_library = lambda: ModelLibrary([tmp_path], [], tmp_path / "h.json")
    backend.load(old.name)
    text = request(store, photo(*SIZE), count=1).replace(image=None, width=64, height=64)
    assert backend.generate(text, Context())[0].image.shape == (64, 64, 3)  # text still runs
    with pytest.raises(ModelFileError, match=r"without the VAE encoder.*studio sd-export-onnx"):
        backend.generate(request(store, photo(*SIZE), strength=0.5), Context())


def test_pictures_on_onnx_never_import_torch(models, tmp_path) -> None:
    script = f"""
import sys
from pathlib import Path
import numpy as np
from PIL import Image
from sd_backends.onnx_backend import DiffusionOnnxBackend
from studio.api import GenerationRequest, ModelLibrary
from studio.core.inputs import InputStore
backend = DiffusionOnnxBackend(threads=1)
backend.model_library = lambda: ModelLibrary([], [], Path({str(tmp_path / "h.json")!r}))
backend.load({str(models / "sd-onnx")!r})
store = InputStore(Path({str(tmp_path / "inputs")!r}))
mask = Image.new("L", (48, 40), 0)
mask.paste(255, (8, 8, 24, 24))
class Ctx:
    cancelled = False
    device = "cpu"
    def check_cancelled(self): pass
    def progress(self, step, total, phase="steps"): pass
    def preview(self, image): pass
request = GenerationRequest("a red cat", seed=1, count=1, steps=2, guidance=3.0, width=48,
    height=40, image=store.add(Image.new("RGB", (48, 40), "red")),
    mask=store.add(mask, mask=True), options={{"inpaint_area": "masked"}})
(image,) = backend.generate(request, Ctx())
assert image.image.shape == (40, 48, 3)
assert "torch" not in sys.modules, "torch was imported"
print("ok")
"""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, env=env
    )
    assert done.stdout.strip() == "ok", done.stderr
