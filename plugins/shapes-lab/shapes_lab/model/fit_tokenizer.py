"""Fitting the image tokenizer's codebook: k-means over the coverage masks of freshly
rendered scenes' partly covered patches."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from shapes_backend.model.image_tokens import (
    EMPTY_COVERAGE,
    SOLID_ALPHA,
    ImageTokenizer,
    coverage_by_colour,
    nearest_background,
    nearest_codes,
    patch_colour,
)
from shapes_lab.render import render_array
from shapes_lab.sampler import SceneSampler


def learn_codebook(masks: np.ndarray, n_codes: int, seed: int, iterations: int = 25) -> np.ndarray:
    """k-means (k-means++ start, Lloyd steps) over partial-patch masks; dead codes restart
    on the worst-fitted masks so every code is used."""
    rng = np.random.default_rng(seed)
    masks = masks.astype(np.float32)
    centres = [masks[rng.integers(len(masks))]]
    closest = ((masks - centres[0]) ** 2).sum(1)
    for _ in range(1, n_codes):  # k-means++: far-away masks are likelier starts
        pick = rng.choice(len(masks), p=closest / closest.sum())
        centres.append(masks[pick])
        closest = np.minimum(closest, ((masks - masks[pick]) ** 2).sum(1))
    codebook = np.stack(centres)
    for _ in range(iterations):
        codes = nearest_codes(masks, codebook)
        counts = np.bincount(codes, minlength=n_codes)
        sums = np.zeros_like(codebook)
        np.add.at(sums, codes, masks)
        used = counts > 0
        codebook[used] = sums[used] / counts[used, None]
        if (~used).any():
            error = ((masks - codebook[codes]) ** 2).sum(1)
            codebook[~used] = masks[np.argsort(error)[-int((~used).sum()) :]]
    return np.clip(codebook, 0.0, 1.0)


def partial_masks(tokenizer: ImageTokenizer, images: Iterable[np.ndarray]) -> np.ndarray:
    """The coverage masks of the patches that are neither empty nor solid."""
    found = []
    for image in images:
        alpha, colour = coverage_by_colour(image, nearest_background(image))
        patches, colours = tokenizer.to_patches(alpha), tokenizer.to_patches(colour)
        patches = np.where(colours == patch_colour(colours, patches)[:, None], patches, 0.0)
        partial = ~(patches >= SOLID_ALPHA).all(1) & (patches.sum(1) >= EMPTY_COVERAGE)
        found.append(patches[partial])
    return np.concatenate(found)


def fit_tokenizer(
    patch_h: int, patch_w: int, n_codes: int, scenes: int, seed: int
) -> ImageTokenizer:
    """A tokenizer whose codebook is learned from `scenes` freshly rendered scenes
    (every colour-shape pair: the codes are about shape, not colour)."""
    empty = ImageTokenizer(np.zeros((1, patch_h * patch_w), np.float32), patch_h, patch_w)
    sampler = SceneSampler(seed, pairs="any")
    images = (render_array(sampler.realise(sampler.spec())) for _ in range(scenes))
    codebook = learn_codebook(partial_masks(empty, images), n_codes, seed)
    return ImageTokenizer(codebook, patch_h, patch_w)
