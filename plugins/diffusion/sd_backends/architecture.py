"""Which Stable-Diffusion architecture a model file holds, which variant of it (an
inpainting model, say), and what kind of file it is (a model, or an add-on: a LoRA or a
ControlNet, with the family it was made for), read from its content.

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
# Variants retrained with more UNet input channels, beside the 4 of the noisy latents:
# inpainting adds the mask and the masked image's latents, InstructPix2Pix the source
# image's latents. Said by the UNet's first convolution, whatever the file is named.
INPAINTING, INSTRUCT_PIX2PIX = "inpainting", "instruct-pix2pix"
_VARIANTS = {9: INPAINTING, 8: INSTRUCT_PIX2PIX}
_CONV_IN = "model.diffusion_model.input_blocks.0.0.weight"  # [width, channels, 3, 3]


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
    """ "inpainting", "instruct-pix2pix", or "" for an ordinary model (cached per file): by
    the UNet's input channels, from a single file's shapes, a Studio export's index or a
    diffusers UNet configuration."""
    if found.format == "safetensors":
        return variant_of(safetensors_shapes(found.path))
    if found.format == "onnx":
        index = found.path / "model_index.json"
        channels = read_json_object(index).get("unet_in_channels") if index.is_file() else None
        if channels is not None:
            return variant_by_channels(channels)
    unet = found.path / "unet" / "config.json"
    return variant_by_channels(read_json_object(unet).get("in_channels")) if unet.is_file() else ""


def variant_of(shapes: dict[str, list[int]]) -> str:
    """From a single-file checkpoint's tensor shapes: its UNet's input channels."""
    conv_in = shapes.get(_CONV_IN, [])
    return variant_by_channels(conv_in[1]) if len(conv_in) == 4 else ""


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
