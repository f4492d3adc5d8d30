"""LoRAs and ControlNets in the model library: told from models, and their family, by
their tensors alone; listed as what they are; never loaded as a model; the canny
preprocessor this plugin adds to Studio's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from safetensors.numpy import save_file

from sd_backends import library
from sd_backends.architecture import (
    CONTROLNET,
    LORA,
    MODEL,
    SD1,
    SD2,
    SDXL,
    UNKNOWN,
    architecture,
    kind,
)
from studio.api import EXIT_FAILED, EXIT_OK, Control, ModelFileError, ModelLibrary
from studio.core import controls
from studio.core.inputs import InputStore
from studio.core.model_files import identify

KOHYA = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"
PEFT = "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k"
LDM_CONTROL = "control_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"
CROSS_ATTENTION = "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"


def tensors(path: Path, shapes: dict[str, tuple[int, ...]]) -> Path:
    save_file({k: np.zeros(shape, np.float16) for k, shape in shapes.items()}, str(path))
    return path


@pytest.mark.parametrize(
    ("shapes", "expected_kind", "family"),
    [
        ({f"{KOHYA}.lora_down.weight": (4, 768), f"{KOHYA}.alpha": ()}, LORA, SD1),
        ({f"{KOHYA}.lora_down.weight": (4, 1024)}, LORA, SD2),
        ({f"{PEFT}.lora_A.weight": (4, 2048), f"{PEFT}.lora_B.weight": (320, 4)}, LORA, SDXL),
        ({"lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": (4, 1280)}, LORA, SDXL),
        ({f"{KOHYA}.lora_down.weight": (4, 32)}, LORA, UNKNOWN),  # a tiny model's: not refused
        ({LDM_CONTROL: (320, 768), "control_model.zero_convs.0.0.weight": (320, 320, 1, 1)},
         CONTROLNET, SD1),
        ({"controlnet_cond_embedding.conv_in.weight": (16, 3, 3, 3),
          "add_embedding.linear_1.weight": (1280, 2816),
          "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight": (640, 2048)},
         CONTROLNET, SDXL),
        ({CROSS_ATTENTION: (320, 768)}, MODEL, SD1),
    ],
)  # fmt: skip
def test_kind_and_family_from_the_tensors(tmp_path, shapes, expected_kind, family) -> None:
    found = identify(tensors(tmp_path / "file.safetensors", shapes))
    assert kind(found) == expected_kind
    assert architecture(found) == family


def controlnet_folder(folder: Path, width: int = 768, xl: bool = False) -> Path:
    """A diffusers ControlNet: its config beside its weights (no model_index.json)."""
    folder.mkdir(parents=True)
    config = {"_class_name": "ControlNetModel", "cross_attention_dim": width}
    if xl:
        config["addition_embed_type"] = "text_time"
    (folder / "config.json").write_text(json.dumps(config))
    tensors(folder / "diffusion_pytorch_model.safetensors", {"conv_in.weight": (8, 4, 3, 3)})
    return folder


def test_models_list_shows_loras_and_controlnets_with_their_family(
    tmp_path, monkeypatch, capsys
) -> None:
    from studio.cli import main

    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "home"))
    folder = tmp_path / "collection"
    folder.mkdir()
    tensors(folder / "base.safetensors", {CROSS_ATTENTION: (320, 768)})
    tensors(folder / "ink.safetensors", {f"{KOHYA}.lora_down.weight": (4, 768)})
    controlnet_folder(folder / "canny-xl", 2048, xl=True)
    assert main(["models", "add", str(folder)]) == EXIT_OK
    capsys.readouterr()
    assert main(["models", "list", "--json"]) == EXIT_OK
    listed = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    found = {name: (row["kind"], row["architecture"]) for name, row in listed.items()}
    assert found == {
        "base": (MODEL, SD1),
        "ink": (LORA, SD1),
        "canny-xl": (CONTROLNET, SDXL),
    }
    assert main(["models", "list"]) == EXIT_OK
    text = capsys.readouterr().out
    assert "ink  LoRA SD 1.x  safetensors" in text
    assert "canny-xl  ControlNet SDXL  diffusers" in text
    code = main(["generate", "a", "--model", "ink", "--steps", "1"])
    assert code == EXIT_FAILED  # when the backend loads it
    assert "ink is a LoRA, used beside a model: --lora NAME" in capsys.readouterr().err


def test_a_backend_never_loads_an_add_on_as_its_model(tmp_path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    tensors(folder / "a-lora.safetensors", {f"{KOHYA}.lora_down.weight": (4, 768)})
    controlnet_folder(folder / "b-control")
    models = lambda: ModelLibrary([folder], [], tmp_path / "hashes.json")  # noqa: E731
    with pytest.raises(ModelFileError, match="no diffusers or safetensors model found"):
        library.find(models, "", ("diffusers", "safetensors"))
    with pytest.raises(ModelFileError, match="b-control is a ControlNet, used beside a model"):
        library.find(models, "b-control", ("diffusers", "safetensors"))
    lora = library.find_addon(models, "a-lora", LORA, ("safetensors",))
    assert lora.name == "a-lora"
    with pytest.raises(ModelFileError, match="b-control is a ControlNet, not a LoRA"):
        library.find_addon(models, "b-control", LORA, ("safetensors",))


def test_canny_is_a_preprocessor_the_plugin_adds(tmp_path) -> None:
    assert "canny" in controls.names()
    room = Image.new("RGB", (64, 48), "white")
    ImageDraw.Draw(room).rectangle((16, 12, 47, 35), fill="black")
    store = InputStore(tmp_path)
    made = controls.prepare(Control("cn", store.add(room), "canny"), store)
    assert made.map is not None
    edges = np.asarray(made.map.open().convert("L"))
    assert set(np.unique(edges)) == {0, 255}
    assert edges[12:36, 16].max() == 255 and edges[24, 30] == 0  # the outline, not inside
    high = controls.prepare(
        Control("cn", made.image, "canny", settings={"low": 254, "high": 255}), store
    )
    assert np.asarray(high.map.open()).sum() <= np.asarray(made.map.open()).sum()
