"""Which Stable-Diffusion architecture a model file holds, read from its content.

A single file by its tensor names and shapes; a diffusers folder by its index and UNet
configuration; an ONNX folder by the index Studio's exports write (else as diffusers).
"""

from __future__ import annotations

from functools import cache

from studio.api import ModelFile, read_json_object, safetensors_shapes

SD1, SD2, SDXL, UNKNOWN = "SD 1.x", "SD 2.x", "SDXL", "unknown"
# The UNet's first cross-attention keys: their width is the text encoder's (768 for SD 1.x,
# 1024 for SD 2.x); SDXL checkpoints carry a second text encoder and the ADM embedding.
_CROSS_ATTENTION = "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"
_SDXL_MARKERS = ("conditioner.embedders.1.", "model.diffusion_model.label_emb.")
_WIDTHS = {768: SD1, 1024: SD2}


@cache
def architecture(found: ModelFile) -> str:
    """SD 1.x, SD 2.x, SDXL or unknown (cached per file, size included)."""
    if found.format == "safetensors":
        return architecture_of(safetensors_shapes(found.path))
    if found.format == "onnx":
        index = found.path / "model_index.json"
        named = read_json_object(index).get("architecture") if index.is_file() else None
        if named in (SD1, SD2, SDXL):
            return str(named)
        if not (found.path / "unet" / "config.json").is_file():
            return UNKNOWN
    return _diffusers_architecture(found)


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


def _diffusers_architecture(found: ModelFile) -> str:
    index = read_json_object(found.path / "model_index.json")
    if "XL" in str(index.get("_class_name", "")):
        return SDXL
    unet = found.path / "unet"
    config = read_json_object(unet / "config.json") if unet.is_dir() else {}
    return _WIDTHS.get(config.get("cross_attention_dim"), UNKNOWN)
