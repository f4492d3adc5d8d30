"""Diffusers' inpainting pipelines, drawing as Studio draws (imported with torch, when a
request has a picture).

Two changes to how they start: each image's noise is Studio's (numpy, from the image's
own seed: `noise.initial_noise`), and a picture is encoded to the mean of the VAE's latent
distribution, not a sample of it. So a seed makes the same image on any machine, alone or
in a batch, and the torch-free backend, which has the same noise and the encoder's mean,
can draw it too. Everything else is diffusers': strength (the last steps x strength of
the schedule run), 9-channel inpainting UNets (mask and masked picture beside the
latents), and for ordinary UNets the latents outside the mask blended back with the
picture's at every step. With a mask of ones and an ordinary UNet, that is img2img.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import (
    StableDiffusionInpaintPipeline,
    StableDiffusionXLInpaintPipeline,
    StableDiffusionXLPipeline,
)


class _SeededLatents:
    """The start of the denoising: Studio's noise (`studio_noise`, set before each call)
    over the picture's latents at the first timestep that runs."""

    studio_noise: torch.Tensor | None = None

    def _encode_vae_image(self: Any, image: torch.Tensor, generator: Any) -> torch.Tensor:
        vae = self.vae
        upcast = bool(getattr(vae.config, "force_upcast", False)) and image.dtype != torch.float32
        dtype = image.dtype
        if upcast:  # SDXL's VAE overflows in fp16
            vae.to(dtype=torch.float32)
            image = image.float()
        latents = vae.encode(image).latent_dist.mean
        if upcast:
            vae.to(dtype=dtype)
        return vae.config.scaling_factor * latents.to(dtype)

    def prepare_latents(
        self: Any,
        batch_size: int,
        num_channels_latents: int,
        height: int,
        width: int,
        dtype: torch.dtype,
        device: torch.device,
        generator: Any,
        latents: torch.Tensor | None = None,
        image: torch.Tensor | None = None,
        timestep: torch.Tensor | None = None,
        is_strength_max: bool = True,
        return_noise: bool = False,
        return_image_latents: bool = False,
        **_: Any,
    ) -> tuple[torch.Tensor, ...]:
        if self.studio_noise is None:
            raise RuntimeError("the picture pipeline was called without Studio's noise")
        noise = self.studio_noise.to(device=device, dtype=dtype)
        image_latents = None
        if return_image_latents or not is_strength_max:
            assert image is not None
            image = image.to(device=device, dtype=dtype)
            image_latents = image if image.shape[1] == 4 else self._encode_vae_image(image, None)
            image_latents = image_latents.repeat(batch_size // image_latents.shape[0], 1, 1, 1)
        if is_strength_max:  # the whole schedule runs: pure noise, as for text alone
            start = noise * self.scheduler.init_noise_sigma
        else:
            start = self.scheduler.add_noise(image_latents, noise, timestep)
        outputs: tuple[torch.Tensor, ...] = (start,)
        if return_noise:
            outputs += (noise,)
        if return_image_latents:
            assert image_latents is not None
            outputs += (image_latents,)
        return outputs


class SeededInpaint(_SeededLatents, StableDiffusionInpaintPipeline):
    pass


class SeededInpaintXL(_SeededLatents, StableDiffusionXLInpaintPipeline):
    pass


def picture_pipeline(pipeline: Any) -> Any:
    """An inpainting pipeline over the loaded pipeline's own modules (no copy)."""
    xl = isinstance(pipeline, StableDiffusionXLPipeline | StableDiffusionXLInpaintPipeline)
    made = (SeededInpaintXL if xl else SeededInpaint)(**pipeline.components)
    made.set_progress_bar_config(disable=True)
    return made
