"""Stable-Diffusion pipelines with random weights, built here (nothing downloaded): a
UNet, VAE and CLIP text encoder at a chosen scale, and a CLIP tokenizer over a small
vocabulary. For tests (`tiny`) and benchmarks (`bench`); they draw noise, not pictures."""

from __future__ import annotations

from pathlib import Path

WORDS = ("a", "red", "blue", "green", "cat", "dog", "house", "tree", "on", "the", "blurry")


def byte_characters() -> list[str]:
    """The 256 printable characters byte-level BPE stands its bytes for (GPT-2's map)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    extra = (b for b in range(256) if b not in printable)
    mapping = {b: chr(b) for b in printable} | {b: chr(256 + i) for i, b in enumerate(extra)}
    return [mapping[b] for b in range(256)]


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
    "bench": {"unet": (64, 128, 256), "layers": 2, "text": 256, "text_layers": 4,
              "vae": (32, 64, 128)},
}  # fmt: skip


def build_random_sd(folder: Path, seed: int = 0, scale: str = "tiny") -> Path:
    """Save a random StableDiffusionPipeline (safetensors weights) in `folder`."""
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    vocab, merges = tiny_vocabulary()
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)
    torch.manual_seed(seed)
    c = SCALES[scale]
    depth = len(c["unet"])
    unet = UNet2DConditionModel(
        sample_size=32 // 2 ** (len(c["vae"]) - 1), in_channels=4, out_channels=4,
        layers_per_block=c["layers"], block_out_channels=c["unet"],
        down_block_types=("CrossAttnDownBlock2D",) * (depth - 1) + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (depth - 1),
        cross_attention_dim=c["text"], attention_head_dim=4, norm_num_groups=8,
    )  # fmt: skip
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=c["vae"],
        down_block_types=("DownEncoderBlock2D",) * len(c["vae"]),
        up_block_types=("UpDecoderBlock2D",) * len(c["vae"]), norm_num_groups=8,
        sample_size=32,
    )  # fmt: skip
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=c["text"], intermediate_size=2 * c["text"],
        num_hidden_layers=c["text_layers"],
        num_attention_heads=4, max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    ))  # fmt: skip
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        num_train_timesteps=1000, steps_offset=1,
    )  # fmt: skip
    pipeline = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip
    pipeline.save_pretrained(folder, safe_serialization=True)
    return folder
