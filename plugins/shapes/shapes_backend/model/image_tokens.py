"""The image tokenizer: a 64 x 64 image <-> one background token + an 8 x 8 grid of patch tokens.

A vector-quantised codebook in the spirit of a VQ-VAE, but factored by what this world
is made of (the notes measured learned VQ-VAEs blurring shapes on a CPU budget): each
8 x 8 patch is the background, or one object colour over it with a coverage mask, and
the mask is quantised to the nearest of K prototypes learned by k-means on rendered
scenes. Encoding and decoding are numpy only (the ONNX backend does not import torch).

Patch token ids: 0 = empty (background only), 1..8 = solid colour, then
9 + colour * K + mask code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shapes_backend import world

BACKGROUND_RGB = np.array(list(world.BACKGROUNDS.values()), np.float32)
COLOR_RGB = np.array(list(world.COLORS.values()), np.float32)
N_BACKGROUNDS = len(BACKGROUND_RGB)
N_COLORS = len(COLOR_RGB)
EMPTY, FIRST_SOLID = 0, 1
FIRST_MASK = FIRST_SOLID + N_COLORS
SOLID_ALPHA = 0.98  # a patch this covered everywhere is solid
EMPTY_COVERAGE = 0.5  # pixels' worth of colour below which a patch is background


@dataclass(frozen=True)
class ImageTokenizer:
    """`codebook` holds K mask prototypes (K x patch pixels, coverage 0..1 per pixel)."""

    codebook: np.ndarray
    patch_h: int = 8
    patch_w: int = 8

    @property
    def grid(self) -> tuple[int, int]:
        return world.CANVAS // self.patch_h, world.CANVAS // self.patch_w

    @property
    def n_patches(self) -> int:
        rows, columns = self.grid
        return rows * columns

    @property
    def n_codes(self) -> int:
        return len(self.codebook)

    @property
    def patch_vocab(self) -> int:
        return FIRST_MASK + N_COLORS * self.n_codes

    def encode(self, image: np.ndarray) -> tuple[int, np.ndarray]:
        """(background id, 64 patch tokens in row-major order) of a 64 x 64 x 3 image."""
        background = nearest_background(image)
        alpha, colour = coverage_by_colour(image, background)
        patches, colours = self.to_patches(alpha), self.to_patches(colour)  # (patches, pixels)
        colour_of_patch = patch_colour(colours, patches)
        patches = np.where(colours == colour_of_patch[:, None], patches, 0.0)  # one colour each
        coverage = patches.sum(axis=1)
        tokens = np.full(self.n_patches, EMPTY, np.int64)
        solid = (patches >= SOLID_ALPHA).all(axis=1)
        tokens[solid] = FIRST_SOLID + colour_of_patch[solid]
        partial = ~solid & (coverage >= EMPTY_COVERAGE)
        if partial.any():
            codes = nearest_codes(patches[partial], self.codebook)
            tokens[partial] = FIRST_MASK + colour_of_patch[partial] * self.n_codes + codes
        return background, tokens

    def decode(self, background: int, tokens: np.ndarray) -> np.ndarray:
        """The 64 x 64 x 3 uint8 image of (background id, 64 patch tokens)."""
        return self.decode_batch(np.array([background]), tokens[None])[0]

    def decode_batch(self, backgrounds: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """(B,) background ids and (B, n) patch tokens, n <= 64 (later patches empty)."""
        batch, n = tokens.shape
        full = np.full((batch, self.n_patches), EMPTY, np.int64)
        full[:, :n] = tokens
        masks = np.zeros((batch, self.n_patches, self.patch_h * self.patch_w), np.float32)
        colours = np.zeros((batch, self.n_patches), np.int64)
        solid = (full >= FIRST_SOLID) & (full < FIRST_MASK)
        masks[solid] = 1.0
        colours[solid] = full[solid] - FIRST_SOLID
        partial = full >= FIRST_MASK
        index = full[partial] - FIRST_MASK
        colours[partial], codes = np.divmod(index, self.n_codes)
        masks[partial] = self.codebook[codes]
        bg = BACKGROUND_RGB[backgrounds][:, None, None, :]  # (B, 1, 1, 3)
        fg = COLOR_RGB[colours][:, :, None, :]  # (B, 64, 1, 3)
        patches = bg + masks[..., None] * (fg - bg)  # (B, patches, pixels, 3)
        rows, columns = self.grid
        images = patches.reshape(batch, rows, columns, self.patch_h, self.patch_w, 3)
        images = images.transpose(0, 1, 3, 2, 4, 5)
        return np.rint(images.reshape(batch, world.CANVAS, world.CANVAS, 3)).astype(np.uint8)

    def mask_codes(self, tokens: np.ndarray) -> np.ndarray:
        """The mask codes used by `tokens` (for codebook-usage figures)."""
        return (tokens[tokens >= FIRST_MASK] - FIRST_MASK) % self.n_codes

    def to_patches(self, grid: np.ndarray) -> np.ndarray:
        """(64, 64) per-pixel values -> (patches, pixels), patches row-major."""
        rows, columns = self.grid
        blocks = grid.reshape(rows, self.patch_h, columns, self.patch_w).transpose(0, 2, 1, 3)
        return blocks.reshape(rows * columns, -1)

    def save(self, path: Path) -> None:
        from safetensors.numpy import save_file

        patch = np.array([self.patch_h, self.patch_w], np.int64)
        save_file({"codebook": self.codebook.astype(np.float32), "patch": patch}, str(path))

    @classmethod
    def load(cls, path: Path) -> ImageTokenizer:
        from safetensors.numpy import load_file

        tensors = load_file(str(path))
        patch_h, patch_w = (int(v) for v in tensors["patch"])
        return cls(tensors["codebook"], patch_h, patch_w)


def nearest_background(image: np.ndarray) -> int:
    """The background colour nearest to the image's border pixels (objects rarely fill it)."""
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]]).astype(np.float32)
    distances = ((border[:, None, :] - BACKGROUND_RGB[None]) ** 2).sum(-1)
    return int(np.bincount(distances.argmin(1), minlength=N_BACKGROUNDS).argmax())


def coverage_by_colour(image: np.ndarray, background: int) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel: how much of the best-fitting object colour covers it, and which colour.

    Each pixel is read as background + a * (colour - background); the colour whose
    blend fits best wins, and `a` (clipped to 0..1) is the coverage.
    """
    pixels = image.reshape(-1, 3).astype(np.float32)
    bg = BACKGROUND_RGB[background]
    direction = COLOR_RGB - bg  # (8, 3)
    offset = pixels - bg  # (P, 3)
    a = np.clip(offset @ direction.T / (direction**2).sum(1), 0.0, 1.0)  # (P, 8)
    residual = ((offset[:, None, :] - a[..., None] * direction[None]) ** 2).sum(-1)
    best = residual.argmin(1)
    alpha = a[np.arange(len(pixels)), best]
    shape = image.shape[:2]
    return alpha.reshape(shape), best.reshape(shape)


def patch_colour(colours: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """Each patch's colour: the one carrying the most coverage in it."""
    votes = np.zeros((len(colours), N_COLORS), np.float32)
    rows = np.repeat(np.arange(len(colours)), colours.shape[1])
    np.add.at(votes, (rows, colours.ravel()), alphas.ravel())
    return votes.argmax(1)


def nearest_codes(masks: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """Index of the nearest prototype (squared distance) for each mask."""
    distances = (masks**2).sum(1)[:, None] - 2 * masks @ codebook.T + (codebook**2).sum(1)[None]
    return distances.argmin(1)
