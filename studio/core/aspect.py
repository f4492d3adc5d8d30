"""Aspect presets: a result size of a chosen shape, at about the model's native area.

A model draws best at the number of pixels it was trained at (512 x 512, say); other
shapes keep that area rather than a side, and every side is a multiple the backend takes.
"""

from __future__ import annotations

import math

PRESETS: tuple[tuple[str, float], ...] = (
    ("1:1", 1.0),
    ("4:3", 4 / 3),
    ("3:4", 3 / 4),
    ("3:2", 3 / 2),
    ("2:3", 2 / 3),
    ("16:9", 16 / 9),
    ("9:16", 9 / 16),
)
AS_INPUT = "as the input"
DEFAULT_NATIVE = 512  # a model that does not say: the size most models were made for


def preset_size(
    ratio: float, native: int, multiple: int = 8, min_size: int = 8, max_size: int = 8192
) -> tuple[int, int]:
    """Width and height of shape `ratio` (width / height) with about `native` x `native`
    pixels, each a multiple of `multiple` within `min_size`..`max_size` (the shape kept
    as near as those allow)."""
    if not (ratio > 0 and math.isfinite(ratio)):
        raise ValueError(f"aspect ratio must be a positive number (got {ratio})")
    step = max(1, multiple)
    width, height = native * math.sqrt(ratio), native / math.sqrt(ratio)
    shrink = min(1.0, max_size / max(width, height))  # the long side fits
    grow = max(1.0, min_size / min(width, height))  # the short side is not too small
    scale = grow if grow > 1.0 else shrink
    low = math.ceil(min_size / step) * step
    high = max(low, max_size // step * step)
    return tuple(  # type: ignore[return-value]
        min(high, max(low, round(side * scale / step) * step)) for side in (width, height)
    )


def ratio_of(size: tuple[int, int]) -> float:
    """The shape of a picture of `size` (width, height)."""
    width, height = size
    if width <= 0 or height <= 0:
        raise ValueError(f"not a picture size: {width} x {height}")
    return width / height
