"""Which Stable-Diffusion architecture a model holds: the plugin reads it from the file's
content (the core knows only formats), and `studio models` shows what the plugin says."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from sd_backends.architecture import SD1, SD2, SDXL, UNKNOWN, architecture, architecture_of
from studio.api import ModelFile, ModelFileError
from studio.core.model_files import DIFFUSERS, ONNX, SAFETENSORS, identify

CROSS_ATTENTION = "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"


def checkpoint(path: Path, tensors: dict[str, tuple[int, ...]]) -> Path:
    save_file({k: np.zeros(shape, np.float16) for k, shape in tensors.items()}, str(path))
    return path


@pytest.mark.parametrize(
    ("tensors", "expected"),
    [
        ({CROSS_ATTENTION: (320, 768), "first_stage_model.decoder.conv_in.bias": (4,)}, SD1),
        ({"cond_stage_model.transformer.text_model.final_layer_norm.bias": (8,)}, SD1),
        ({CROSS_ATTENTION: (320, 1024)}, SD2),
        ({"cond_stage_model.model.ln_final.weight": (8,), CROSS_ATTENTION: (8, 768)}, SD2),
        ({"conditioner.embedders.1.model.ln_final.weight": (8,), CROSS_ATTENTION: (8, 2048)}, SDXL),
        ({"model.diffusion_model.label_emb.0.0.weight": (8, 8)}, SDXL),
        ({CROSS_ATTENTION: (320, 512)}, UNKNOWN),
        ({"some.other.weight": (3, 3)}, UNKNOWN),
    ],
)
def test_single_file_architecture_from_names_and_shapes(tmp_path, tensors, expected) -> None:
    found = identify(checkpoint(tmp_path / "model.bin", tensors))  # the extension says nothing
    assert (found.format, found.name) == (SAFETENSORS, "model")
    assert architecture(found) == expected
    assert architecture_of({k: list(v) for k, v in tensors.items()}) == expected


def _diffusers(folder: Path, pipeline: str, width: int | None) -> Path:
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text(json.dumps({"_class_name": pipeline}))
    if width is not None:
        config = {"cross_attention_dim": width}
        (folder / "unet" / "config.json").write_text(json.dumps(config))
    return folder


def test_diffusers_folders_say_their_architecture(tmp_path) -> None:
    for name, pipeline, width, expected in (
        ("sd15", "StableDiffusionPipeline", 768, SD1),
        ("sd21", "StableDiffusionPipeline", 1024, SD2),
        ("sdxl", "StableDiffusionXLPipeline", 2048, SDXL),
        ("other", "StableDiffusionPipeline", 512, UNKNOWN),
    ):
        found = identify(_diffusers(tmp_path / name, pipeline, width))
        assert (found.format, architecture(found)) == (DIFFUSERS, expected)


def test_a_damaged_configuration_is_said_when_read(tmp_path) -> None:
    folder = _diffusers(tmp_path / "damaged", "StableDiffusionPipeline", None)
    (folder / "unet" / "config.json").write_text("{not json")
    found = identify(folder)  # the core does not read it
    with pytest.raises(ModelFileError, match=r"cannot read unet/config\.json"):
        architecture(found)


def test_onnx_folders_by_the_index_of_the_export_else_as_diffusers(tmp_path) -> None:
    """Studio's exports name the architecture in their index; other exports carry the
    diffusers configuration (or nothing that says)."""
    named = tmp_path / "named"
    named.mkdir()
    (named / "model_index.json").write_text(json.dumps({"architecture": SDXL}))
    configured = _diffusers(tmp_path / "configured", "OnnxStableDiffusionPipeline", 1024)
    bare = tmp_path / "bare"
    bare.mkdir()
    for folder, expected in ((named, SDXL), (configured, SD2), (bare, UNKNOWN)):
        assert architecture(ModelFile(folder, ONNX, 1)) == expected, folder.name


def test_models_list_shows_the_architecture_the_backends_read(
    tmp_path, monkeypatch, capsys
) -> None:
    from studio.api import EXIT_OK
    from studio.cli import main

    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "home"))
    folder = tmp_path / "collection"
    folder.mkdir()
    checkpoint(folder / "a.safetensors", {CROSS_ATTENTION: (320, 768)})
    single = checkpoint(tmp_path / "b.safetensors", {CROSS_ATTENTION: (320, 1024)})
    _diffusers(folder / "c", "StableDiffusionXLPipeline", 2048)
    assert main(["models", "add", str(folder)]) == EXIT_OK
    assert main(["models", "add", str(single)]) == EXIT_OK
    assert capsys.readouterr().out.splitlines()[-1] == f"added b: {SD2}, safetensors"
    assert main(["models", "list", "--json"]) == EXIT_OK
    listed = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert {k: v["architecture"] for k, v in listed.items()} == {"a": SD1, "b": SD2, "c": SDXL}
    assert {k: v["backends"] for k, v in listed.items()} == {
        "a": ["diffusion"],
        "b": ["diffusion"],
        "c": ["diffusion"],
    }
    assert listed["b"]["hash"] == hashlib.sha256(single.read_bytes()).hexdigest()[:10]


CONV_IN = "model.diffusion_model.input_blocks.0.0.weight"


@pytest.mark.parametrize(
    ("conv_in", "expected"),
    [((320, 9, 3, 3), "inpainting"), ((320, 8, 3, 3), "instruct-pix2pix"), ((320, 4, 3, 3), "")],
)
def test_the_variant_is_read_from_the_unets_input_channels(tmp_path, conv_in, expected) -> None:
    """In a single file's shapes, a diffusers UNet configuration, a Studio export's index."""
    from sd_backends.architecture import variant

    found = identify(
        checkpoint(tmp_path / "any-name.bin", {CONV_IN: conv_in, CROSS_ATTENTION: (8, 768)})
    )
    assert (architecture(found), variant(found)) == (SD1, expected)
    folder = _diffusers(tmp_path / "folder", "StableDiffusionPipeline", 768)
    (folder / "unet" / "config.json").write_text(json.dumps({"in_channels": conv_in[1]}))
    assert variant(identify(folder)) == expected
    export = tmp_path / "export"
    export.mkdir()
    (export / "model_index.json").write_text(json.dumps({"unet_in_channels": conv_in[1]}))
    assert variant(ModelFile(export, ONNX, 1)) == expected
    assert variant(identify(checkpoint(tmp_path / "no-unet.bin", {"other": (3, 3)}))) == ""
