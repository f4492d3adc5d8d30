"""Cheap previews: latents to RGB by a fixed linear map, no VAE decode per step.

Each latent channel's typical contribution to R, G and B, fitted by the community for
each latent space (SD 1.x/2.x share one, SDXL's VAE has its own); good enough to see the
composition emerge at 1/8 of the final size."""

from __future__ import annotations

import numpy as np

SD_FACTORS = np.array(
    [
        [0.298, 0.207, 0.208],
        [0.187, 0.286, 0.173],
        [-0.158, 0.189, 0.264],
        [-0.184, -0.271, -0.473],
    ],
    np.float32,
)
SDXL_FACTORS = np.array(
    [
        [0.3651, 0.4232, 0.4341],
        [-0.2533, -0.0042, 0.1068],
        [0.1076, 0.1111, -0.0362],
        [-0.3165, -0.2492, -0.2188],
    ],
    np.float32,
)


def latents_to_rgb(latents: np.ndarray, factors: np.ndarray = SD_FACTORS) -> np.ndarray:
    """(B, 4, h, w) latents -> (h, B * w, 3) uint8: the batch side by side."""
    rgb = np.einsum("bchw,cr->bhwr", latents.astype(np.float32), factors)
    rgb = np.clip((rgb + 1.0) * 127.5, 0, 255).astype(np.uint8)
    return np.concatenate(list(rgb), axis=1)
