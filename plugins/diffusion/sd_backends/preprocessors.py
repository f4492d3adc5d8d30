"""The control-map preprocessors this plugin adds to Studio's (`studio.preprocessors`)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from PIL import Image

CANNY_LOW, CANNY_HIGH = 100.0, 200.0  # A1111's ControlNet defaults


def canny(image: Image.Image, settings: Mapping[str, float]) -> Image.Image:
    """White edges on black, by OpenCV's Canny (as A1111's and ComfyUI's canny), with
    thresholds `low` and `high` (0-255: weaker gradients are dropped, stronger kept,
    and those between kept where they join a strong one)."""
    import cv2

    low = float(settings.get("low", CANNY_LOW))
    high = float(settings.get("high", CANNY_HIGH))
    pixels = np.asarray(image.convert("RGB"))
    edges = cv2.Canny(pixels, low, high)
    return Image.fromarray(edges).convert("RGB")
