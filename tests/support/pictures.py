"""Test pictures: random photos and box masks, as users give them."""

from __future__ import annotations

import numpy as np
from PIL import Image


def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """An RGB picture of random pixels."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8)
    return Image.fromarray(pixels)


def box_mask(size: tuple[int, int], box: tuple[int, int, int, int]) -> Image.Image:
    """A mask (L) of `size`, white (repaint) inside `box`."""
    mask = Image.new("L", size, 0)
    mask.paste(255, box)
    return mask
