"""LoRA files with random factors for the tiny random models of `random_sd`, written
over the saved model's own module names and shapes, in the formats people have:
kohya / A1111 (underscored names, `alpha`; SDXL's UNet also in the original SGM names)
and diffusers/PEFT (`unet.….lora_A.weight`). Their changes are large enough that the
images change visibly."""

from __future__ import annotations

import json
from pathlib import Path

from support.random_sd import _ldm_unet_name

_FILES = {
    "unet": "unet/diffusion_pytorch_model.safetensors",
    "text_encoder": "text_encoder/model.safetensors",
    "text_encoder_2": "text_encoder_2/model.safetensors",
}
# kohya's prefixes, by model and part (SDXL's text encoders are te1 and te2)
_KOHYA = {"unet": "lora_unet_", "text_encoder": "lora_te_"}
_KOHYA_XL = {"unet": "lora_unet_", "text_encoder": "lora_te1_", "text_encoder_2": "lora_te2_"}
_ATTENTION = (".to_q", ".to_k", ".to_v", ".to_out.0", ".proj_in", ".proj_out", ".ff.net.")
_RESNET = (".conv1", ".conv2", ".conv_shortcut", ".time_emb_proj", "samplers.0.conv")


def lora_layers(
    model: Path, text: bool = True, conv: bool = False
) -> dict[tuple[str, str], tuple[int, ...]]:
    """(part, module) -> weight shape of the layers trainers change: the UNet's attention
    (and with `conv` its resnets and samplers, as LoCon does) and, with `text`, the text
    encoders' attention and MLP layers."""
    from safetensors import safe_open

    found = {}
    for part, file in _FILES.items():
        if not (model / file).is_file() or (part != "unet" and not text):
            continue
        with safe_open(str(model / file), framework="np") as handle:
            for name in handle.keys():  # noqa: SIM118
                shape = tuple(handle.get_slice(name).get_shape())
                module = name.removesuffix(".weight")
                if module == name or len(shape) not in (2, 4):
                    continue
                if part == "unet":
                    wanted = any(k in module for k in _ATTENTION) or (
                        conv and any(module.endswith(k) for k in _RESNET)
                    )
                else:
                    wanted = ".self_attn." in module or ".mlp." in module
                if wanted:
                    found[part, module] = shape
    return found


def _factors(shape: tuple[int, ...], rank: int, generator) -> tuple:
    """Random (down, up) for a weight of `shape`: a convolution's down has its kernel."""
    import torch

    down = torch.randn((rank, *shape[1:]), generator=generator) * 0.3
    up = torch.randn((shape[0], rank, *([1, 1] if len(shape) == 4 else [])), generator=generator)
    return down, up * 0.3


def write_kohya(
    model: Path,
    path: Path,
    rank: int = 4,
    alpha: float = 2.0,
    seed: int = 0,
    text: bool = True,
    conv: bool = False,
    sgm: bool = False,
    dtype: str = "float16",
) -> Path:
    """A kohya / A1111 LoRA of `model` (a saved tiny folder): `lora_unet_<module with
    underscores>.lora_down.weight`, `.lora_up.weight`, `.alpha`; text encoders as
    `lora_te_…`, or SDXL's `lora_te1_…`/`lora_te2_…` with CLIP's `text_model.` as
    kohya writes it. With `sgm`, the UNet's names in the original layout
    (`input_blocks_4_1_…`), as kohya's SDXL files have them."""
    import torch
    from safetensors.torch import save_file

    xl = (model / "text_encoder_2").is_dir()
    prefixes = _KOHYA_XL if xl else _KOHYA
    config = json.loads((model / "unet" / "config.json").read_text())
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for (part, module), shape in lora_layers(model, text, conv).items():
        if part == "unet" and sgm:
            module = _ldm_unet_name(module + ".weight", config).removesuffix(".weight")
        elif part != "unet":
            module = "text_model." + module.removeprefix("text_model.")
        name = prefixes[part] + module.replace(".", "_")
        down, up = _factors(shape, rank, generator)
        tensors[f"{name}.lora_down.weight"] = down.to(getattr(torch, dtype))
        tensors[f"{name}.lora_up.weight"] = up.to(getattr(torch, dtype))
        tensors[f"{name}.alpha"] = torch.tensor(alpha, dtype=getattr(torch, dtype))
    save_file(tensors, str(path), metadata={"ss_network_module": "networks.lora"})
    return path


def write_peft(
    model: Path,
    path: Path,
    rank: int = 4,
    seed: int = 0,
    text: bool = True,
    conv: bool = False,
    alpha: float | None = None,
) -> Path:
    """A diffusers/PEFT LoRA of `model`: `unet.<module>.lora_A.weight` (down) and
    `.lora_B.weight` (up), text encoders under `text_encoder.`/`text_encoder_2.` in the
    names the saved model has; with `alpha`, a `.alpha` per layer."""
    import torch
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for (part, module), shape in lora_layers(model, text, conv).items():
        down, up = _factors(shape, rank, generator)
        tensors[f"{part}.{module}.lora_A.weight"] = down
        tensors[f"{part}.{module}.lora_B.weight"] = up
        if alpha is not None:
            tensors[f"{part}.{module}.alpha"] = torch.tensor(alpha)
    save_file(tensors, str(path))
    return path
