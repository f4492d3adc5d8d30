"""Training images for the judge's shape classifier, with a label per object.

Clean shapes are drawn exactly as `render` draws them (4x supersampled polygons from
`unit_outline`), at any size and sub-pixel position. "Junk" is everything a model may
draw that is not one clean upright shape: two shapes merged, a shape cut or occluded,
stretched, flipped or hollow, ellipses, bars, random blobs and scribbles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from shapes_backend import world
from shapes_lab.render import fill_mask, unit_outline

K = world.SUPERSAMPLE
JUNK = len(world.SHAPES)  # the label of the junk class
IGNORE = -1  # ambiguous parts (a shape barely occluded): not used for training
COLOR_NAMES = tuple(world.COLORS)
Points = list[tuple[float, float]]


@dataclass
class Layer:
    """One coloured mask in an item's local frame (4x pixels), and what it counts as."""

    mask: np.ndarray  # bool (H, W) at 4x
    color: str
    label: int


@dataclass
class Item:
    layers: list[Layer]  # painted in order, later on top
    shape: str | None = None  # for clean shapes: calibration ground truth
    side: float = 0.0
    center: tuple[float, float] = (0.0, 0.0)  # in the item's local frame, 1x pixels


def polygon_mask(points: Points, size: int) -> np.ndarray:
    """A (size, size) 4x mask of a polygon given in 1x pixels of the local frame,
    rasterised by the renderer's own rule (sub-pixel centres inside the polygon)."""
    return fill_mask(np.asarray(points, np.float64) * K, size, size)


def outline(
    shape: str,
    side: float,
    center: tuple[float, float],
    stretch: tuple[float, float] = (1.0, 1.0),
    angle: float = 0.0,
) -> Points:
    """A shape's outline in 1x pixels, optionally stretched then rotated (degrees)."""
    cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    points = []
    for x, y in unit_outline(shape):
        x, y = x * side * stretch[0], y * side * stretch[1]
        points.append((center[0] + cos * x - sin * y, center[1] + sin * x + cos * y))
    return points


def ellipse(center: tuple[float, float], rx: float, ry: float, angle: float) -> Points:
    cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    out = []
    for i in range(64):
        t = 2 * math.pi * i / 64
        x, y = rx * math.cos(t), ry * math.sin(t)
        out.append((center[0] + cos * x - sin * y, center[1] + sin * x + cos * y))
    return out


class ItemMaker:
    """Random clean and junk items, each drawn in its own square frame."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def uniform(self, low: float, high: float) -> float:
        return float(self.rng.uniform(low, high))

    def color(self, avoid: str | None = None) -> str:
        while True:
            color = COLOR_NAMES[int(self.rng.integers(len(COLOR_NAMES)))]
            if color != avoid:
                return color

    def shape(self) -> str:
        return world.SHAPES[int(self.rng.integers(len(world.SHAPES)))]

    def side(self) -> float:
        return self.uniform(10.0, 34.0)

    def clean(self) -> Item:
        shape, side = self.shape(), self.side()
        frame = side + 4
        center = (frame / 2 + self.uniform(-0.5, 0.5), frame / 2 + self.uniform(-0.5, 0.5))
        mask = polygon_mask(outline(shape, side, center), int(frame * K))
        label = world.SHAPES.index(shape)
        return Item([Layer(mask, self.color(), label)], shape, side, center)

    def junk(self) -> Item:
        makers = (
            self.merged,
            self.occluded,
            self.cut,
            self.stretched,
            self.turned,
            self.oval,
            self.bar,
            self.blob,
            self.scribble,
            self.hollow,
        )
        return makers[int(self.rng.integers(len(makers)))]()

    # Each junk maker draws into a frame of `size` 4x pixels, centred at c.
    def _frame(self, extent: float) -> tuple[int, tuple[float, float]]:
        frame = extent + 4
        return int(frame * K), (frame / 2, frame / 2)

    def merged(self) -> Item:
        """Two shapes of one colour overlapping into one component."""
        a, b = self.side(), self.side()
        size, c = self._frame(2 * max(a, b))
        offset = self.uniform(0.3, 0.7) * (a + b) / 2
        t = self.uniform(0, 2 * math.pi)
        ca = (c[0] - offset / 2 * math.cos(t), c[1] - offset / 2 * math.sin(t))
        cb = (c[0] + offset / 2 * math.cos(t), c[1] + offset / 2 * math.sin(t))
        mask = polygon_mask(outline(self.shape(), a, ca), size)
        mask |= polygon_mask(outline(self.shape(), b, cb), size)
        return Item([Layer(mask, self.color(), JUNK)])

    def occluded(self) -> Item:
        """A clean shape on top of another colour's shape, which shows only in part."""
        a, b = self.side(), self.side()
        size, c = self._frame(2 * max(a, b))
        offset = self.uniform(0.3, 0.8) * (a + b) / 2
        t = self.uniform(0, 2 * math.pi)
        top_shape = self.shape()
        ca = (c[0] - offset / 2 * math.cos(t), c[1] - offset / 2 * math.sin(t))
        cb = (c[0] + offset / 2 * math.cos(t), c[1] + offset / 2 * math.sin(t))
        bottom = polygon_mask(outline(self.shape(), a, ca), size)
        top = polygon_mask(outline(top_shape, b, cb), size)
        visible = (bottom & ~top).sum() / max(bottom.sum(), 1)
        bottom_label = JUNK if visible < 0.8 else IGNORE
        color = self.color()
        return Item(
            [
                Layer(bottom, color, bottom_label),
                Layer(top, self.color(avoid=color), world.SHAPES.index(top_shape)),
            ]
        )

    def cut(self) -> Item:
        """A shape with a straight cut taking away 40-70 % of it (smaller cuts look
        too much like a clean shape at small sizes)."""
        side = self.side() * 1.2
        size, c = self._frame(side)
        mask = polygon_mask(outline(self.shape(), side, c), size)
        t = self.uniform(0, 2 * math.pi)
        ys, xs = np.mgrid[0:size, 0:size] / K
        along = (xs - c[0]) * math.cos(t) + (ys - c[1]) * math.sin(t)
        keep = self.uniform(0.3, 0.6)
        threshold = np.quantile(along[mask], keep) if mask.any() else 0.0
        return Item([Layer(mask & (along <= threshold), self.color(), JUNK)])

    def stretched(self) -> Item:
        """A shape squashed or stretched along one axis."""
        side = self.side()
        factor = self.uniform(1.4, 2.2)
        stretch = (factor, 1 / factor) if self.rng.random() < 0.5 else (1 / factor, factor)
        stretch = (stretch[0] * 1.2, stretch[1] * 1.2)
        size, c = self._frame(side * 1.2 * factor)
        mask = polygon_mask(outline(self.shape(), side, c, stretch=stretch), size)
        return Item([Layer(mask, self.color(), JUNK)])

    def turned(self) -> Item:
        """A triangle, heart or star upside down or turned well off upright."""
        shape = ("triangle", "heart", "star")[int(self.rng.integers(3))]
        side = self.side()
        angle = {
            "triangle": self.uniform(30, 90) * (1 if self.rng.random() < 0.5 else -1),
            "heart": self.uniform(50, 310),
            "star": 36.0 + self.uniform(-8, 8),
        }[shape]
        size, c = self._frame(side * 1.2)
        mask = polygon_mask(outline(shape, side, c, angle=angle), size)
        return Item([Layer(mask, self.color(), JUNK)])

    def oval(self) -> Item:
        r = self.side() / 2
        aspect = self.uniform(1.4, 3.0)
        size, c = self._frame(2 * r * aspect)
        points = ellipse(c, r * aspect, r, self.uniform(0, 180) if self.rng.random() < 0.3 else 0)
        return Item([Layer(polygon_mask(points, size), self.color(), JUNK)])

    def bar(self) -> Item:
        w = self.uniform(6, 34)
        h = w / self.uniform(1.4, 4.0)
        if self.rng.random() < 0.5:
            w, h = h, w
        angle = self.uniform(0, 180) if self.rng.random() < 0.3 else 0.0
        size, c = self._frame(math.hypot(w, h))
        cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        corners = [(-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)]
        points = [(c[0] + cos * x - sin * y, c[1] + sin * x + cos * y) for x, y in corners]
        return Item([Layer(polygon_mask(points, size), self.color(), JUNK)])

    def blob(self) -> Item:
        """An irregular polygon around a centre."""
        r = self.side() / 2
        n = int(self.rng.integers(5, 14))
        angles = np.sort(self.rng.uniform(0, 2 * math.pi, n))
        radii = r * self.rng.uniform(0.3, 1.0, n)
        size, c = self._frame(2 * r)
        points = [
            (c[0] + q * math.cos(t), c[1] + q * math.sin(t))
            for t, q in zip(angles, radii, strict=True)
        ]
        return Item([Layer(polygon_mask(points, size), self.color(), JUNK)])

    def scribble(self) -> Item:
        extent = self.side()
        size, _ = self._frame(extent)
        n = int(self.rng.integers(2, 6))
        points = [
            (self.uniform(2, extent + 2) * K, self.uniform(2, extent + 2) * K) for _ in range(n)
        ]
        image = Image.new("L", (size, size), 0)
        width = int(self.uniform(1.5, 4.5) * K)
        ImageDraw.Draw(image).line(points, fill=255, width=width, joint="curve")
        return Item([Layer(np.asarray(image) > 0, self.color(), JUNK)])

    def hollow(self) -> Item:
        """A shape with a hole in it (an outline instead of a flat fill)."""
        shape, side = self.shape(), self.uniform(16, 34)
        size, c = self._frame(side)
        hole_center = (c[0] + self.uniform(-1, 1), c[1] + self.uniform(-1, 1))
        mask = polygon_mask(outline(shape, side, c), size)
        mask &= ~polygon_mask(outline(shape, side * self.uniform(0.35, 0.7), hole_center), size)
        return Item([Layer(mask, self.color(), JUNK)])
