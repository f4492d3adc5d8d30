"""What the judge found in an image, and its verdict on a prompt."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

JUNK_SHAPE = "junk"  # a component that is not one clean shape (an extra object, always)


@dataclass(frozen=True)
class Detection:
    """One object found in an image."""

    shape: str  # one of world.SHAPES, or JUNK_SHAPE
    color: str
    size: str  # world.size_name(size_px)
    size_px: float  # estimated side s of the shape's box
    center: tuple[float, float]  # estimated centre of the shape's box, pixels, y down
    bbox: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive) of its alpha >= 0.5 pixels
    confidence: float  # the classifier's probability for `shape`
    area: float = 0.0  # soft area in pixels (sum of alpha)

    @property
    def is_junk(self) -> bool:
        return self.shape == JUNK_SHAPE

    def describe(self) -> str:
        """ "a red circle", or "an orange blob that is no clean shape" for junk."""
        article = "an" if self.color[0] in "aeiou" else "a"
        if self.is_junk:
            return f"{article} {self.color} blob that is no clean shape"
        return f"{article} {self.color} {self.shape}"

    def to_json(self) -> dict[str, Any]:
        return {
            "shape": self.shape,
            "color": self.color,
            "size": self.size,
            "size_px": round(self.size_px, 2),
            "center": [round(self.center[0], 2), round(self.center[1], 2)],
            "bbox": list(self.bbox),
            "confidence": round(self.confidence, 4),
        }


@dataclass(frozen=True)
class Detections:
    """An image read back: its background and the objects on it."""

    background: str
    background_fraction: float  # share of pixels that are plainly that background
    objects: tuple[Detection, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "background": self.background,
            "background_fraction": round(self.background_fraction, 4),
            "objects": [o.to_json() for o in self.objects],
        }


@dataclass(frozen=True)
class Verdict:
    """Whether an image satisfies a prompt, why not, and what was seen."""

    passed: bool
    failures: list[str]  # readable reasons, most informative first; empty when passed
    detections: Detections

    def __bool__(self) -> bool:
        return self.passed
