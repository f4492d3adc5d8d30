"""ControlNets with random weights for the random SD models of `random_sd` (nothing
downloaded): a copy of a base model's UNet encoder whose zero-initialised outputs get
random weights too, so the control changes the image. Saved in the three layouts users
have: a diffusers folder, one safetensors file of diffusers keys, and one file in the
original (LDM, lllyasviel's) layout."""

from __future__ import annotations

import json
from pathlib import Path

from support.random_sd import _ldm_unet_name

# What a trained ControlNet learnt: its outputs start at zero (so training starts from the
# base model) and move away; random weights here, small enough to keep latents sane.
_TRAINED_FROM_ZERO = ("controlnet_down_blocks.", "controlnet_mid_block.")
_OUTPUT_SPREAD = 1.0


def build_random_controlnet(base: Path, seed: int = 1):
    """A ControlNetModel for the diffusers folder `base`'s UNet (an ordinary one, as
    ControlNets are made; it serves the base's inpainting model too): the UNet encoder's
    weights, a conditioning embedding that reaches the latents' size (as many stride-2
    steps as the VAE has), and random weights (from `seed`) where training starts from
    zero: the zero convs, the middle block's output, the embedding's last conv."""
    import torch
    from diffusers import ControlNetModel, UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(base / "unet")
    vae_blocks = len(json.loads((base / "vae" / "config.json").read_text())["block_out_channels"])
    embedding = tuple(8 * 2**i for i in range(vae_blocks))  # 8, 16 for the tiny VAE (x2)
    torch.manual_seed(seed)
    net = ControlNetModel.from_unet(
        unet, conditioning_embedding_out_channels=embedding, load_weights_from_unet=True
    )
    with torch.no_grad():
        for name, weight in net.named_parameters():
            zero = name.startswith(_TRAINED_FROM_ZERO) or "cond_embedding.conv_out" in name
            if zero:
                weight.normal_(0.0, _OUTPUT_SPREAD / max(1, weight[0].numel()) ** 0.5)
    return net


def save_controlnet_folder(net, folder: Path) -> Path:
    """As diffusers saves it: config.json and diffusion_pytorch_model.safetensors."""
    net.save_pretrained(folder, safe_serialization=True)
    return folder


def save_controlnet_diffusers_file(net, path: Path) -> Path:
    """Its diffusers state dict in one safetensors file (as some ControlNets ship)."""
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return path


def save_controlnet_ldm_file(net, path: Path, prefix: str = "control_model.") -> Path:
    """In the original layout: the UNet encoder's LDM names (`input_blocks`,
    `middle_block`, `time_embed`, `label_emb`), `zero_convs.N.0` for each residual's conv,
    `middle_block_out.0`, and the conditioning embedding as `input_hint_block.N` (convs at
    even indices, SiLUs between them), all under `prefix`."""
    from safetensors.torch import save_file

    config = dict(net.config)
    blocks = len(net.controlnet_cond_embedding.blocks)
    tensors = {}
    for name, value in net.state_dict().items():
        tensors[prefix + _ldm_controlnet_name(name, config, blocks)] = value.contiguous()
    save_file(tensors, str(path))
    return path


def _ldm_controlnet_name(name: str, config: dict, embedding_blocks: int) -> str:
    parts = name.split(".")
    if parts[0] == "controlnet_down_blocks":
        return f"zero_convs.{parts[1]}.0.{parts[2]}"
    if parts[0] == "controlnet_mid_block":
        return f"middle_block_out.0.{parts[1]}"
    if parts[0] == "controlnet_cond_embedding":
        if parts[1] == "conv_in":
            return f"input_hint_block.0.{parts[2]}"
        if parts[1] == "conv_out":
            return f"input_hint_block.{2 * (embedding_blocks + 1)}.{parts[2]}"
        return f"input_hint_block.{2 * (int(parts[2]) + 1)}.{parts[3]}"
    return _ldm_unet_name(name, config)
