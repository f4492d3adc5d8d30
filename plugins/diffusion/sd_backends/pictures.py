"""What both SD backends do with an input picture and its mask, before and after the model
runs: where it generates, how the mask is feathered, and how the result goes back.

- **Sizes.** The result has the request's size (the CLI gives an img2img request the
  picture's size, snapped to a multiple of 8, and an inpainting one the picture's exact
  size). The picture is scaled to that size first. The model runs at its native area
  (native x native pixels: 512 for SD 1.x) with the aspect of the region it redraws, in
  multiples it can take, and its output is scaled back: a 4000 x 3000 photo is not
  diffused at 4000 x 3000, as InvokeAI's canvas does it.
- **The region.** The whole picture; or, only-masked (`inpaint_area: masked`), the
  mask's bounding box with `padding` pixels around it, clipped to the picture: a small
  object in a large photo is redrawn at the model's full resolution, then pasted back.
- **The mask**, white = repaint, thresholded at half, is feathered inward by `blur`
  pixels: 1 well inside, falling to 0 at its edge, 0 outside. The result is the
  picture blended with the model's output through it, so **outside the mask every pixel
  is the picture's own**, exactly (as A1111 composites inpainting).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from studio.api import Control, GenerationRequest

MASK_BLUR = 4  # pixels of feather, A1111's default
PADDING = 32  # pixels around the mask in only-masked mode, A1111's default
WHOLE, MASKED = "whole", "masked"  # inpaint areas
MASK_THRESHOLD = 128

Box = tuple[int, int, int, int]  # (left, top, right, bottom), right and bottom excluded


@dataclass(frozen=True)
class Canvas:
    """Where a picture request is generated and how it is put back."""

    size: tuple[int, int]  # the result's (width, height): the picture is scaled to it
    region: Box  # the part of the (scaled) picture the model redraws
    generation: tuple[int, int]  # the (width, height) the model runs at

    @property
    def whole(self) -> bool:
        return self.region == (0, 0, *self.size)


def size_multiple(vae_scale: int, unet_blocks: int) -> int:
    """What a generation's sides must be multiples of: the UNet halves the latents once
    per block but the last, and diffusers asks for multiples of 8."""
    return math.lcm(8, vae_scale * 2 ** (unet_blocks - 1))


def generation_size(width: int, height: int, native: int, multiple: int) -> tuple[int, int]:
    """The model's native area at the aspect of width x height, in multiples of `multiple`
    (at least one multiple a side)."""
    aspect = width / height
    w = math.sqrt(native * native * aspect)
    h = w / aspect

    def snap(side: float) -> int:
        return max(multiple, round(side / multiple) * multiple)

    return snap(w), snap(h)


def plan(
    size: tuple[int, int],
    native: int,
    multiple: int,
    mask: np.ndarray | None = None,
    area: str = WHOLE,
    padding: int = PADDING,
) -> Canvas:
    """The canvas of a result of `size`; `mask` (bool, at `size`) and `area` MASKED crop
    the region to the mask and `padding` pixels around it."""
    width, height = size
    region: Box = (0, 0, width, height)
    if area == MASKED and mask is not None:
        rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if len(rows):
            region = (
                max(0, int(columns[0]) - padding),
                max(0, int(rows[0]) - padding),
                min(width, int(columns[-1]) + 1 + padding),
                min(height, int(rows[-1]) + 1 + padding),
            )
    left, top, right, bottom = region
    return Canvas(size, region, generation_size(right - left, bottom - top, native, multiple))


def scaled(picture: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The picture at `size` (RGB): a Lanczos resize when it differs. An RGB picture at
    its size is returned as it is (convert would copy a 12-MP photo, twice a request)."""
    picture = picture if picture.mode == "RGB" else picture.convert("RGB")
    return picture if picture.size == size else picture.resize(size, Image.Resampling.LANCZOS)


def mask_array(mask: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """The mask at `size` as bool (white = repaint), scaled first when it differs."""
    grey = mask.convert("L")
    if grey.size != size:
        grey = grey.resize(size, Image.Resampling.BILINEAR)
    return np.asarray(grey) >= MASK_THRESHOLD


def feathered(mask: np.ndarray, blur: int) -> np.ndarray:
    """A float mask, 1 at least `blur` pixels inside `mask`, falling to 0 at its edge and
    0 outside it. A Gaussian blur of the mask is 1/2 at the edge: rescaling the blur's
    upper half to [0, 1] feathers inward only, in time linear in the pixels."""
    hard = mask.astype(np.float32)
    if blur <= 0 or not mask.any():
        return hard
    soft = Image.fromarray(mask.astype(np.uint8) * 255).filter(ImageFilter.GaussianBlur(blur / 2))
    inner = np.clip((np.asarray(soft, np.float32) / 255.0 - 0.5) * 2.0, 0.0, 1.0)
    return np.minimum(inner, hard)


def model_inputs(
    picture: Image.Image, mask: Image.Image | None, canvas: Canvas
) -> tuple[np.ndarray, np.ndarray | None]:
    """What the model takes: the region of the picture at the generation size, (H, W, 3)
    float in [0, 1], and the mask there, (H, W) float 0 or 1 (None without a mask)."""
    region = scaled(picture, canvas.size).crop(canvas.region)
    image = np.asarray(scaled(region, canvas.generation), np.float32) / 255.0
    if mask is None:
        return image, None
    hard = mask_array(mask, canvas.size)
    left, top, right, bottom = canvas.region
    cropped = Image.fromarray(hard[top:bottom, left:right].astype(np.uint8) * 255)
    resized = cropped.resize(canvas.generation, Image.Resampling.BILINEAR)
    return image, (np.asarray(resized) >= MASK_THRESHOLD).astype(np.float32)


def put_back(
    picture: Image.Image,
    made: np.ndarray,
    canvas: Canvas,
    mask: Image.Image | None = None,
    blur: int = MASK_BLUR,
) -> np.ndarray:
    """The result, (H, W, 3) uint8 at the canvas's size: the model's output `made`
    ((h, w, 3) float in [0, 1] at the generation size) scaled to its region; with a mask,
    blended into the picture through the feathered mask, the picture's own pixels
    everywhere outside it."""
    out = (np.clip(made, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    left, top, right, bottom = canvas.region
    drawn = np.asarray(scaled(Image.fromarray(out), (right - left, bottom - top)))
    if mask is None and canvas.whole:
        return drawn
    result = np.array(scaled(picture, canvas.size))
    if mask is None:
        result[top:bottom, left:right] = drawn
        return result
    hard = mask_array(mask, canvas.size)[top:bottom, left:right]
    rows, columns = np.flatnonzero(hard.any(axis=1)), np.flatnonzero(hard.any(axis=0))
    if not len(rows):
        return result
    # Blend only the mask's box (in float32), with room for the blur to see the mask's
    # edge: a small mask on a 12-megapixel photo costs the box, not the photo.
    room = 2 * blur + 2
    y0, y1 = max(0, rows[0] - room), min(hard.shape[0], rows[-1] + 1 + room)
    x0, x1 = max(0, columns[0] - room), min(hard.shape[1], columns[-1] + 1 + room)
    weight = feathered(hard[y0:y1, x0:x1], blur)[..., None]
    original = result[top + y0 : top + y1, left + x0 : left + x1]
    new = drawn[y0:y1, x0:x1].astype(np.float32)
    blended = (original * (1.0 - weight) + new * weight + 0.5).astype(np.uint8)
    original[...] = np.where(weight > 0, blended, original)
    return result


@dataclass(frozen=True)
class PictureJob:
    """A picture request's inputs at the generation size, and how its results go back."""

    picture: Image.Image
    mask: Image.Image | None
    canvas: Canvas
    image: np.ndarray  # (H, W, 3) float in [0, 1]
    model_mask: np.ndarray  # (H, W) float 0 or 1, 1 = repaint (all ones for img2img)
    strength: float
    blur: int

    @classmethod
    def plan(cls, request: GenerationRequest, native: int, multiple: int) -> PictureJob:
        """Request options `inpaint_area`, `inpaint_padding` and `mask_blur`; a request
        with no strength (a mask, and a backend default not applied) repaints it whole."""
        assert request.image is not None
        options = request.options
        picture = request.image.open()
        mask = request.mask.open() if request.mask is not None else None
        size = (request.width, request.height)
        canvas = plan(
            size,
            native=native,
            multiple=multiple,
            mask=None if mask is None else mask_array(mask, size),
            area=str(options.get("inpaint_area", WHOLE)),
            padding=int(options.get("inpaint_padding", PADDING)),
        )
        image, model_mask = model_inputs(picture, mask, canvas)
        if model_mask is None:
            model_mask = np.ones(image.shape[:2], np.float32)
        blur = int(options.get("mask_blur", MASK_BLUR))
        return cls(picture, mask, canvas, image, model_mask, request.strength or 1.0, blur)

    def first_step(self, steps: int) -> int:
        """The schedule's first step that runs: the last steps x strength run."""
        runs = min(int(steps * self.strength), steps)
        if runs < 1:
            raise ValueError(
                f"strength {self.strength:g} with {steps} steps runs no step: "
                "raise the strength or the steps"
            )
        return steps - runs

    def put_back(self, made: np.ndarray) -> list[np.ndarray]:
        """Each (H, W, 3) output in the picture, at the request's size."""
        return [put_back(self.picture, m, self.canvas, self.mask, self.blur) for m in made]


def control_picture(
    control: Control, size: tuple[int, int], canvas: Canvas | None = None
) -> Image.Image:
    """A ControlNet's map as the model takes it (both backends): at `size` (width,
    height) for text alone; for a picture, treated as the picture is (scaled to the
    result's size, cropped to the region redrawn) and scaled to the generation size."""
    if control.map is not None:
        picture = control.map.open()
    elif control.preprocess == "none":  # the image is its own map
        picture = control.image.open()
    else:
        raise RuntimeError(
            f"the {control.preprocess} map of ControlNet {control.model} was not made"
        )
    if canvas is None:
        return scaled(picture, size)
    return scaled(scaled(picture, canvas.size).crop(canvas.region), canvas.generation)
