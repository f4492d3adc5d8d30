"""Inpainting models (a UNet of 9 input channels: latents, mask, masked image's latents),
recognised from their content in every format, loaded into diffusers' inpainting
pipelines offline, and exported to ONNX with the VAE encoder that img2img needs."""

from __future__ import annotations

import json
import pickle
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from support.random_sd import build_random_sd, build_random_sdxl, save_single_file

from sd_backends import single_file
from sd_backends.architecture import (
    INPAINTING,
    INSTRUCT_PIX2PIX,
    SD1,
    SD2,
    SDXL,
    UNKNOWN,
    architecture,
    variant,
    variant_of,
)
from sd_backends.backend import DiffusionBackend, load_diffusers_folder
from sd_backends.export_onnx import export
from sd_backends.onnx_controls import residual_name
from studio.api import ModelFile, ModelFileError, ModelLibrary, PickleRefused
from studio.core.model_files import identify

torch.set_num_threads(1)
CONV_IN = "model.diffusion_model.input_blocks.0.0.weight"
INPAINT, XL_INPAINT = "StableDiffusionInpaintPipeline", "StableDiffusionXLInpaintPipeline"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """Folders, single files and ONNX exports of tiny inpainting and ordinary models."""
    root = tmp_path_factory.mktemp("models")
    folders = root / "folders"
    sd = build_random_sd(folders / "sd-inpainting", inpainting=True)
    xl = build_random_sdxl(folders / "xl-inpainting", inpainting=True)
    plain = build_random_sd(folders / "sd")
    build_random_sdxl(folders / "xl")
    files = root / "files"
    files.mkdir()
    save_single_file(sd, files / "sd-inpainting.safetensors")
    save_single_file(sd, files / "sd2-inpainting.safetensors", open_clip=True)
    save_single_file(xl, files / "xl-inpainting.safetensors")
    save_single_file(plain, files / "sd.safetensors")
    save_single_file(folders / "xl", files / "xl.safetensors")
    for name, kind in (("sd-inpainting", UNKNOWN), ("xl-inpainting", SDXL), ("sd", UNKNOWN)):
        export(load_diffusers_folder(folders / name, torch.float32), root / "onnx" / name, kind)
    return root


@pytest.fixture
def offline(monkeypatch) -> None:
    """Any attempt to reach the network fails the test."""

    def refuse(*_args, **_kwargs):
        raise AssertionError("tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize(
    ("path", "expected_architecture", "expected_variant"),
    [
        ("folders/sd-inpainting", UNKNOWN, INPAINTING),  # the tiny text width is no SD's
        ("folders/xl-inpainting", SDXL, INPAINTING),
        ("files/sd-inpainting.safetensors", SD1, INPAINTING),
        ("files/sd2-inpainting.safetensors", SD2, INPAINTING),
        ("files/xl-inpainting.safetensors", SDXL, INPAINTING),
        ("onnx/sd-inpainting", UNKNOWN, INPAINTING),
        ("onnx/xl-inpainting", SDXL, INPAINTING),
        ("folders/sd", UNKNOWN, ""),
        ("folders/xl", SDXL, ""),
        ("files/sd.safetensors", SD1, ""),
        ("files/xl.safetensors", SDXL, ""),
        ("onnx/sd", UNKNOWN, ""),
    ],
)
def test_inpainting_models_are_recognised_in_every_format(
    models, tmp_path, path, expected_architecture, expected_variant
) -> None:
    """From content only: the copy under a name that says nothing reads the same."""
    source = models / path
    anonymous = tmp_path / ("model" + source.suffix)
    anonymous.symlink_to(source, target_is_directory=source.is_dir())
    for found in (identify(source), identify(anonymous)):
        assert (architecture(found), variant(found)) == (expected_architecture, expected_variant)


def test_single_files_keep_the_nine_channel_first_convolution(models) -> None:
    from studio.api import safetensors_shapes

    for name, channels in (("sd-inpainting", 9), ("xl-inpainting", 9), ("sd", 4)):
        shapes = safetensors_shapes(models / "files" / f"{name}.safetensors")
        assert shapes[CONV_IN] == [16, channels, 3, 3], name


def test_onnx_index_says_the_variant_else_the_unet_configuration(models, tmp_path) -> None:
    index = json.loads((models / "onnx" / "xl-inpainting" / "model_index.json").read_text())
    assert (index["variant"], index["unet_in_channels"]) == (INPAINTING, 9)
    assert index["_class_name"] == "OnnxStableDiffusionInpaintPipeline"
    plain = json.loads((models / "onnx" / "sd" / "model_index.json").read_text())
    assert (plain["variant"], plain["unet_in_channels"]) == ("", 4)
    other = tmp_path / "other-export"  # another tool's export: its UNet configuration
    (other / "unet").mkdir(parents=True)
    (other / "model_index.json").write_text(json.dumps({"_class_name": "Onnx"}))
    (other / "unet" / "config.json").write_text(json.dumps({"in_channels": 9}))
    assert variant(ModelFile(other, "onnx", 1)) == INPAINTING
    (other / "unet" / "config.json").unlink()
    assert variant(ModelFile(other, "onnx", 2)) == ""  # nothing says: an ordinary model


@pytest.mark.parametrize(
    ("name", "kind", "folder", "pipeline"),
    [
        ("sd-inpainting", SD1, "sd-inpainting", INPAINT),
        ("sd2-inpainting", SD2, "sd-inpainting", INPAINT),
        ("xl-inpainting", SDXL, "xl-inpainting", XL_INPAINT),
    ],
)
def test_single_files_load_as_inpainting_pipelines(
    models, tmp_path, monkeypatch, offline, name, kind, folder, pipeline
) -> None:
    checkpoint = models / "files" / f"{name}.safetensors"
    loader = DiffusionBackend()
    loader.model_library = lambda: ModelLibrary([], [], tmp_path / "h.json")
    # the shipped inpainting configuration is chosen: SD's real shapes, not the tiny model's
    with pytest.raises(ModelFileError, match=rf"cannot load {name}\.safetensors as {kind} inpai"):
        loader.load(str(checkpoint))
    # the tiny model's own configuration stands in for the shipped one
    monkeypatch.setitem(single_file.INPAINTING_CONFIG_FOLDERS, kind, models / "folders" / folder)
    loader.load(str(checkpoint))
    loaded = loader._pipeline
    assert type(loaded).__name__ == pipeline
    assert loaded.unet.config.in_channels == 9 and loaded.unet.conv_in.weight.shape[1] == 9
    reference = load_diffusers_folder(models / "folders" / folder, torch.float32)
    for part in ("unet", "vae"):
        ours, theirs = getattr(loaded, part).state_dict(), getattr(reference, part).state_dict()
        assert ours.keys() == theirs.keys()
        assert all(torch.equal(ours[k], theirs[k]) for k in ours), part
    if kind == SD2:  # SD 2's inpainting model predicts the noise, as its configuration says
        assert loaded.scheduler.config.prediction_type == "epsilon"


@pytest.mark.parametrize(
    ("folder", "pipeline"), [("sd-inpainting", INPAINT), ("xl-inpainting", XL_INPAINT)]
)
def test_folders_load_as_their_inpainting_pipelines_offline(
    models, tmp_path, offline, folder, pipeline
) -> None:
    loader = DiffusionBackend()
    loader.model_library = lambda: ModelLibrary([models / "folders"], [], tmp_path / "h.json")
    loader.load(folder)
    assert type(loader._pipeline).__name__ == pipeline
    assert loader._pipeline.unet.config.in_channels == 9


def test_ordinary_single_files_still_load_as_before(models, monkeypatch, offline) -> None:
    checkpoint = models / "files" / "sd.safetensors"
    monkeypatch.setitem(single_file.CONFIG_FOLDERS, SD1, models / "folders" / "sd")
    pipeline = single_file.load_single_file(checkpoint, SD1, torch.float32)  # variant read
    assert type(pipeline).__name__ == "StableDiffusionPipeline"
    assert pipeline.unet.config.in_channels == 4


def test_instruct_pix2pix_is_recognised_but_not_loaded(tmp_path) -> None:
    from safetensors.numpy import save_file

    shapes = {CONV_IN: [320, 8, 3, 3]}
    assert variant_of(shapes) == INSTRUCT_PIX2PIX
    path = tmp_path / "edit.safetensors"
    save_file({CONV_IN: np.zeros((320, 8, 3, 3), np.float16)}, str(path))
    assert variant(identify(path)) == INSTRUCT_PIX2PIX
    with pytest.raises(ModelFileError, match="instruct-pix2pix models are not supported"):
        single_file.load_single_file(path, SD1, torch.float32)


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def test_pickled_inpainting_checkpoints_are_refused_and_never_run(models, tmp_path) -> None:
    from safetensors.torch import load_file

    from studio.core.model_convert import convert_pickle

    tensors = load_file(models / "files" / "sd-inpainting.safetensors")
    marker = tmp_path / "payload-ran"
    evil = tmp_path / "sd-inpainting.ckpt"
    evil.write_bytes(pickle.dumps({"state_dict": tensors, "x": _Payload(marker)}, protocol=4))
    saved = tmp_path / "saved.ckpt"
    torch.save({"state_dict": tensors}, saved)  # torch's own zip format
    loader = DiffusionBackend()
    loader.model_library = lambda: ModelLibrary([], [], tmp_path / "h.json")
    for pickled in (evil, saved):
        with pytest.raises(PickleRefused, match="pickled PyTorch checkpoint"):
            identify(pickled)
        with pytest.raises(PickleRefused):
            loader.load(str(pickled))
    assert not marker.exists()
    converted = identify(convert_pickle(saved))  # the way out the refusal names
    assert (architecture(converted), variant(converted)) == (SD1, INPAINTING)


def test_the_export_runs_the_nine_channel_unet_and_writes_the_vae_encoder(models) -> None:
    """The encoder gives the latent distribution's mean (not a sample, unscaled), for any
    batch and size; the UNet takes the 9 channels, as PyTorch's does."""
    import onnxruntime as ort

    generator = torch.Generator().manual_seed(3)
    for name in ("sd-inpainting", "xl-inpainting", "sd"):
        pipeline = load_diffusers_folder(models / "folders" / name, torch.float32)
        folder = models / "onnx" / name
        encoder = ort.InferenceSession(str(folder / "vae_encoder" / "model.onnx"))
        assert [i.name for i in encoder.get_inputs()] == ["sample"]
        assert [o.name for o in encoder.get_outputs()] == ["latent_mean"]
        images = torch.rand(2, 3, 24, 40, generator=generator) * 2 - 1  # not the traced size
        with torch.no_grad():
            expected = pipeline.vae.encode(images).latent_dist.mean.numpy()
        (got,) = encoder.run(None, {"sample": images.numpy()})
        assert got.shape == (2, 4, 12, 20)
        assert np.abs(got - expected).max() < 1e-4, name
    unet = ort.InferenceSession(str(models / "onnx" / "sd-inpainting" / "unet" / "model.onnx"))
    assert unet.get_inputs()[0].shape[1] == 9
    pipeline = load_diffusers_folder(models / "folders" / "sd-inpainting", torch.float32)
    sample = torch.randn(2, 9, 8, 12, generator=generator)
    timestep = torch.tensor([500.0, 500.0])
    text = torch.randn(2, 77, 32, generator=generator)
    with torch.no_grad():
        expected = pipeline.unet(sample, timestep, text).sample.numpy()
    feeds = {"sample": sample.numpy(), "timestep": timestep.numpy()}
    feeds["encoder_hidden_states"] = text.numpy()
    index = json.loads((models / "onnx" / "sd-inpainting" / "model_index.json").read_text())
    residuals = index["unet_control_residuals"]  # no ControlNet: zeros, nothing added
    for i, (channels, factor) in enumerate(residuals):
        shape = (2, channels, -(-8 // factor), -(-12 // factor))
        feeds[residual_name(i, len(residuals))] = np.zeros(shape, np.float32)
    (got,) = unet.run(None, feeds)
    assert got.shape == (2, 4, 8, 12) and np.abs(got - expected).max() < 1e-4


# The released inpainting UNets are their text-to-image architectures but for the first
# convolution's 5 more input channels (320 x 5 x 3 x 3 weights)
EXTRA_CONV_IN = 320 * 5 * 3 * 3
RELEASED_UNETS = {SD1: 859_520_964, SD2: 865_910_724, SDXL: 2_567_463_684}


@pytest.mark.parametrize("kind", [SD1, SD2, SDXL])
def test_shipped_inpainting_configurations_build_the_released_architectures(kind) -> None:
    from accelerate import init_empty_weights
    from diffusers import UNet2DConditionModel

    folder = single_file.INPAINTING_CONFIG_FOLDERS[kind]
    plain = single_file.CONFIG_FOLDERS[kind]
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == (XL_INPAINT if kind == SDXL else INPAINT)
    config = json.loads((folder / "unet" / "config.json").read_text())
    assert config["in_channels"] == 9
    with init_empty_weights():  # shapes only, no memory
        unet = UNet2DConditionModel.from_config(config)
    assert sum(p.numel() for p in unet.parameters()) == RELEASED_UNETS[kind] + EXTRA_CONV_IN
    for part in ("vae", "text_encoder", "text_encoder_2"):  # the rest is the same model's
        if (plain / part).is_dir():
            same = (folder / part / "config.json").read_text()
            assert same == (plain / part / "config.json").read_text(), part
