"""Turning what a backend returns into checked RGB images."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

PREVIEW_SIDE = 256


class BadImage(ValueError):
    """A backend returned something that is not a usable image."""


def to_pil(image: Any) -> Image.Image:
    """An RGB PIL image from a PIL image or an HxWx{1,3,4} array (uint8, or float in [0, 1])."""
    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4) or 0 in array.shape:
        raise BadImage(f"expected an HxWx3 image, got an array of shape {array.shape}")
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.number):
            raise BadImage(f"image values of type {array.dtype} are not numbers")
        if not np.isfinite(array).all():
            raise BadImage("the image contains NaN or infinite values")
        array = (np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return Image.fromarray(np.ascontiguousarray(array[:, :, :3]), "RGB")


def preview_of(image: Any, side: int = PREVIEW_SIDE) -> Image.Image:
    """A copy at most `side` pixels across, for live previews (small ones stay as they are)."""
    pil = to_pil(image)
    if max(pil.size) > side:
        pil = pil.copy()
        pil.thumbnail((side, side), Image.Resampling.BILINEAR)
    return pil
