"""Pixels to components: background, per-pixel alpha blends, connected objects.

Numpy and scipy only. Every pixel is read as an alpha blend of the background and one
object colour, `p = (1 - a) * background + a * colour`, which is exactly what the
renderer's 4x supersampling produces at anti-aliased edges. A pixel belongs to colour
`c` when `c` explains it best, with `a >= 0.5` and a small residual; pixels that no
blend explains are noise and ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from shapes_backend import world

BACKGROUND_NAMES = tuple(world.BACKGROUNDS)
COLOR_NAMES = tuple(world.COLORS)
_BACKGROUNDS = np.array(list(world.BACKGROUNDS.values()), np.float32)
_COLORS = np.array(list(world.COLORS.values()), np.float32)

BACKGROUND_TOLERANCE = 40.0  # RGB distance within which a pixel is plain background
RESIDUAL_TOLERANCE = 30.0  # RGB distance off a blend line that still counts as that blend
MIN_ALPHA = 0.5  # a pixel is an object's when at least half of it is that object
MIN_AREA = 16.0  # soft area (sum of alpha): a small star (s = 11) has ~40, noise less
CROP = 20  # side of the classifier's square input
_EIGHT = np.ones((3, 3), bool)  # 8-connectivity: thin star tips stay attached


@dataclass(frozen=True)
class Component:
    """One connected object candidate of a single colour."""

    color: str
    bbox: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive) of the alpha >= 0.5 pixels
    soft_area: float  # sum of alpha over the component and its anti-aliased rim
    hard_area: int  # pixels with alpha >= 0.5
    centroid: tuple[float, float]  # alpha-weighted, pixel i spans [i, i + 1)
    alpha: np.ndarray  # (h + 2, w + 2) soft alpha of the bbox plus a 1 px rim


@dataclass(frozen=True)
class Segmentation:
    background: str
    background_fraction: float  # share of pixels that are plainly the background colour
    components: tuple[Component, ...]


def to_canvas(image: Image.Image | np.ndarray) -> np.ndarray:
    """A 64 x 64 x 3 float32 RGB array; other sizes are resized with a box filter.

    Accepts PIL images of any mode and arrays shaped HxW, HxWx1, HxWx3 or HxWx4
    (alpha dropped); non-uint8 arrays are clipped to 0..255 first."""
    if isinstance(image, Image.Image):
        pil = image.convert("RGB")
    else:
        array = np.asarray(image)
        if array.dtype != np.uint8:
            array = np.clip(np.nan_to_num(array.astype(np.float64)), 0, 255).astype(np.uint8)
        if array.ndim == 2:
            array = array[:, :, None]
        if array.ndim != 3 or array.shape[0] == 0 or array.shape[1] == 0:
            raise ValueError(f"expected an HxWx3 image, got shape {array.shape}")
        if array.shape[2] == 1:
            array = np.repeat(array, 3, axis=2)
        array = np.ascontiguousarray(array[:, :, :3])
        if array.shape[:2] == (world.CANVAS, world.CANVAS):
            return array.astype(np.float32)
        pil = Image.fromarray(array, "RGB")
    if pil.size != (world.CANVAS, world.CANVAS):
        pil = pil.resize((world.CANVAS, world.CANVAS), Image.Resampling.BOX)
    return np.asarray(pil, dtype=np.float32)


def find_background(pixels: np.ndarray) -> tuple[int, float, np.ndarray]:
    """The background colour explaining the most pixels, the share it explains, and
    its measured RGB (the median of those pixels: robust to a slight colour cast)."""
    flat = pixels.reshape(-1, 3)
    difference = flat[:, None, :] - _BACKGROUNDS[None]
    near = np.einsum("nbc,nbc->nb", difference, difference) < BACKGROUND_TOLERANCE**2
    counts = near.sum(axis=0)
    if counts.max() == 0:  # nothing is plainly background: take the nearest to the median
        median = np.median(flat, axis=0)
        index = int(np.argmin(np.linalg.norm(_BACKGROUNDS - median, axis=1)))
        return index, 0.0, _BACKGROUNDS[index]
    index = int(np.argmax(counts))
    exact = (flat == _BACKGROUNDS[index]).all(axis=1).sum()
    if 2 * exact > counts[index]:  # then the median is the palette colour itself
        measured = _BACKGROUNDS[index]
    else:
        measured = np.median(flat[near[:, index]], axis=0).astype(np.float32)
    return index, float(counts[index]) / len(flat), measured


def blend(pixels: np.ndarray, background: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel and object colour: alpha in [0, 1] and squared residual, (H, W, 8) each,
    for blends of the `background` RGB with each palette colour."""
    d = pixels - background  # (H, W, 3)
    direction = _COLORS - background  # (8, 3)
    length2 = (direction**2).sum(axis=1)
    dot = d @ direction.T  # (H, W, 8)
    alpha = np.clip(dot / length2, 0.0, 1.0)
    residual2 = (d**2).sum(axis=2, keepdims=True) - 2 * alpha * dot + alpha**2 * length2
    return alpha, np.maximum(residual2, 0.0)


def segment(image: Image.Image | np.ndarray) -> Segmentation:
    """Background and object components of an image (see the module docstring)."""
    pixels = to_canvas(image)
    background, fraction, measured = find_background(pixels)
    alpha, residual2 = blend(pixels, measured)
    fits = residual2 < RESIDUAL_TOLERANCE**2
    best = np.argmin(residual2, axis=2)
    best_alpha = np.take_along_axis(alpha, best[:, :, None], axis=2)[:, :, 0]
    hard = (best_alpha >= MIN_ALPHA) & fits.any(axis=2)
    hard &= np.take_along_axis(fits, best[:, :, None], axis=2)[:, :, 0]
    owner = np.where(hard, best, -1)  # colour index owning each pixel, -1 for none
    components = []
    for color in np.unique(owner[owner >= 0]):
        labels, n = ndimage.label(owner == color, structure=_EIGHT)
        soft = np.where(fits[:, :, color], alpha[:, :, color], 0.0).astype(np.float32)
        # Each component also takes the anti-aliased rim around it: the unowned pixels
        # next to it (where two meet, the higher label takes the pixel).
        grown = ndimage.grey_dilation(labels, footprint=_EIGHT)
        region = np.where(labels > 0, labels, np.where(hard, 0, grown))
        index = np.arange(1, n + 1)
        areas = ndimage.sum_labels(soft, region, index)
        boxes = ndimage.find_objects(labels)
        for label in index[areas >= MIN_AREA]:  # smaller ones are noise: not measured
            components.append(
                _component(int(color), labels, region, int(label), boxes[label - 1], soft)
            )
    return Segmentation(BACKGROUND_NAMES[background], fraction, tuple(components))


def _component(
    color: int,
    labels: np.ndarray,
    region: np.ndarray,
    label: int,
    box: tuple[slice, slice],
    soft: np.ndarray,
) -> Component:
    """Measure one labelled component: its soft alpha over itself and its rim."""
    size = labels.shape[0]
    y0, y1, x0, x1 = box[0].start, box[0].stop, box[1].start, box[1].stop
    # The window is the bbox plus a 1 px rim, zero-padded where it leaves the canvas.
    wy0, wy1, wx0, wx1 = max(y0 - 1, 0), min(y1 + 1, size), max(x0 - 1, 0), min(x1 + 1, size)
    window = np.where(region[wy0:wy1, wx0:wx1] == label, soft[wy0:wy1, wx0:wx1], 0.0)
    crop = np.zeros((y1 - y0 + 2, x1 - x0 + 2), np.float32)
    crop[wy0 - y0 + 1 : wy1 - y0 + 1, wx0 - x0 + 1 : wx1 - x0 + 1] = window
    area = float(window.sum())
    weight = max(area, 1e-6)
    centroid = (
        float((window.sum(axis=0) * (np.arange(wx0, wx1) + 0.5)).sum() / weight),
        float((window.sum(axis=1) * (np.arange(wy0, wy1) + 0.5)).sum() / weight),
    )
    return Component(
        color=COLOR_NAMES[color],
        bbox=(x0, y0, x1, y1),
        soft_area=area,
        hard_area=int((labels[y0:y1, x0:x1] == label).sum()),
        centroid=centroid,
        alpha=crop,
    )


def features(component: Component) -> np.ndarray:
    """The classifier's input: the soft mask fitted into CROP x CROP keeping its aspect,
    then a few scalars (fill of the bbox, log aspect, scale, hardness of the edges)."""
    crop = component.alpha
    h, w = crop.shape
    scale = CROP / max(h, w)
    resized = _resample_matrix(h, scale) @ crop @ _resample_matrix(w, scale).T
    x0, y0, x1, y1 = component.bbox
    bw, bh = x1 - x0, y1 - y0
    area = component.soft_area
    scalars = np.array(
        [
            area / (bw * bh),
            np.log(bw / bh),
            np.sqrt(area) / 16.0,
            max(bw, bh) / 32.0,
            component.hard_area / area,
        ],
        np.float32,
    )
    return np.concatenate([resized.ravel().astype(np.float32), scalars])


FEATURES = CROP * CROP + 5


def _resample_matrix(n: int, scale: float) -> np.ndarray:
    """(CROP, n) area-averaging weights mapping n cells, scaled and centred, onto CROP."""
    offset = (CROP - n * scale) / 2
    edges = offset + np.arange(n + 1) * scale  # input cell boundaries in output units
    lo = np.maximum(edges[None, :-1], np.arange(CROP)[:, None])
    hi = np.minimum(edges[None, 1:], np.arange(CROP)[:, None] + 1)
    return np.clip(hi - lo, 0.0, None).astype(np.float32)  # overlap, in output pixels
