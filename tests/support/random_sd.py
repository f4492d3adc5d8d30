"""Stable-Diffusion pipelines with random weights, built here (nothing downloaded): a
UNet, VAE and CLIP text encoder at a chosen scale, and a CLIP tokenizer over a small
vocabulary. For tests (`tiny`) and benchmarks (`bench`); they draw noise, not pictures."""

from __future__ import annotations

import json
from pathlib import Path

WORDS = ("a", "red", "blue", "green", "cat", "dog", "house", "tree", "on", "the", "blurry")


def byte_characters() -> list[str]:
    """The 256 characters byte-level BPE stands its bytes for (GPT-2's and CLIP's map), in
    CLIP's vocabulary order: the printable bytes as themselves, then the others."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    extra = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + i) for i in range(len(extra))]


def tiny_vocabulary() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Single characters, the words above as whole tokens (their merges spelled out),
    and CLIP's two special tokens."""
    chars = byte_characters()
    vocab = chars + [c + "</w>" for c in chars]
    merges: list[tuple[str, str]] = []
    for word in WORDS:
        done = word[0]
        for i, char in enumerate(word[1:], 1):
            piece = char + ("</w>" if i == len(word) - 1 else "")
            merges.append((done, piece))
            done += piece
            if done not in vocab:
                vocab.append(done)
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    return {token: i for i, token in enumerate(vocab)}, merges


SCALES = {
    # UNet widths and blocks, text width and layers, VAE widths (its scale: 2^(len - 1))
    "tiny": {"unet": (16, 32), "layers": 1, "text": 32, "text_layers": 2, "vae": (8, 16)},
    "bench": {
        "unet": (64, 128, 256),
        "layers": 2,
        "text": 256,
        "text_layers": 4,
        "vae": (32, 64, 128),
    },
}


def _tokenizer():
    from transformers import CLIPTokenizer

    vocab, merges = tiny_vocabulary()
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)


def _text_config(tokenizer, width: int, layers: int, **extra):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=width,
        intermediate_size=2 * width,
        num_hidden_layers=layers,
        num_attention_heads=4,
        max_position_embeddings=77,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **extra,
    )


def _vae(widths: tuple[int, ...], scaling: float):
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=widths,
        down_block_types=("DownEncoderBlock2D",) * len(widths),
        up_block_types=("UpDecoderBlock2D",) * len(widths),
        norm_num_groups=8,
        sample_size=32,
        scaling_factor=scaling,
    )


def _scheduler(**extra):
    from diffusers import EulerDiscreteScheduler

    return EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        steps_offset=1,
        **extra,
    )


# An inpainting UNet takes the noisy latents, the mask and the masked image's latents
INPAINTING_CHANNELS = 4 + 1 + 4


def build_random_sd(
    folder: Path,
    seed: int = 0,
    scale: str = "tiny",
    lcm: bool = False,
    inpainting: bool = False,
) -> Path:
    """Save a random StableDiffusionPipeline (safetensors weights) in `folder`; with `lcm`,
    shaped as LCM-distilled models are: the UNet takes the guidance scale as an input
    (`time_cond_proj_dim`) and the scheduler is LCM's; with `inpainting`, an inpainting
    model's StableDiffusionInpaintPipeline (a UNet of 9 input channels)."""
    import torch
    from diffusers import (
        LCMScheduler,
        StableDiffusionInpaintPipeline,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextModel

    tokenizer = _tokenizer()
    torch.manual_seed(seed)
    c = SCALES[scale]
    depth = len(c["unet"])
    unet = UNet2DConditionModel(
        sample_size=32 // 2 ** (len(c["vae"]) - 1),
        in_channels=INPAINTING_CHANNELS if inpainting else 4,
        out_channels=4,
        layers_per_block=c["layers"],
        block_out_channels=c["unet"],
        down_block_types=("CrossAttnDownBlock2D",) * (depth - 1) + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (depth - 1),
        cross_attention_dim=c["text"],
        attention_head_dim=4,
        norm_num_groups=8,
        time_cond_proj_dim=16 if lcm else None,
    )
    vae = _vae(c["vae"], 0.18215)
    scheduler = LCMScheduler.from_config(_scheduler().config) if lcm else _scheduler()
    text_encoder = CLIPTextModel(_text_config(tokenizer, c["text"], c["text_layers"]))
    pipeline_class = StableDiffusionInpaintPipeline if inpainting else StableDiffusionPipeline
    pipeline = pipeline_class(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipeline.save_pretrained(folder, safe_serialization=True)
    return folder


def build_random_sdxl(folder: Path, seed: int = 0, inpainting: bool = False) -> Path:
    """Save a tiny random StableDiffusionXLPipeline: two text encoders (the second wider,
    as SDXL's is, with a projection), a UNet with SDXL's added text and time conditioning;
    with `inpainting`, a StableDiffusionXLInpaintPipeline (a UNet of 9 input channels)."""
    import torch
    from diffusers import (
        StableDiffusionXLInpaintPipeline,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    tokenizer = _tokenizer()
    torch.manual_seed(seed)
    time_dim = 8  # SDXL adds 6 size numbers (original size, crop, target) to the pooled text
    unet = UNet2DConditionModel(
        sample_size=16,
        in_channels=INPAINTING_CHANNELS if inpainting else 4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(16, 32),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        cross_attention_dim=32 + 48,
        norm_num_groups=8,
        addition_embed_type="text_time",
        addition_time_embed_dim=time_dim,
        projection_class_embeddings_input_dim=48 + 6 * time_dim,
    )
    pipeline_class = StableDiffusionXLInpaintPipeline if inpainting else StableDiffusionXLPipeline
    pipeline = pipeline_class(
        vae=_vae((8, 16), 0.13025),
        text_encoder=CLIPTextModel(_text_config(tokenizer, 32, 2)),
        text_encoder_2=CLIPTextModelWithProjection(
            _text_config(tokenizer, 48, 2, projection_dim=48)
        ),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=_scheduler(timestep_spacing="leading"),
    )
    pipeline.save_pretrained(folder, safe_serialization=True)
    return folder


def save_single_file(folder: Path, path: Path, open_clip: bool = False) -> Path:
    """Save the diffusers folder's weights as one original-layout (LDM) safetensors file,
    the layout other tools write: UNet under `model.diffusion_model.`, VAE under
    `first_stage_model.`, the text encoder under `cond_stage_model.transformer.` (SD 1.x's
    CLIP) or, with `open_clip`, `cond_stage_model.model.` in OpenCLIP's names (SD 2.x);
    SDXL's two under `conditioner.embedders.0.transformer.` and `.1.model.`. An inpainting
    UNet's first convolution keeps its shape, [width, 9, 3, 3], as
    `model.diffusion_model.input_blocks.0.0.weight`, as released inpainting files have it."""
    from safetensors.torch import save_file

    tensors = single_file_tensors(folder, open_clip)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    return path


def single_file_tensors(folder: Path, open_clip: bool = False) -> dict:
    """The tensors `save_single_file` writes, by their original-layout names."""
    from safetensors.torch import load_file

    unet_config = json.loads((folder / "unet" / "config.json").read_text())
    tensors = {}
    unet = load_file(folder / "unet" / "diffusion_pytorch_model.safetensors")
    for name, value in unet.items():
        tensors["model.diffusion_model." + _ldm_unet_name(name, unet_config)] = value
    vae_blocks = len(json.loads((folder / "vae" / "config.json").read_text())["block_out_channels"])
    for name, value in load_file(folder / "vae" / "diffusion_pytorch_model.safetensors").items():
        ldm = _ldm_vae_name(name, vae_blocks)
        if ".mid.attn_1." in ldm and value.ndim == 2:
            value = value[:, :, None, None]  # the original keeps attention as 1x1 convolutions
        tensors["first_stage_model." + ldm] = value
    text = load_file(folder / "text_encoder" / "model.safetensors")
    if (folder / "text_encoder_2").is_dir():
        tensors |= _clip_names(text, "conditioner.embedders.0.transformer.")
        second = load_file(folder / "text_encoder_2" / "model.safetensors")
        tensors |= _open_clip_names(second, "conditioner.embedders.1.model.")
    elif open_clip:
        tensors |= _open_clip_names(text, "cond_stage_model.model.")
    else:
        tensors |= _clip_names(text, "cond_stage_model.transformer.")
    return tensors


def _clip_names(weights: dict, prefix: str) -> dict:
    """transformers' CLIP names, as the original keeps them (transformers 5 dropped the
    "text_model." of CLIPTextModel's)."""
    return {
        prefix + (k if k.startswith("text_model.") else "text_model." + k): v
        for k, v in weights.items()
    }


_OPEN_CLIP = {
    "embeddings.token_embedding.weight": "token_embedding.weight",
    "embeddings.position_embedding.weight": "positional_embedding",
    "final_layer_norm.": "ln_final.",
    "layer_norm1.": "ln_1.",
    "layer_norm2.": "ln_2.",
    "mlp.fc1.": "mlp.c_fc.",
    "mlp.fc2.": "mlp.c_proj.",
    "self_attn.out_proj.": "attn.out_proj.",
    "encoder.layers.": "transformer.resblocks.",
}


def _open_clip_names(weights: dict, prefix: str) -> dict:
    """A CLIP text encoder in OpenCLIP's names: one in_proj for q, k and v, the
    projection transposed."""
    import torch

    weights = {k.removeprefix("text_model."): v for k, v in weights.items()}
    out = {}
    for name, value in weights.items():
        if name == "text_projection.weight":
            out[prefix + "text_projection"] = value.T
            continue
        if ".self_attn.q_proj." in name:
            kind = name.rsplit(".", 1)[1]
            parts = [weights[name.replace("q_proj", p)] for p in ("q_proj", "k_proj", "v_proj")]
            name = name.replace(f"self_attn.q_proj.{kind}", f"attn.in_proj_{kind}")
            value = torch.cat(parts)
        elif ".self_attn.k_proj." in name or ".self_attn.v_proj." in name:
            continue
        for ours, theirs in _OPEN_CLIP.items():
            name = name.replace(ours, theirs)
        out[prefix + name] = value
    return out


_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}


def _resnet(rest: str) -> str:
    part, _, tail = rest.partition(".")
    return f"{_RESNET[part]}.{tail}"


def _ldm_unet_name(name: str, config: dict) -> str:
    layers = config["layers_per_block"]
    fixed = {
        "time_embedding.linear_1": "time_embed.0",
        "time_embedding.linear_2": "time_embed.2",
        "conv_in": "input_blocks.0.0",
        "conv_norm_out": "out.0",
        "conv_out": "out.2",
        "add_embedding.linear_1": "label_emb.0.0",
        "add_embedding.linear_2": "label_emb.0.2",
    }
    for ours, theirs in fixed.items():
        if name.startswith(ours + "."):
            return theirs + name[len(ours) :]
    parts = name.split(".")
    if parts[0] == "down_blocks":
        block = int(parts[1])
        if parts[2] == "downsamplers":
            return f"input_blocks.{(block + 1) * (layers + 1)}.0.op." + ".".join(parts[5:])
        index = 1 + block * (layers + 1) + int(parts[3])
        rest = ".".join(parts[4:])
        return (
            f"input_blocks.{index}.0.{_resnet(rest)}"
            if parts[2] == "resnets"
            else f"input_blocks.{index}.1.{rest}"
        )
    if parts[0] == "mid_block":
        rest = ".".join(parts[3:])
        if parts[1] == "attentions":
            return f"middle_block.1.{rest}"
        return f"middle_block.{2 * int(parts[2])}.{_resnet(rest)}"
    if parts[0] == "up_blocks":
        block = int(parts[1])
        base = block * (layers + 1)
        if parts[2] == "upsamplers":
            has_attention = config["up_block_types"][block].startswith("CrossAttn")
            return f"output_blocks.{base + layers}.{2 if has_attention else 1}.conv." + ".".join(
                parts[5:]
            )
        index = base + int(parts[3])
        rest = ".".join(parts[4:])
        return (
            f"output_blocks.{index}.0.{_resnet(rest)}"
            if parts[2] == "resnets"
            else f"output_blocks.{index}.1.{rest}"
        )
    raise ValueError(f"unexpected UNet weight {name}")


_VAE_ATTENTION = {
    "group_norm": "norm",
    "to_q": "q",
    "to_k": "k",
    "to_v": "v",
    "to_out.0": "proj_out",
}


def _ldm_vae_name(name: str, blocks: int) -> str:
    parts = name.split(".")
    side = parts[0]
    if side in ("quant_conv", "post_quant_conv"):
        return name
    if parts[1] in ("conv_in", "conv_out"):
        return name
    if parts[1] == "conv_norm_out":
        return f"{side}.norm_out." + ".".join(parts[2:])
    if parts[1] == "mid_block":
        if parts[2] == "attentions":
            inner = ".".join(parts[4:])
            for ours, theirs in _VAE_ATTENTION.items():
                if inner.startswith(ours + "."):
                    return f"{side}.mid.attn_1.{theirs}{inner[len(ours) :]}"
        return f"{side}.mid.block_{int(parts[3]) + 1}." + _vae_resnet(".".join(parts[4:]))
    block = int(parts[2])
    level = block if parts[1] == "down_blocks" else blocks - 1 - block  # up blocks reversed
    kind = "down" if parts[1] == "down_blocks" else "up"
    if parts[3] in ("downsamplers", "upsamplers"):
        sampler = "downsample" if kind == "down" else "upsample"
        return f"{side}.{kind}.{level}.{sampler}.conv." + ".".join(parts[6:])
    return f"{side}.{kind}.{level}.block.{parts[4]}." + _vae_resnet(".".join(parts[5:]))


def _vae_resnet(rest: str) -> str:
    return rest.replace("conv_shortcut", "nin_shortcut")
