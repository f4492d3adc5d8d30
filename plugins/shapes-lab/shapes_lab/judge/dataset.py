"""Labelled classifier inputs: synthetic images and generator scenes, segmented exactly
as the judge segments them, so training sees what inference sees."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from shapes_backend import world
from shapes_lab.judge.segment import Component, features, segment
from shapes_lab.judge.synth import IGNORE, JUNK, Item, ItemMaker, K
from shapes_lab.render import render_array
from shapes_lab.sampler import SceneSampler

P_SCENE = 0.3  # share of images that are the generator's own scenes
P_JUNK = 0.3  # share of synthetic items that are junk
P_EDGE = 0.05  # share of clean items pushed half off the canvas (cut by the edge: junk)
P_HARD, P_2X = 0.15, 0.12  # shares of images drawn with hard edges, with 2x anti-aliasing
P_BLUR, P_NOISE, P_CAST = 0.15, 0.2, 0.1  # degradations (see `_degrade`)
PLACE_TRIES = 40
CANVAS4 = world.CANVAS * K


@dataclass
class Samples:
    """Classifier inputs and labels, plus ground truth for size and centre calibration."""

    x: list[np.ndarray] = field(default_factory=list)
    y: list[int] = field(default_factory=list)
    from_scene: list[bool] = field(default_factory=list)
    # (shape index, true side, soft area, true centre y - alpha centroid y) of clean objects
    calibration: list[tuple[int, float, float, float]] = field(default_factory=list)

    def add(self, component: Component, label: int, from_scene: bool) -> None:
        self.x.append(features(component))
        self.y.append(label)
        self.from_scene.append(from_scene)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return np.stack(self.x), np.array(self.y, np.int64), np.array(self.from_scene)


def build(n_images: int, seed: int) -> Samples:
    """Labelled components from `n_images` images, deterministic given `seed`."""
    rng = np.random.default_rng(seed)
    sampler = SceneSampler(seed, pairs="any")
    maker = ItemMaker(rng)
    samples = Samples()
    for _ in range(n_images):
        if rng.random() < P_SCENE:
            _add_scene(sampler, rng, samples)
        else:
            _add_synthetic(maker, rng, samples)
    return samples


def _add_scene(sampler: SceneSampler, rng: np.random.Generator, samples: Samples) -> None:
    scene = sampler.realise(sampler.spec(world.KINDS[int(rng.integers(len(world.KINDS)))]))
    image = render_array(scene)
    hard = rng.random() < P_HARD
    if hard:
        image = _hard_edges(image, [scene.background] + [o.color for o in scene.objects])
    image, degraded = _degrade(image, rng)
    degraded |= hard
    components = segment(image).components
    for obj in scene.objects:
        x0, y0, x1, y1 = obj.bbox
        for c in components:
            if c.color == obj.color and x0 <= c.centroid[0] < x1 and y0 <= c.centroid[1] < y1:
                samples.add(c, world.SHAPES.index(obj.shape), from_scene=True)
                if not degraded:
                    shape = world.SHAPES.index(obj.shape)
                    dy = obj.center[1] - c.centroid[1]
                    samples.calibration.append((shape, obj.size_px, c.soft_area, dy))


def _add_synthetic(maker: ItemMaker, rng: np.random.Generator, samples: Samples) -> None:
    background = tuple(world.BACKGROUNDS)[int(rng.integers(len(world.BACKGROUNDS)))]
    canvas = np.empty((CANVAS4, CANVAS4, 3), np.uint8)
    canvas[:] = world.BACKGROUNDS[background]
    placed: list[tuple[Item, tuple[int, int, int, int], tuple[float, float]]] = []
    for _ in range(int(rng.integers(1, 5))):
        item = maker.junk() if rng.random() < P_JUNK else maker.clean()
        edge = item.shape is not None and rng.random() < P_EDGE
        spot = _place(item, placed, rng, edge)
        if spot is None:
            continue
        box, offset = spot
        if edge:  # the canvas cuts it: no longer one clean shape
            item.layers[0].label, item.shape = JUNK, None
        placed.append((item, box, offset))
        for layer in item.layers:
            _paint(canvas, layer.mask, offset, world.COLORS[layer.color])
    image = canvas.reshape(world.CANVAS, K, world.CANVAS, K, 3).mean(axis=(1, 3))
    mode = rng.random()
    if mode < P_HARD:
        colors = [background] + [layer.color for item, _, _ in placed for layer in item.layers]
        image = _hard_edges(image, colors)
    elif mode < P_HARD + P_2X:  # coarser anti-aliasing: 2x supersampling
        image = canvas[::2, ::2].reshape(world.CANVAS, 2, world.CANVAS, 2, 3).mean(axis=(1, 3))
    image, degraded = _degrade(np.round(image).astype(np.uint8), rng)
    for c in segment(image).components:
        for item, (x0, y0, x1, y1), offset in placed:
            if not (x0 - 1 <= c.centroid[0] < x1 + 1 and y0 - 1 <= c.centroid[1] < y1 + 1):
                continue
            labels = {layer.label for layer in item.layers if layer.color == c.color}
            if not labels:
                continue
            label = JUNK if JUNK in labels else min(labels, default=IGNORE)
            if label != IGNORE:
                samples.add(c, label, from_scene=False)
            if item.shape is not None and mode >= P_HARD + P_2X and not degraded:
                true_y = offset[1] + item.center[1]
                shape = world.SHAPES.index(item.shape)
                samples.calibration.append((shape, item.side, c.soft_area, true_y - c.centroid[1]))


def _place(
    item: Item,
    placed: list[tuple[Item, tuple[int, int, int, int], tuple[float, float]]],
    rng: np.random.Generator,
    edge: bool,
) -> tuple[tuple[int, int, int, int], tuple[float, float]] | None:
    """A 4x offset for the item: inside the canvas (or half out, for `edge`) and its 1x
    box at least MIN_GAP from every placed box. Returns (1x box, 1x offset)."""
    union = np.logical_or.reduce([layer.mask for layer in item.layers])
    ys, xs = np.nonzero(union)
    if len(xs) == 0:
        return None
    lx0, lx1, ly0, ly1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    for _ in range(PLACE_TRIES):
        if lx1 - lx0 > CANVAS4 or ly1 - ly0 > CANVAS4:
            return None
        ox = int(rng.integers(-lx0, CANVAS4 - lx1 + 1))
        oy = int(rng.integers(-ly0, CANVAS4 - ly1 + 1))
        if edge:  # push 25-55 % of it over one edge
            side = int(rng.integers(4))
            extent = (lx1 - lx0) if side < 2 else (ly1 - ly0)
            out = int(extent * rng.uniform(0.25, 0.55))
            if side == 0:
                ox = -lx0 - out
            elif side == 1:
                ox = CANVAS4 - lx1 + out
            elif side == 2:
                oy = -ly0 - out
            else:
                oy = CANVAS4 - ly1 + out
        box = (
            max((ox + lx0) // K, 0),
            max((oy + ly0) // K, 0),
            min(-(-(ox + lx1) // K), world.CANVAS),
            min(-(-(oy + ly1) // K), world.CANVAS),
        )
        if all(_apart(box, other) for _, other, _ in placed):
            return box, (ox / K, oy / K)
    return None


def _apart(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    gap = world.MIN_GAP
    return a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1]


def _paint(canvas: np.ndarray, mask: np.ndarray, offset: tuple[float, float], rgb: tuple) -> None:
    """Paint a 4x mask whose frame starts at 1x `offset`, clipped to the canvas."""
    ox, oy = round(offset[0] * K), round(offset[1] * K)
    h, w = mask.shape
    cx0, cy0 = max(ox, 0), max(oy, 0)
    cx1, cy1 = min(ox + w, CANVAS4), min(oy + h, CANVAS4)
    if cx0 >= cx1 or cy0 >= cy1:
        return
    region = mask[cy0 - oy : cy1 - oy, cx0 - ox : cx1 - ox]
    canvas[cy0:cy1, cx0:cx1][region] = rgb


def _hard_edges(image: np.ndarray, names: list[str]) -> np.ndarray:
    """No anti-aliasing: each pixel snapped to the nearest of the image's colours, so a
    pixel takes an object's colour when the object covers at least half of it."""
    palette = np.array(
        [world.BACKGROUNDS.get(n) or world.COLORS[n] for n in dict.fromkeys(names)], np.float64
    )
    distance = np.linalg.norm(image[:, :, None, :].astype(np.float64) - palette, axis=3)
    return palette[distance.argmin(axis=2)].astype(np.uint8)


def _degrade(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """Sometimes what a model's output may suffer: blur, pixel noise, a colour cast.
    Returns the image and whether it was changed."""
    out = image.astype(np.float64)
    changed = False
    if rng.random() < P_BLUR:
        sigma = rng.uniform(0.3, 0.8)
        out = ndimage.gaussian_filter(out, (sigma, sigma, 0))
        changed = True
    if rng.random() < P_NOISE:
        out += rng.normal(0.0, rng.uniform(1.0, 10.0), out.shape)
        changed = True
    if rng.random() < P_CAST:
        out += rng.normal(0.0, 8.0, 3)
        changed = True
    return (np.clip(np.round(out), 0, 255).astype(np.uint8) if changed else image), changed
