"""Files users keep beside their checkpoints that are no Stable-Diffusion model (a VAE, a
text encoder, an embedding or an upscaler alone, a model of another family), told by
their tensor names: refused by `studio models add` saying what they are (exit 2, nothing
saved), listed refused in a model folder, never offered; `studio sd-export-onnx` refuses
them, and the variants the backends refuse, before loading anything. Checkpoints whose
names say Stable Diffusion stay accepted, whatever their widths. Real files, tiny shapes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file
from support.studio_cli import listed_models

from sd_backends.backend import DiffusionBackend
from sd_backends.other_files import not_a_model, what_else
from studio.api import EXIT_OK, EXIT_USAGE, ModelLibrary
from studio.core.model_files import identify

UNET = "model.diffusion_model."
CROSS_ATTENTION = f"{UNET}input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"
CONV_IN = f"{UNET}input_blocks.0.0.weight"
# What each file holds (names and tiny shapes, as the real ones are named), and what a
# user is told it is
OTHER_FILES: dict[str, tuple[dict[str, tuple[int, ...]], str]] = {
    "vae": (
        {
            "encoder.down.0.block.0.conv1.weight": (4, 3, 3, 3),
            "decoder.up.0.block.0.conv1.weight": (4, 4, 3, 3),
            "quant_conv.weight": (8, 8, 1, 1),
        },
        "vae.safetensors is a VAE alone, not a whole model",
    ),
    "vae-diffusers": (
        {"encoder.down_blocks.0.resnets.0.conv1.weight": (4, 3, 3, 3)},
        "vae-diffusers.safetensors is a VAE alone",
    ),
    "clip-l": (
        {"text_model.encoder.layers.0.mlp.fc1.weight": (8, 4)},
        "clip-l.safetensors is a CLIP text encoder alone, not a whole model",
    ),
    "open-clip": (
        {"transformer.resblocks.0.attn.in_proj_weight": (12, 4), "token_embedding.weight": (9, 4)},
        "open-clip.safetensors is an OpenCLIP text encoder alone",
    ),
    "t5xxl": (
        {"encoder.block.0.layer.0.SelfAttention.q.weight": (4, 4), "shared.weight": (9, 4)},
        "t5xxl.safetensors is a T5 text encoder alone (Flux and SD3 use it",
    ),
    "style-embedding": (
        {"emb_params": (2, 768)},
        "style-embedding.safetensors is a textual-inversion embedding, not a model",
    ),
    "xl-embedding": (
        {"clip_l": (2, 768), "clip_g": (2, 1280)},
        "xl-embedding.safetensors is a textual-inversion embedding",
    ),
    "4x-esrgan": (
        {"model.0.weight": (8, 3, 3, 3), "model.1.sub.0.RDB1.conv1.0.weight": (4, 8, 3, 3)},
        "4x-esrgan.safetensors is an upscaler (ESRGAN or similar)",
    ),
    "realesrgan": (
        {"conv_first.weight": (8, 3, 3, 3), "body.0.rdb1.conv1.weight": (4, 8, 3, 3)},
        "realesrgan.safetensors is an upscaler",
    ),
    "flux-dev": (
        {"double_blocks.0.img_attn.qkv.weight": (12, 4), "single_blocks.0.linear1.weight": (8, 4)},
        "flux-dev.safetensors is a Flux model, which Studio does not run",
    ),
    "flux-comfy": (  # ComfyUI's checkpoints put Flux under the UNet's prefix
        {f"{UNET}double_blocks.0.img_attn.qkv.weight": (12, 4), "vae.decoder.conv_in.weight": (4,)},
        "flux-comfy.safetensors is a Flux model, which Studio does not run",
    ),
    "sd3-medium": (
        {f"{UNET}joint_blocks.0.x_block.attn.qkv.weight": (12, 4),
         f"{UNET}x_embedder.proj.weight": (4,)},
        "sd3-medium.safetensors is a Stable Diffusion 3 model",
    ),
    "pixart": (
        {"x_embedder.proj.weight": (4, 4, 2, 2), "t_embedder.mlp.0.weight": (4, 4)},
        "pixart.safetensors is a PixArt or other DiT model",
    ),
    "cascade-c": (
        {"clip_txt_mapper.weight": (4, 4), "down_blocks.0.0.channelwise.0.weight": (4, 4)},
        "cascade-c.safetensors is a Stable Cascade model",
    ),
    "svd": (
        {f"{UNET}input_blocks.1.0.time_stack.in_layers.0.weight": (4,), CONV_IN: (8, 4, 3, 3)},
        "svd.safetensors is a Stable Video Diffusion model",
    ),
    "mystery": (
        {"layers.0.weight": (4, 4), "layers.1.weight": (4, 4), "head.bias": (4,)},
        "mystery.safetensors holds no Stable-Diffusion model Studio recognises "
        "(its tensors start with layers., head.)",
    ),
}  # fmt: skip
# What loads today stays accepted: names that say Stable Diffusion, whatever the widths
SD_FILES: dict[str, dict[str, tuple[int, ...]]] = {
    "tiny-unet": {CROSS_ATTENTION: (32, 48), CONV_IN: (32, 4, 3, 3)},  # unknown widths
    "sd1": {CROSS_ATTENTION: (320, 768), "first_stage_model.quant_conv.weight": (4,)},
    "sd2-text": {"cond_stage_model.model.ln_final.weight": (8,)},
}  # fmt: skip


def tensors(path: Path, shapes: dict[str, tuple[int, ...]]) -> Path:
    save_file({k: np.zeros(s, np.float16) for k, s in shapes.items()}, str(path))
    return path


def _plain(message: str) -> None:
    for leak in ("Error:", "Error(", "  "):
        assert leak not in message, message


@pytest.mark.parametrize("name", sorted(OTHER_FILES))
def test_other_files_are_refused_at_add_saying_what_they_are(tmp_path, cli, name) -> None:
    shapes, said = OTHER_FILES[name]
    path = tensors(tmp_path / f"{name}.safetensors", shapes)
    code, out, err = cli("models", "add", str(path))
    assert (code, out) == (EXIT_USAGE, "")
    assert said in err, err
    _plain(err.removeprefix("studio: "))
    assert listed_models(cli) == {}  # nothing saved to the settings


def test_every_reason_says_what_to_do_or_what_the_tensors_are() -> None:
    for name, (shapes, _) in OTHER_FILES.items():
        reason = what_else(shapes, f"{name}.safetensors")
        assert "instead" in reason or "its tensors start with" in reason, reason
    assert what_else({}, "empty.safetensors").startswith("empty.safetensors holds no tensors")
    many = {f"part{i}.weight": (1,) for i in range(5)} | {"part0.bias": (1,)}
    assert what_else(many, "m").endswith("(its tensors start with part0., part1., part2., …)")


@pytest.mark.parametrize("name", sorted(SD_FILES))
def test_stable_diffusion_names_are_accepted_as_today(tmp_path, cli, name) -> None:
    path = tensors(tmp_path / f"{name}.safetensors", SD_FILES[name])
    assert not_a_model(identify(path)) == ""
    code, _, err = cli("models", "add", str(path))
    assert code == EXIT_OK, err
    assert "error" not in listed_models(cli)[path.name]


def test_other_files_in_a_model_folder_are_listed_refused_and_never_offered(tmp_path, cli) -> None:
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    for name in ("vae", "flux-dev", "mystery"):
        tensors(folder / f"{name}.safetensors", OTHER_FILES[name][0])
    tensors(folder / "dream.safetensors", SD_FILES["sd1"])
    code, out, _ = cli("models", "add", str(folder), "--json")
    assert code == EXIT_OK and (json.loads(out)["models"], json.loads(out)["refused"]) == (1, 3)
    listed = listed_models(cli)
    for name in ("vae", "flux-dev", "mystery"):
        assert OTHER_FILES[name][1] in listed[f"{name}.safetensors"]["error"]
    assert "error" not in listed["dream.safetensors"]
    _, text, _ = cli("models", "list")
    assert f"refused: {folder / 'flux-dev.safetensors'}\n    flux-dev.safetensors is a Flux" in text
    backend = DiffusionBackend()
    backend.model_library = lambda: ModelLibrary([folder], [], tmp_path / "h.json")
    assert [m.name for m in backend.models()] == ["dream"]
    assert backend.examine(identify(folder / "vae.safetensors")).refused.startswith(
        "vae.safetensors is a VAE alone"
    )


def test_given_as_the_model_they_fail_before_loading(tmp_path, cli) -> None:
    path = tensors(tmp_path / "flux-dev.safetensors", OTHER_FILES["flux-dev"][0])
    code, out, err = cli("generate", "a cat", "--model", str(path), "--steps", "1")
    assert code == EXIT_USAGE and out == ""
    assert "flux-dev.safetensors is a Flux model, which Studio does not run" in err
    assert "loading" not in err


def _refused_variants(folder: Path) -> dict[str, tuple[Path, str]]:
    """Checkpoints of variants the backends refuse, as their headers show them."""
    folder.mkdir()
    edit = {CONV_IN: (16, 8, 3, 3), CROSS_ATTENTION: (320, 768)}
    refiner = {
        "conditioner.embedders.0.model.ln_final.weight": (8,),
        f"{UNET}label_emb.0.0.weight": (16, 2560),
        CONV_IN: (16, 4, 3, 3),
    }
    return {
        "edit": (tensors(folder / "edit.safetensors", edit), "is an InstructPix2Pix model"),
        "refiner": (tensors(folder / "refiner.safetensors", refiner), "is an SDXL refiner"),
        "vae": (tensors(folder / "vae.safetensors", OTHER_FILES["vae"][0]), "is a VAE alone"),
        "flux": (tensors(folder / "flux.safetensors", OTHER_FILES["flux-dev"][0]), "is a Flux"),
    }


def test_sd_export_onnx_refuses_what_the_backends_refuse_before_loading(
    tmp_path, cli, monkeypatch
) -> None:
    from sd_backends import single_file

    loaded: list[Path] = []
    monkeypatch.setattr(
        single_file, "load_single_file", lambda path, *_a, **_k: loaded.append(path)
    )
    for name, (path, said) in _refused_variants(tmp_path / "models").items():
        out = tmp_path / f"{name}-onnx"
        code, stdout, err = cli("sd-export-onnx", str(path), str(out))
        assert (code, stdout) == (EXIT_USAGE, ""), err
        assert f"{path.name} {said}" in err
        backend_says = DiffusionBackend().examine(identify(path)).refused
        assert err.strip() == f"studio: {backend_says}"  # the same reason, word for word
        assert "loading" not in err and not out.exists()
        _plain(err.removeprefix("studio: "))
    assert loaded == []
