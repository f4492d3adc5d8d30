"""Single files that are not Stable-Diffusion models, though users keep them beside their
checkpoints: a VAE, a text encoder, a textual-inversion embedding or an upscaler alone, or
a model of another family (Flux, SD3, ...). Told by their tensor names (and, for
embeddings, a few shapes) from the header alone, so that `studio models add` refuses
them saying what they are instead of listing them as "unknown".

A file whose names say Stable Diffusion (an LDM UNet, or a text encoder under an SD
checkpoint's names) is never refused here, whatever its widths: tiny test models and
checkpoints of widths Studio does not know load, or fail to load, as they did.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from functools import cache

from sd_backends.architecture import UNKNOWN, architecture_of
from studio.api import ModelFile, safetensors_shapes

Shapes = Mapping[str, Sequence[int]]
_UNET = "model.diffusion_model."  # an SD checkpoint's UNet (the original, LDM, layout)
_RUNS = "add an SD 1.x, SD 2.x or SDXL checkpoint instead"
# Other families, by blocks only they have; ComfyUI saves them under the UNet's prefix
# too, so that prefix is set aside first. The first that matches names the family.
_FAMILIES = (
    (("double_blocks.", "single_blocks.", "single_transformer_blocks."), "a Flux model"),
    (("joint_blocks.",), "a Stable Diffusion 3 model"),
    (("cond_seq_linear.", "register_tokens"), "an AuraFlow model"),
    (("clip_txt_mapper.", "clip_txt_pooled_mapper.", "effnet_mapper."), "a Stable Cascade model"),
    (("x_embedder.", "adaln_single.", "t_embedder."), "a PixArt or other DiT model"),
)
_VIDEO = ".time_stack."  # Stable Video Diffusion: an LDM UNet with temporal layers
_WRAPPERS = (_UNET, "diffusion_model.", "model.")
# A VAE alone, in the original layout or diffusers' (or under a checkpoint's VAE prefix)
_VAE_PREFIXES = ("first_stage_model.", "vae.")
_VAE = (
    "encoder.down.",
    "decoder.up.",
    "encoder.mid.",
    "decoder.mid.",
    "quant_conv.",
    "post_quant_conv.",
    "encoder.down_blocks.",
    "decoder.up_blocks.",
)
# Text encoders alone: OpenAI's CLIP (transformers' names), OpenCLIP's, T5's
_TEXT_ENCODERS = (
    (("text_model.",), "a CLIP"),
    (("transformer.resblocks.", "token_embedding."), "an OpenCLIP"),
    (("encoder.block.", "shared.weight"), "a T5"),
)
# Textual-inversion embeddings: A1111's names (SD 1.x, 2.x), and SDXL's (one per encoder)
_EMBEDDING_NAMES = ("emb_params", "string_to_param", "string_to_token", "clip_l", "clip_g")
_MAX_EMBEDDING_VECTORS = 77  # a prompt's tokens: an embedding stands for some of them
# Upscalers: ESRGAN (old and new names), Real-ESRGAN's compact network, SwinIR
_UPSCALER_NAMES = ("model.0.weight", "conv_first.weight")
_UPSCALER_BODY = "body."
_SHOWN_PREFIXES = 3


@cache
def not_a_model(found: ModelFile) -> str:
    """Why a single safetensors file (not a LoRA or ControlNet) is no Stable-Diffusion
    model Studio can add, in a sentence for the user; '' when its names say it is one,
    or for any other format (cached per file)."""
    if found.format != "safetensors":
        return ""
    return what_else(safetensors_shapes(found.path), found.path.name)


def what_else(shapes: Shapes, name: str) -> str:
    """As `not_a_model`, from the file's tensor names and shapes."""
    names = list(shapes)
    family = _family(names)
    if family:
        return f"{name} is {family}, which Studio does not run; {_RUNS}"
    if any(n.startswith(_UNET) for n in names) or architecture_of(dict(shapes)) != UNKNOWN:
        return ""  # a Stable-Diffusion checkpoint, whatever its widths
    if not names:
        return f"{name} holds no tensors: it is no model; {_RUNS}"
    alone = _alone(shapes)
    if alone:
        return f"{name} is {alone}"
    return f"{name} holds no Stable-Diffusion model Studio recognises ({_starts(names)})"


def _family(names: Sequence[str]) -> str:
    bare = [_unwrapped(n) for n in names]
    for markers, family in _FAMILIES:
        if any(n.startswith(markers) for n in bare):
            return family
    if any(n.startswith(_UNET) and _VIDEO in n for n in names):
        return "a Stable Video Diffusion model"
    return ""


def _unwrapped(name: str) -> str:
    for wrapper in _WRAPPERS:
        if name.startswith(wrapper):
            return name.removeprefix(wrapper)
    return name


def _alone(shapes: Shapes) -> str:
    """A part of a model, or a helper model, on its own: what it is and what to do."""
    names = list(shapes)
    vae = [n.removeprefix(p) for n in names for p in _VAE_PREFIXES if n.startswith(p)] + names
    if any(n.startswith(_VAE) for n in vae):
        return (
            "a VAE alone, not a whole model: the checkpoints Studio runs carry their own "
            f"VAE; {_RUNS}"
        )
    for markers, encoder in _TEXT_ENCODERS:
        if any(n.startswith(markers) or f".{markers[0]}" in n for n in names):
            used = " (Flux and SD3 use it, which Studio does not run)" if encoder == "a T5" else ""
            return (
                f"{encoder} text encoder alone{used}, not a whole model: the checkpoints "
                f"Studio runs carry their own; {_RUNS}"
            )
    if _embedding(shapes):
        return (
            "a textual-inversion embedding, not a model, and Studio does not apply "
            "embeddings: describe the look in the prompt instead, with a checkpoint"
        )
    if any(n in _UPSCALER_NAMES for n in names) or all(n.startswith(_UPSCALER_BODY) for n in names):
        return (
            "an upscaler (ESRGAN or similar): it enlarges pictures, it does not make them "
            f"from a prompt; {_RUNS}"
        )
    return ""


def _embedding(shapes: Shapes) -> bool:
    """Only an embedding's names, each a few vectors (2-D) at most."""
    return bool(shapes) and all(
        name.split(".")[0] in _EMBEDDING_NAMES
        and len(shape) <= 2
        and (len(shape) < 2 or shape[0] <= _MAX_EMBEDDING_VECTORS)
        for name, shape in shapes.items()
    )


def _starts(names: Sequence[str]) -> str:
    """The first parts of the tensors' names, most common first: what the user can look
    up, or tell us."""
    counts = Counter(n.split(".")[0] + ("." if "." in n else "") for n in names)
    shown = [prefix for prefix, _ in counts.most_common(_SHOWN_PREFIXES)]
    more = ", …" if len(counts) > _SHOWN_PREFIXES else ""
    return f"its tensors start with {', '.join(shown)}{more}"
