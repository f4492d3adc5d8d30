"""img2img and inpainting for the ONNX backend, in numpy: what diffusers' inpainting
pipelines compute over the PyTorch backend's modules (`picture_pipelines`), so both
backends make the same images from the same picture, mask and seed.

- Where: the same canvas as the PyTorch backend (`pictures.plan`: the model's native
  area at the region's aspect, whole or only-masked) and the same put-back.
- Start: the last `int(steps x strength)` steps of the schedule run, from the picture's
  latents (the VAE encoder's mean x the scaling factor) noised to the first of them with
  each image's own noise; at strength 1, from the noise alone, as for text.
- Each step: a 9-channel inpainting UNet sees the latents beside the mask (nearest, at
  latent size) and the latents of the picture with the mask's pixels zeroed (grey);
  an ordinary UNet's latents are set back to the picture's, noised to the next step's
  level, outside the mask. img2img is inpainting with a mask of ones (no blending).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from sd_backends import pictures
from sd_backends.noise import StepNoise
from sd_backends.numpy_schedulers import Denoise, Sampler
from sd_backends.pictures import PictureJob

Encode = Callable[[np.ndarray], np.ndarray]  # (B, 3, H, W) in [-1, 1] -> scaled latents


def latent_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W) -> (1, 1, height, width): nearest neighbours, as torch's default
    `interpolate` picks them (source index floor(i x in / out))."""

    def rows(inside: int, outside: int) -> np.ndarray:
        picked = np.floor(np.arange(outside, dtype=np.float32) * np.float32(inside / outside))
        return np.minimum(picked.astype(np.int64), inside - 1)

    small = mask[rows(mask.shape[0], height)][:, rows(mask.shape[1], width)]
    return small[None, None].astype(np.float32)


def sample(
    job: PictureJob,
    sampler: Sampler,
    noise: np.ndarray,
    encode: Encode,
    denoise: Denoise,
    rng: StepNoise,
    on_step: Callable[[int, np.ndarray], None],
    unet_channels: int,
) -> np.ndarray:
    """The latents of each image (one per row of `noise`): the picture's truncated
    schedule; `denoise` is the guided UNet (its input: latents, or 9 channels)."""
    first = job.first_step(sampler.steps)
    height, width = noise.shape[-2:]
    mask = latent_mask(job.model_mask, height, width)
    pixels = job.image.transpose(2, 0, 1)[None] * 2.0 - 1.0  # [-1, 1], as the VAE takes
    inpainting_unet = unet_channels == 9
    repaints_all = bool(mask.all())
    # an ordinary UNet blends with the picture's latents, and starts from them below 1
    needs_clean = first > 0 or not (inpainting_unet or repaints_all)
    clean = encode(pixels.astype(np.float32)) if needs_clean else None
    start = None if first == 0 else sampler.noised(clean, noise, first)
    model: Denoise = denoise
    if inpainting_unet:  # [latents, mask, masked picture's latents], as diffusers orders them
        kept = (pixels * (job.model_mask < 0.5)).astype(np.float32)
        beside = np.concatenate([mask, encode(kept)], axis=1)
        beside = np.repeat(beside, len(noise), axis=0)

        def model(x: np.ndarray, timestep: float) -> np.ndarray:
            return denoise(np.concatenate([x, beside], axis=1), timestep)

    blend = None
    if not inpainting_unet and not repaints_all:
        assert clean is not None

        def blend(i: int, latents: np.ndarray) -> np.ndarray:
            last = i == sampler.steps - 1
            picture = clean if last else sampler.noised(clean, noise, i + 1)
            return ((1 - mask) * picture + mask * latents).astype(np.float32)

    return sampler.run(noise, model, rng, on_step, first=first, start=start, blend=blend)


def generation_geometry(index: dict[str, Any]) -> tuple[int, int] | None:
    """(native size, size multiple) from an exported folder's index; None for a folder
    exported before pictures (its index lacks them)."""
    try:
        scale, blocks = int(index["vae_scale_factor"]), int(index["unet_blocks"])
        return int(index["unet_sample_size"]) * scale, pictures.size_multiple(scale, blocks)
    except (KeyError, TypeError, ValueError):
        return None
