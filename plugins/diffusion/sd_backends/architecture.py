"""Which Stable-Diffusion architecture a model file holds, which variant of it (an
inpainting model, say), and what kind of file it is (a model, or an add-on: a LoRA or a
ControlNet, with the family it was made for), read from its content.

A single file by its tensor names and shapes; a diffusers folder by its index and UNet
configuration; an ONNX folder by the index Studio's exports write (else as diffusers).
Headers and configurations only, never the weights, but for one small tensor of SD 2.x
single files (whether they predict v).
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from studio.api import ModelFile, read_json_object, safetensors_shapes

SD1, SD2, SDXL, UNKNOWN = "SD 1.x", "SD 2.x", "SDXL", "unknown"
# The UNet's first cross-attention keys: their width is the text encoder's (768 for SD 1.x,
# 1024 for SD 2.x); SDXL checkpoints carry a second text encoder and the ADM embedding.
_CROSS_ATTENTION = "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"
_SDXL_MARKERS = ("conditioner.embedders.1.", "model.diffusion_model.label_emb.")
_WIDTHS = {768: SD1, 1024: SD2}
# Variants retrained with more UNet input channels, beside the 4 of the noisy latents:
# inpainting adds the mask and the masked image's latents, InstructPix2Pix the source
# image's latents. Said by the UNet's first convolution, whatever the file is named.
INPAINTING, INSTRUCT_PIX2PIX = "inpainting", "instruct-pix2pix"
_VARIANTS = {9: INPAINTING, 8: INSTRUCT_PIX2PIX}
_CONV_IN = "model.diffusion_model.input_blocks.0.0.weight"  # [width, channels, 3, 3]
# SDXL's refiner: OpenCLIP bigG alone (the base adds CLIP ViT-L as embedder 0) and an ADM
# input of its pooled text (1280) and 5 time ids (256 each, the aesthetic score among
# them) where the base takes 6: 2560 wide, not 2816.
REFINER, V_PREDICTION = "refiner", "v-prediction"
_LABEL_EMB = "model.diffusion_model.label_emb.0.0.weight"  # [width, ADM input]
_REFINER_ADM = 2560
_BIG_G_ALONE, _SECOND_EMBEDDER = "conditioner.embedders.0.model.", "conditioner.embedders.1."
# SD 2.x files come as v-prediction (2.0-v, 2.1-768) or epsilon (the 512 "base" models,
# SD-Turbo) and nothing in the file's layout says which. This bias's spread tells them apart
# in the released weights, as ComfyUI measured: well above 0.09 for v-prediction.
V_PREDICTION_PROBE = "model.diffusion_model.output_blocks.11.1.transformer_blocks.0.norm1.bias"
_V_PREDICTION_SPREAD = 0.09
_FLOATS = {"F16": "<f2", "F32": "<f4", "F64": "<f8", "BF16": "<u2"}


MODEL, LORA, CONTROLNET = "model", "lora", "controlnet"


@cache
def kind(found: ModelFile) -> str:
    """MODEL, LORA or CONTROLNET, by content (cached per file)."""
    if found.format == "safetensors":
        return kind_of(safetensors_shapes(found.path))
    if found.format == "onnx":
        index = found.path / "model_index.json"
        named = read_json_object(index).get("kind") if index.is_file() else None
        return CONTROLNET if named == CONTROLNET else MODEL
    if (found.path / "model_index.json").is_file():
        return MODEL
    config = read_json_object(found.path / "config.json")
    return CONTROLNET if "ControlNet" in str(config.get("_class_name", "")) else ""


def kind_of(shapes: dict[str, list[int]]) -> str:
    from sd_backends.controlnets import is_controlnet
    from sd_backends.loras import is_lora

    if is_lora(shapes):
        return LORA
    return CONTROLNET if is_controlnet(shapes) else MODEL


@cache
def architecture(found: ModelFile) -> str:
    """SD 1.x, SD 2.x, SDXL or unknown (cached per file, size included); for an add-on,
    the family it was made for."""
    if found.format == "safetensors":
        shapes = safetensors_shapes(found.path)
        add_on = kind_of(shapes)
        return architecture_of(shapes) if add_on == MODEL else addon_family(shapes, add_on)
    if found.format == "onnx":
        index = found.path / "model_index.json"
        named = read_json_object(index).get("architecture") if index.is_file() else None
        if named in (SD1, SD2, SDXL):
            return str(named)
        if not (found.path / "unet" / "config.json").is_file():
            return UNKNOWN
    return _diffusers_architecture(found)


@cache
def variant(found: ModelFile) -> str:
    """INPAINTING, INSTRUCT_PIX2PIX (by the UNet's input channels), REFINER, V_PREDICTION,
    or "" for an ordinary model (cached per file): from a single file's shapes (and, for
    SD 2.x, one small tensor), a Studio export's index, or a folder's configurations."""
    if found.format == "safetensors":
        return _file_variant(found.path)
    index = _config(found.path / "model_index.json")
    unet = _config(found.path / "unet" / "config.json")
    scheduler = _config(found.path / "scheduler" / "scheduler_config.json")
    # Studio's ONNX exports record the channels in their index; diffusers' UNet config says
    channels = index.get("unet_in_channels", unet.get("in_channels"))
    refiner = index.get("requires_aesthetics_score") is True or (
        unet.get("projection_class_embeddings_input_dim") == _REFINER_ADM
    )
    v = scheduler.get("prediction_type") == "v_prediction"
    return variant_by_channels(channels) or (REFINER if refiner else V_PREDICTION if v else "")


def _config(path: Path) -> dict[str, Any]:
    return read_json_object(path) if path.is_file() else {}


def _file_variant(path: Path) -> str:
    shapes = safetensors_shapes(path)
    found = variant_of(shapes)
    if found or architecture_of(shapes) != SD2:
        return found
    return V_PREDICTION if sd2_prediction_type(path, "epsilon") == "v_prediction" else ""


def variant_of(shapes: dict[str, list[int]]) -> str:
    """From a single-file checkpoint's tensor shapes: its UNet's input channels, or the
    refiner's text encoder and ADM input (not v-prediction: that needs a tensor's values)."""
    conv_in = shapes.get(_CONV_IN, [])
    channels = variant_by_channels(conv_in[1]) if len(conv_in) == 4 else ""
    names = shapes.keys()
    big_g_alone = any(n.startswith(_BIG_G_ALONE) for n in names) and not any(
        n.startswith(_SECOND_EMBEDDER) for n in names
    )
    refiner = big_g_alone or shapes.get(_LABEL_EMB, [0, 0])[-1] == _REFINER_ADM
    return channels or (REFINER if refiner else "")


def variant_by_channels(channels: object) -> str:
    """The variant whose UNet takes this many input channels ("" for 4 or unknown)."""
    return _VARIANTS.get(channels, "") if isinstance(channels, int) else ""


def architecture_of(shapes: dict[str, list[int]]) -> str:
    """From a single-file checkpoint's tensor names and shapes: SDXL's two text encoders
    and added conditioning; else the text encoder, OpenAI's CLIP (SD 1.x) or OpenCLIP
    (SD 2.x), by its names or, for files that leave it out, by the width the UNet's
    cross-attention takes."""
    names = shapes.keys()
    if any(name.startswith(_SDXL_MARKERS) for name in names):
        return SDXL
    if any(name.startswith("cond_stage_model.model.") for name in names):
        return SD2
    if any(name.startswith("cond_stage_model.transformer.") for name in names):
        return SD1
    return _WIDTHS.get(shapes.get(_CROSS_ATTENTION, [0, 0])[-1], UNKNOWN)


def addon_family(shapes: dict[str, list[int]], add_on: str) -> str:
    """The family a LoRA or ControlNet was made for, by its tensors."""
    from sd_backends.controlnets import controlnet_family
    from sd_backends.loras import lora_family

    return lora_family(shapes) if add_on == LORA else controlnet_family(shapes)


def _diffusers_architecture(found: ModelFile) -> str:
    if not (found.path / "model_index.json").is_file():  # one model alone: a ControlNet
        config = read_json_object(found.path / "config.json")
        xl = config.get("addition_embed_type") == "text_time"
        width = config.get("cross_attention_dim")
        return SDXL if xl else {768: SD1, 1024: SD2, 2048: SDXL}.get(width, UNKNOWN)
    index = read_json_object(found.path / "model_index.json")
    if "XL" in str(index.get("_class_name", "")):
        return SDXL
    unet = found.path / "unet"
    config = read_json_object(unet / "config.json") if unet.is_dir() else {}
    return _WIDTHS.get(config.get("cross_attention_dim"), UNKNOWN)


def sd2_prediction_type(path: Path, default: str, probe: bool = True) -> str:
    """ "v_prediction" or "epsilon" for an SD 2.x single file: as a config YAML beside it
    says (`parameterization: "v"`, the convention other tools follow), else (with `probe`)
    as its weights show (`V_PREDICTION_PROBE`), else `default`."""
    sidecar = next(
        (p for p in (path.with_suffix(".yaml"), path.with_suffix(".yml")) if p.is_file()), None
    )
    if sidecar is not None:
        text = sidecar.read_text(encoding="utf-8", errors="replace")
        v = re.search(r"^\s*parameterization:\s*[\"']?v[\"']?\s*$", text, re.MULTILINE)
        return "v_prediction" if v else "epsilon"
    values = _tensor_values(path, V_PREDICTION_PROBE) if probe else None
    if values is None:
        return default
    return "v_prediction" if float(values.std()) > _V_PREDICTION_SPREAD else "epsilon"


def _tensor_values(path: Path, name: str) -> Any:
    """One float tensor of a safetensors file as float64 numpy values, read from its byte
    range alone (no torch: listing models stays light); None if absent or not floats."""
    import numpy as np

    with path.open("rb") as handle:
        length = int.from_bytes(handle.read(8), "little")
        entry = json.loads(handle.read(length)).get(name)
        if not isinstance(entry, dict) or entry.get("dtype") not in _FLOATS:
            return None
        start, end = entry["data_offsets"]
        handle.seek(8 + length + start)
        raw = np.frombuffer(handle.read(end - start), _FLOATS[entry["dtype"]])
    if entry["dtype"] == "BF16":  # the high half of a float32
        raw = (raw.astype(np.uint32) << 16).view(np.float32)
    return raw.astype(np.float64)
