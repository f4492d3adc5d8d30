"""Drawing scenes exactly as SHAPES_DOMAIN.md defines them."""

from __future__ import annotations

import math
from functools import cache

import numpy as np
from PIL import Image

from shapes_backend import world
from shapes_backend.scene import Scene

Point = tuple[float, float]
CIRCLE_VERTICES = 96
HEART_VERTICES = 120


def render(scene: Scene) -> Image.Image:
    """The scene as a 64 x 64 RGB image."""
    return Image.fromarray(render_array(scene), "RGB")


def render_array(scene: Scene) -> np.ndarray:
    """The scene as a 64 x 64 x 3 uint8 array: drawn flat at 4x, then box-downsampled.

    Pixels are sampled at their centres (exact geometry: no half-pixel bias), and the
    4 x 4 box average gives each output pixel the share of it that a shape covers.
    Objects never overlap, so each one blends with the background alone.
    """
    return render_with_objects(scene)[0]


def render_with_objects(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """The image, and a (64, 64) map of which object covers most of each pixel: its index
    in `scene.objects` plus one, 0 where the background does (labels for training)."""
    n = world.CANVAS
    background = np.asarray(world.BACKGROUNDS[scene.background], np.float32)
    image = np.empty((n, n, 3), np.float32)
    image[:] = background
    objects = np.zeros((n, n), np.int64)
    for index, obj in enumerate(scene.objects, 1):
        (x0, y0), coverage = object_coverage(obj.shape, obj.size_px, obj.center)
        colour = np.asarray(world.COLORS[obj.color], np.float32)
        h, w = coverage.shape
        window = image[y0 : y0 + h, x0 : x0 + w]
        window += coverage[..., None] * (colour - background)
        objects[y0 : y0 + h, x0 : x0 + w][coverage >= 0.5] = index
    return np.rint(image).astype(np.uint8), objects


def object_coverage(
    shape: str, side: int, center: tuple[float, float]
) -> tuple[tuple[int, int], np.ndarray]:
    """The share of each output pixel the shape covers, over the pixels around it.

    Returns the window's top-left output pixel and its coverage (values 0..1).
    """
    k = world.SUPERSAMPLE
    outline = np.asarray(unit_outline(shape)) * (side * k) + (center[0] * k, center[1] * k)
    x0 = max(int(np.floor(outline[:, 0].min() / k)), 0)
    y0 = max(int(np.floor(outline[:, 1].min() / k)), 0)
    x1 = min(int(np.ceil(outline[:, 0].max() / k)), world.CANVAS)
    y1 = min(int(np.ceil(outline[:, 1].max() / k)), world.CANVAS)
    mask = fill_mask(outline - (x0 * k, y0 * k), (y1 - y0) * k, (x1 - x0) * k)
    coverage = mask.reshape(y1 - y0, k, x1 - x0, k).mean(axis=(1, 3), dtype=np.float32)
    return (x0, y0), coverage


def fill_mask(polygon: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pixels of a height x width grid whose centres lie inside `polygon` (even-odd)."""
    ys = np.arange(height) + 0.5  # row centres
    start, end = polygon, np.roll(polygon, -1, axis=0)
    y0, y1 = start[:, 1], end[:, 1]
    # Edges that cross each row centre (half-open in y, so shared vertices count once).
    crosses = (ys[:, None] >= np.minimum(y0, y1)) & (ys[:, None] < np.maximum(y0, y1))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (ys[:, None] - y0) / (y1 - y0)
    xs = np.where(crosses, start[:, 0] + t * (end[:, 0] - start[:, 0]), np.inf)
    xs.sort(axis=1)  # crossings left to right, the misses (inf) last
    # Inside between crossings 1-2, 3-4, ...: mark +1 where a span starts, -1 where it ends.
    rows, order = np.nonzero(np.isfinite(xs))
    first_pixel = np.clip(np.ceil(xs[rows, order] - 0.5), 0, width).astype(int)
    steps = np.zeros((height, width + 1), np.int32)
    np.add.at(steps, (rows, first_pixel), np.where(order % 2 == 0, 1, -1))
    return np.cumsum(steps[:, :width], axis=1) > 0


@cache
def unit_outline(shape: str) -> tuple[Point, ...]:
    """The shape's outline for a box of side 1 centred on (0, 0), y down."""
    return tuple(_OUTLINES[shape]())


def _circle() -> list[Point]:
    step = 2 * math.pi / CIRCLE_VERTICES
    return [(0.5 * math.cos(i * step), 0.5 * math.sin(i * step)) for i in range(CIRCLE_VERTICES)]


def _square() -> list[Point]:
    h = 0.85 / 2
    return [(-h, -h), (h, -h), (h, h), (-h, h)]


def _triangle() -> list[Point]:
    # Equilateral, width 1, one vertex up; centred vertically in its box.
    h = math.sqrt(3) / 2
    return [(0.0, -h / 2), (0.5, h / 2), (-0.5, h / 2)]


def _diamond() -> list[Point]:
    return [(0.0, -0.5), (0.5, 0.0), (0.0, 0.5), (-0.5, 0.0)]


def _star() -> list[Point]:
    # Five points, one up, on a circle of diameter 1; inner radius 0.45 of the outer.
    outer, inner = 0.5, 0.5 * 0.45
    points = []
    for i in range(10):
        radius = outer if i % 2 == 0 else inner
        angle = -math.pi / 2 + i * math.pi / 5
        points.append((radius * math.cos(angle), radius * math.sin(angle)))
    return points


def _heart() -> list[Point]:
    # The classic heart curve: two lobes, a point down; scaled to width 1 and
    # centred vertically in its box.
    raw = []
    for i in range(HEART_VERTICES):
        t = 2 * math.pi * i / HEART_VERTICES
        x = 16 * math.sin(t) ** 3
        y = -(13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t))
        raw.append((x, y))
    xs, ys = [p[0] for p in raw], [p[1] for p in raw]
    scale = 1 / (max(xs) - min(xs))
    middle = (max(ys) + min(ys)) / 2
    return [(x * scale, (y - middle) * scale) for x, y in raw]


_OUTLINES = {
    "circle": _circle,
    "square": _square,
    "triangle": _triangle,
    "diamond": _diamond,
    "star": _star,
    "heart": _heart,
}
