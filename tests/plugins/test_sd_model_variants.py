"""Model variants told by their tensors and configurations when a model is added, in every
format (single file, diffusers folder, Studio's ONNX export): inpainting models listed as
such and usable; InstructPix2Pix models and SDXL refiners refused by `studio models add`
with a plain reason and nothing saved, listed as refused in a model folder and never
offered by the backends; v-prediction listed. Through the real CLI, user messages carry
no class name and no library's advice."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file
from support.random_sd import build_random_sd, save_single_file
from support.studio_cli import listed_models

from sd_backends.architecture import (
    INPAINTING,
    INSTRUCT_PIX2PIX,
    REFINER,
    SD2,
    SDXL,
    V_PREDICTION,
    V_PREDICTION_PROBE,
    architecture,
    variant,
)
from sd_backends.backend import DiffusionBackend, load_diffusers_folder
from sd_backends.export_onnx import export
from studio.api import EXIT_OK, EXIT_USAGE, ModelLibrary
from studio.core.model_files import identify

torch.set_num_threads(1)
CONV_IN = "model.diffusion_model.input_blocks.0.0.weight"
CROSS_ATTENTION = "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"
KOHYA = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"
FORMATS = ("folder", "file.safetensors", "onnx")


def _eight_channels(plain: Path, out: Path) -> Path:
    """An InstructPix2Pix-shaped copy of a tiny model: its UNet takes 8 input channels
    (the noisy latents and the source picture's)."""
    from safetensors.torch import load_file
    from safetensors.torch import save_file as save_torch

    shutil.copytree(plain, out)
    config = json.loads((out / "unet" / "config.json").read_text())
    (out / "unet" / "config.json").write_text(json.dumps(config | {"in_channels": 8}))
    weights = out / "unet" / "diffusion_pytorch_model.safetensors"
    tensors = load_file(weights)
    conv_in = tensors["conv_in.weight"]
    tensors["conv_in.weight"] = torch.cat([conv_in, torch.zeros_like(conv_in)], dim=1)
    save_torch(tensors, str(weights))
    return out


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """Each variant (9 and 8 channels) as a diffusers folder, a single file and an ONNX
    export of tiny random models."""
    root = tmp_path_factory.mktemp("variants")
    inpainting = build_random_sd(root / "inpainting" / "folder", inpainting=True)
    plain = build_random_sd(root / "plain")
    edit = _eight_channels(plain, root / "edit" / "folder")
    found = {}
    for name, folder in (("inpainting", inpainting), ("edit", edit)):
        save_single_file(folder, root / name / "file.safetensors")
        export(load_diffusers_folder(folder, torch.float32), root / name / "onnx")
        found |= {f"{name}/{form}": root / name / form for form in FORMATS}
    return found


def _plain(message: str) -> None:
    """What a user reads: no class name, no library advice, no double spaces."""
    for leak in ("Error:", "Error(", "low_cpu_mem_usage", "github.com", "http", "  "):
        assert leak not in message, message


@pytest.mark.parametrize("form", FORMATS)
def test_nine_and_eight_channel_unets_are_told_in_every_format(models, form) -> None:
    for name, expected in (("inpainting", INPAINTING), ("edit", INSTRUCT_PIX2PIX)):
        path = models[f"{name}/{form}"]
        found = identify(path)
        assert variant(found) == expected, path


@pytest.mark.parametrize("form", FORMATS)
def test_inpainting_models_are_added_and_listed_as_inpainting(models, cli, form) -> None:
    path = models[f"inpainting/{form}"]
    code, out, _ = cli("models", "add", str(path), "--json")
    assert code == EXIT_OK and json.loads(out)["variant"] == INPAINTING
    row = listed_models(cli)[path.name]
    assert (row["variant"], row["kind"]) == (INPAINTING, "model") and "error" not in row
    code, out, _ = cli("models", "list")
    (line,) = [line for line in out.splitlines() if str(path) in line]
    assert f"{row['architecture']} inpainting".strip() in line


@pytest.mark.parametrize("form", FORMATS)
def test_instruct_pix2pix_models_are_refused_at_add_in_every_format(models, cli, form) -> None:
    path = models[f"edit/{form}"]
    code, out, err = cli("models", "add", str(path))
    assert code == EXIT_USAGE and out == ""
    assert "is an InstructPix2Pix model" in err and "which Studio does not run" in err
    _plain(err.removeprefix("studio: "))
    assert listed_models(cli) == {}  # nothing saved to the settings


def _refiner_file(path: Path) -> Path:
    """SDXL's refiner as its single file's header shows it: OpenCLIP bigG alone as the
    conditioner, and a 2560-wide ADM input (pooled text and 5 time ids)."""
    shapes = {
        "conditioner.embedders.0.model.ln_final.weight": (8,),
        "model.diffusion_model.label_emb.0.0.weight": (16, 2560),
        CONV_IN: (16, 4, 3, 3),
    }
    save_file({k: np.zeros(s, np.float16) for k, s in shapes.items()}, str(path))
    return path


def _refiner_folder(folder: Path) -> Path:
    """A diffusers refiner's configurations: no first text encoder, an aesthetic score."""
    (folder / "unet").mkdir(parents=True)
    index = {
        "_class_name": "StableDiffusionXLImg2ImgPipeline",
        "requires_aesthetics_score": True,
        "text_encoder": [None, None],
        "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
    }
    (folder / "model_index.json").write_text(json.dumps(index))
    unet = {"in_channels": 4, "projection_class_embeddings_input_dim": 2560}
    (folder / "unet" / "config.json").write_text(json.dumps(unet))
    return folder


def test_sdxl_refiners_are_refused_at_add(tmp_path, cli) -> None:
    for path in (
        _refiner_file(tmp_path / "refiner.safetensors"),
        _refiner_folder(tmp_path / "refiner-folder"),
    ):
        found = identify(path)
        assert (architecture(found), variant(found)) == (SDXL, REFINER)
        code, _, err = cli("models", "add", str(path))
        assert code == EXIT_USAGE
        assert f"{path.name} is an SDXL refiner: it refines another model's images" in err
        assert "add the base model instead" in err
        _plain(err.removeprefix("studio: "))
    assert listed_models(cli) == {}


def test_a_refused_file_in_a_model_folder_is_listed_refused_never_offered(
    models, tmp_path, cli
) -> None:
    folder = tmp_path / "collection"
    folder.mkdir()
    shutil.copy(models["edit/file.safetensors"], folder / "edit.safetensors")
    shutil.copy(models["inpainting/file.safetensors"], folder / "paint.safetensors")
    code, out, _ = cli("models", "add", str(folder), "--json")
    assert code == EXIT_OK and (json.loads(out)["models"], json.loads(out)["refused"]) == (1, 1)
    listed = listed_models(cli)
    assert listed["edit.safetensors"]["variant"] == INSTRUCT_PIX2PIX
    assert "is an InstructPix2Pix model" in listed["edit.safetensors"]["error"]
    assert "error" not in listed["paint.safetensors"]
    _, out, _ = cli("models", "list")
    assert f"refused: {folder / 'edit.safetensors'}" in out
    backend = DiffusionBackend()
    backend.model_library = lambda: ModelLibrary([folder], [], tmp_path / "h.json")
    assert [m.name for m in backend.models()] == ["paint"]
    assert backend.models()[0].variant == INPAINTING
    assert backend.examine(identify(folder / "edit.safetensors")).refused


def test_v_prediction_is_listed_from_weights_and_configurations(tmp_path, cli) -> None:
    bias = np.random.default_rng(0).standard_normal(640).astype(np.float32)
    shapes = {"cond_stage_model.model.ln_final.weight": np.zeros(8, np.float16)}
    for name, spread in (("v.safetensors", 0.2), ("eps.safetensors", 0.02)):
        probe = (bias * spread / bias.std()).astype(np.float16)  # as released files: fp16
        save_file(shapes | {V_PREDICTION_PROBE: probe}, str(tmp_path / name))
    folder = tmp_path / "v-folder"
    (folder / "scheduler").mkdir(parents=True)
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    config = {"prediction_type": "v_prediction"}
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(config))
    for path in (tmp_path / "v.safetensors", tmp_path / "eps.safetensors", folder):
        assert cli("models", "add", str(path))[0] == EXIT_OK
    listed = listed_models(cli)
    assert listed["v.safetensors"]["variant"] == V_PREDICTION
    assert listed["v.safetensors"]["architecture"] == SD2
    assert listed["eps.safetensors"]["variant"] == ""
    assert listed["v-folder"]["variant"] == V_PREDICTION
    export = tmp_path / "v-export"  # an ONNX export carries its scheduler's configuration
    shutil.copytree(folder, export)
    (export / "model_index.json").write_text(json.dumps({"unet_in_channels": 4}))
    from studio.api import ModelFile

    assert variant(ModelFile(export, "onnx", 1)) == V_PREDICTION


def test_models_given_to_the_wrong_backend_fail_before_loading_with_the_way_out(
    models, cli
) -> None:
    for form in ("file.safetensors", "folder"):
        path = models[f"inpainting/{form}"]
        args = ("generate", "a cat", "--model", str(path), "--backend", "diffusion-onnx")
        code, out, err = cli(*args, "--steps", "1")
        assert code == EXIT_USAGE and out == ""
        assert f"studio sd-export-onnx {identify(path).name} OUT" in err
        assert "loading" not in err  # refused before any job ran
        _plain(err.removeprefix("studio: "))


def test_instruct_pix2pix_given_as_model_is_refused_before_loading(models, cli) -> None:
    code, _, err = cli("generate", "a cat", "--model", str(models["edit/folder"]))
    assert code == EXIT_USAGE and "is an InstructPix2Pix model" in err
    assert "loading" not in err
    _plain(err.removeprefix("studio: "))


def test_a_lora_given_as_the_model_says_so_plainly(tmp_path, cli) -> None:
    lora = tmp_path / "ink.safetensors"
    save_file({f"{KOHYA}.lora_down.weight": np.zeros((4, 768), np.float16)}, str(lora))
    code, _, err = cli("generate", "a cat", "--model", str(lora), "--steps", "1")
    assert code != EXIT_OK
    assert "ink is a LoRA, used beside a model" in err
    _plain(err.removeprefix("studio: "))


def test_a_model_that_does_not_fit_its_architecture_says_what_not_the_library(models, cli) -> None:
    """The tiny single file is read as SD 1.x (its names say so) but its shapes are the
    tiny model's: diffusers' text (its advice, a link) stays in the log."""
    path = models["inpainting/file.safetensors"]
    code, _, err = cli("generate", "a cat", "--model", str(path), "--steps", "1")
    assert code != EXIT_OK
    line = err.strip().splitlines()[-1].removeprefix("studio: ")
    assert line.startswith("generation failed: cannot load file.safetensors as SD 1.x inpainting")
    assert "where SD 1.x inpainting has" in line
    _plain(line)
