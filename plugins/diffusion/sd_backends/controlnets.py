"""ControlNets from the user's files, fitted to the loaded model's UNet.

Three layouts people have: a diffusers folder (`config.json` beside safetensors weights),
and one safetensors file in diffusers' names (`controlnet_cond_embedding.`,
`down_blocks.`) or in the original one (lllyasviel's: `control_model.input_blocks.`,
`zero_convs.`, `input_hint_block.`, `middle_block_out.`, sometimes without the prefix).
A single file holds no configuration, and needs none: a ControlNet is a copy of its base
model's UNet encoder, so its configuration is the loaded UNet's (`from_unet`), with what
the copy adds (the conditioning embedding's widths) read from the file's shapes. So SD 1.x,
2.x, SDXL and custom models alike load, and weights load strictly.

Whatever the layout, the ControlNet's names and shapes are checked against the loaded UNet
before its weights are read, and one made for another model is refused saying why.

Only the standard library here at import time (the model list reads `is_controlnet` and
`controlnet_family` without torch); torch and diffusers when a ControlNet loads.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sd_backends.load_errors import load_failure
from studio.api import ModelFile, ModelFileError, PickleRefused, safetensors_shapes, sniff

Shapes = Mapping[str, Sequence[int]]
PREFIX = "control_model."  # the original layout's, as lllyasviel's files have it
_LDM_MARKERS = ("input_hint_block.", "zero_convs.", "middle_block_out.")
_DIFFUSERS_MARKERS = ("controlnet_cond_embedding.", "controlnet_down_blocks.")
_EMBEDDING = "controlnet_cond_embedding."
# by the width of its cross-attention, and whether it takes SDXL's added embedding
_FAMILIES = {(768, False): "SD 1.x", (1024, False): "SD 2.x", (2048, True): "SDXL"}
_ADDED = ("add_embedding.linear_1.weight", "label_emb.0.0.weight")


# -- what a file is ------------------------------------------------------------


def is_controlnet(names: Iterable[str]) -> bool:
    """Whether tensors of these names are a ControlNet's, in either layout."""
    markers = _LDM_MARKERS + _DIFFUSERS_MARKERS
    return any(name.removeprefix(PREFIX).startswith(markers) for name in names)


def controlnet_family(shapes: Shapes) -> str:
    """ "SD 1.x", "SD 2.x", "SDXL" or "unknown": the family a ControlNet (either layout)
    was made for, by its cross-attention's width and SDXL's added embedding."""
    names = {name.removeprefix(PREFIX) for name in shapes}
    added = any(name in names for name in _ADDED)
    return _FAMILIES.get((_cross_attention(shapes), added), "unknown")


def _cross_attention(shapes: Shapes) -> int:
    """The width of the text features its cross-attention takes (0 without one)."""
    for name, shape in shapes.items():
        if name.endswith("attn2.to_k.weight") and len(shape) == 2:
            return int(shape[1])
    return 0


# -- fitting the loaded UNet -----------------------------------------------------


def misfit(shapes: Shapes, unet: Any) -> str:
    """Why a ControlNet of these (diffusers) names and shapes cannot run beside `unet`,
    or '' when it fits: the text width its cross-attention takes, SDXL's added
    embedding, the latents it reads, its blocks' widths and the residuals it adds."""
    theirs, ours = _cross_attention(shapes), _unet_cross_attention(unet)
    if theirs and theirs != ours:
        return f"its cross-attention takes {theirs} features, this model's {ours}"
    added = shapes.get("add_embedding.linear_1.weight")
    our_added = getattr(getattr(unet, "add_embedding", None), "linear_1", None)
    if (added is None) != (our_added is None):
        return (
            "it takes SDXL's added size conditioning, this model does not"
            if added is not None
            else "it lacks the added size conditioning this model (SDXL) takes"
        )
    if added is not None and int(added[1]) != our_added.in_features:
        ours = our_added.in_features
        return f"its added conditioning takes {added[1]} features, this model's {ours}"
    conv_in = shapes.get("conv_in.weight")
    latents = unet.config.out_channels
    if conv_in is not None and int(conv_in[1]) != latents:
        return f"it reads {conv_in[1]} latent channels, this model's {latents}"
    widths = _indexed(shapes, "down_blocks.{}.resnets.0.conv1.weight")
    our_widths = [int(w) for w in unet.config.block_out_channels]
    if widths != our_widths:
        return f"its blocks are {_listed(widths)} channels wide, this model's {_listed(our_widths)}"
    residuals = _indexed(shapes, "controlnet_down_blocks.{}.weight")
    our_residuals = residual_widths(unet)
    if residuals != our_residuals:
        return (
            f"it adds residuals of {_listed(residuals)} channels to the UNet's blocks, "
            f"this model takes {_listed(our_residuals)}"
        )
    return ""


def residual_widths(unet: Any) -> list[int]:
    """The channels of each feature map the UNet's encoder keeps for its decoder (after
    its first convolution, each resnet and each downsampler): what a ControlNet adds to."""
    widths = [unet.conv_in.out_channels]
    for block in unet.down_blocks:
        widths += [resnet.out_channels for resnet in block.resnets]
        widths += [down.out_channels for down in block.downsamplers or ()]
    return widths


def _unet_cross_attention(unet: Any) -> int:
    width = unet.config.cross_attention_dim
    return int(width[0] if isinstance(width, list | tuple) else width)


def _indexed(shapes: Shapes, pattern: str) -> list[int]:
    """The first dimension of pattern.format(0), pattern.format(1)… while they exist."""
    widths = []
    while (shape := shapes.get(pattern.format(len(widths)))) is not None:
        widths.append(int(shape[0]))
    return widths


def _listed(widths: list[int]) -> str:
    return ", ".join(str(w) for w in widths) or "no"


def check_fits(name: str, shapes: Shapes, unet: Any) -> None:
    """ModelFileError saying why, when the ControlNet does not fit `unet`."""
    reason = misfit(shapes, unet)
    if reason:
        raise ModelFileError(f"{name} is a ControlNet for another model ({reason})")


# -- loading -------------------------------------------------------------------


def load_controlnet(found: ModelFile, unet: Any, dtype: Any) -> Any:
    """The ControlNetModel of a diffusers folder or a single safetensors file, checked
    against `unet` (ModelFileError why not; PickleRefused for pickled weights)."""
    if found.path.is_dir():
        net = _load_folder(found.path, unet, dtype)
    else:
        net = _load_file(found.path, unet, dtype)
    _check_finite(net, found.path.name)
    return net


def _load_folder(folder: Path, unet: Any, dtype: Any) -> Any:
    from diffusers import ControlNetModel

    config_file = folder / "config.json"
    config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
    if "ControlNet" not in str(config.get("_class_name", "")):
        raise ModelFileError(f"{folder.name} is not a ControlNet (no ControlNet config.json)")
    files = [f for f in folder.iterdir() if f.is_file() and f.suffix != ".json"]
    weights = [f for f in files if sniff(f) == "safetensors"]
    if not weights:
        pickled = [f for f in files if sniff(f) == "pickle"]
        if pickled:
            raise PickleRefused(
                f"cannot load pickled weights ({folder.name}/{pickled[0].name}): a pickle can "
                f"run code when loaded. Convert it with `studio models convert {pickled[0]}`."
            )
        raise ModelFileError(f"{folder.name} holds no safetensors weights")
    shapes: dict[str, list[int]] = {}
    for file in weights:
        shapes |= safetensors_shapes(file)
    check_fits(folder.name, shapes, unet)
    plain = (folder / "diffusion_pytorch_model.safetensors").exists() or (
        folder / "diffusion_pytorch_model.safetensors.index.json"
    ).exists()
    variant = None if plain else _variant(weights)
    try:
        return ControlNetModel.from_pretrained(
            folder, torch_dtype=dtype, local_files_only=True, use_safetensors=True, variant=variant
        )
    except MemoryError:
        raise
    except Exception as error:  # missing weights, wrong shapes, a damaged file: say which
        raise load_failure(folder.name, "", error) from error


def _variant(weights: list[Path]) -> str | None:
    """diffusers' variant of the weights' names: diffusion_pytorch_model.fp16.safetensors."""
    parts = weights[0].name.split(".")
    return parts[1] if len(parts) == 3 else None


def _load_file(path: Path, unet: Any, dtype: Any) -> Any:
    import torch
    from diffusers import ControlNetModel
    from safetensors.torch import load_file

    shapes = safetensors_shapes(path)
    if not is_controlnet(shapes):
        raise ModelFileError(f"{path.name} is not a ControlNet")
    try:
        state = {n: v.to(dtype) for n, v in diffusers_names(load_file(str(path)), unet).items()}
    except (KeyError, ValueError, IndexError) as error:
        raise ModelFileError(f"cannot read {path.name} as a ControlNet: {error}") from error
    check_fits(path.name, {name: list(value.shape) for name, value in state.items()}, unet)
    config = _config(unet, state)
    with torch.device("meta"):  # no memory for weights the file's replace at once
        net = ControlNetModel.from_config(config)
    try:
        net.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as error:  # names or shapes beside the UNet's: say which
        raise load_failure(path.name, "", error) from error
    return net


def _config(unet: Any, state: Mapping[str, Any]) -> dict[str, Any]:
    """The loaded UNet's encoder as a ControlNet (diffusers' `from_unet`), taking the
    latents (not an inpainting UNet's 9 channels) and the file's conditioning embedding."""
    import torch
    from diffusers import ControlNetModel

    first = state[_EMBEDDING + "conv_in.weight"]  # [width, image channels, 3, 3]
    blocks = len(_indexed(state_shapes(state), _EMBEDDING + "blocks.{}.weight"))
    widths = [int(first.shape[0])]
    widths += [int(state[f"{_EMBEDDING}blocks.{i}.weight"].shape[0]) for i in range(1, blocks, 2)]
    with torch.device("meta"):
        template = ControlNetModel.from_unet(
            unet,
            conditioning_embedding_out_channels=tuple(widths),
            load_weights_from_unet=False,
            conditioning_channels=int(first.shape[1]),
        )
    return {**template.config, "in_channels": int(state["conv_in.weight"].shape[1])}


def state_shapes(state: Mapping[str, Any]) -> dict[str, list[int]]:
    return {name: list(value.shape) for name, value in state.items()}


def diffusers_names(state: dict[str, Any], unet: Any) -> dict[str, Any]:
    """A single file's tensors in diffusers' names. The original layout goes through
    diffusers' converter; what it leaves out, done here: the conditioning embedding of
    any depth (the converter assumes the usual 8 convolutions) and SDXL's added
    embedding (`label_emb`)."""
    from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint

    if _EMBEDDING + "conv_in.weight" in state:
        return state
    if any(name.startswith(PREFIX) for name in state):
        state = {n.removeprefix(PREFIX): v for n, v in state.items() if n.startswith(PREFIX)}
    hint = {n: v for n, v in state.items() if n.startswith("input_hint_block.")}
    label = {n: v for n, v in state.items() if n.startswith("label_emb.")}
    rest = {n: v for n, v in state.items() if n not in hint and n not in label}
    config = {"layers_per_block": unet.config.layers_per_block}
    converted = convert_controlnet_checkpoint(rest, config)
    out = {name: value for name, value in converted.items() if value is not None}
    # input_hint_block: convolutions at even indices (SiLUs between): the first takes
    # the image, the last gives the UNet's width, those between are the blocks
    convs = sorted({int(n.split(".")[1]) for n in hint if n.endswith(".weight")})
    roles = ["conv_in", *(f"blocks.{i}" for i in range(len(convs) - 2)), "conv_out"]
    for index, role in zip(convs, roles, strict=False):
        for kind in ("weight", "bias"):
            out[f"{_EMBEDDING}{role}.{kind}"] = hint[f"input_hint_block.{index}.{kind}"]
    added = "add_embedding" if unet.config.addition_embed_type else "class_embedding"
    for name, value in label.items():  # label_emb.0.0 and .0.2: two linear layers
        layer = {"0.0": "linear_1", "0.2": "linear_2"}[name.split(".", 1)[1].rsplit(".", 1)[0]]
        out[f"{added}.{layer}.{name.rsplit('.', 1)[1]}"] = value
    return out


def _check_finite(net: Any, name: str) -> None:
    """Weights holding NaN or infinities would make black images: refuse them."""
    import torch

    for weight, tensor in net.named_parameters():
        if not torch.isfinite(tensor).all():
            raise ModelFileError(f"{name}: weight {weight} holds NaN or infinite values")


# -- the loaded ones -------------------------------------------------------------


class LoadedControlNets:
    """ControlNets loaded beside the current model, by file (path, size and time it was
    written): a request that names the same ones again finds them ready. The last few
    used stay (`keep`, or as many as a request names); the loader empties it with a new
    model (`clear`)."""

    def __init__(self, keep: int = 2) -> None:
        self.keep = keep
        self._nets: OrderedDict[tuple[str, int, int], Any] = OrderedDict()

    def __len__(self) -> int:
        return len(self._nets)

    def clear(self) -> None:
        self._nets.clear()

    def get(self, files: Sequence[ModelFile], unet: Any, device: str) -> list[Any]:
        """Each file's ControlNet for `unet` (its dtype, on `device`), loaded once."""
        nets = []
        for found in files:
            key = _stamp(found)
            if key not in self._nets:
                net = load_controlnet(found, unet, unet.dtype).to(device)
                self._nets[key] = net.eval().requires_grad_(False)
            self._nets.move_to_end(key)
            nets.append(self._nets[key])
        while len(self._nets) > max(self.keep, len(files)):
            self._nets.popitem(last=False)
        return nets


def _stamp(found: ModelFile) -> tuple[str, int, int]:
    """What a file is cached by: its path, its size and when it was last written."""
    path = found.path
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    written = max((p.stat().st_mtime_ns for p in files), default=0)
    return str(path.resolve()), sum(p.stat().st_size for p in files), written
