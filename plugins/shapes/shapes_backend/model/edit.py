"""Image prompts (DALL-E's completions, repaints and variations): which image tokens each
candidate draws and which it is given from the input, and how its image is put together.

Shared by both runtimes, numpy only (the ONNX path never imports torch). The rules:

1. The input is tokenized with the image tokenizer: background b0, patch tokens t0.
2. With a mask (completion, repainting): M = `mask >= 0.5`, the pixels to repaint. The
   input's background pixels are those its tokens, decoded, cover with less than half an
   object's colour (`background_pixels`; the renderer labels pixels the same way); the
   others are its object pixels. Every candidate draws the same tokens:
   - the background token is drawn when M holds at least half of the background pixels
     (one at least), else given as b0;
   - a patch with no pixel in M is given as t0[p], one with a pixel in M is drawn;
   - except, when the background is drawn, a patch whose masked pixels are all
     background pixels keeps its token (its object stays, its background follows the
     new background token), unless it is wholly in M: that is where new objects go
     (a completion's empty half; a mask of all ones is a fresh sample);
   - and a mask around the objects (at least AROUND = 90 % of the background pixels, at
     most 10 % of the object pixels) asks for a new background behind the same objects:
     there patches wholly in M keep their tokens too (drawn, the empty ones let the
     model, blind to the objects given after them, draw those objects twice).
   The image prompt's `strength` plays no part.
3. The image: all tokens decoded, then the input's own pixels (the given array, not its
   decode) outside the snapped mask (`snapped_mask`): the pixels of drawn patches, plus,
   when the background is redrawn, the masked background pixels of kept patches.
4. Without a mask (variations), each candidate decides alone, from a stream of its own
   (`variation_draws`), which tokens it draws: the background, then patches 0..63, each
   drawn when its uniform draw is below `strength` (1: all, a fresh sample; 0: none, the
   input's tokens). Nothing is composited: the image is its tokens' decode.

The sampler feeds a given token to the transformer as it is and consumes no random draw
for it; its log-probability under the same guided distribution still counts in the
image's log-likelihood, so the ranking sees whether the drawn tokens fit the kept ones.
On the lab's edit set (4 shown of 16) that ranks better than counting the drawn tokens
alone (edits 0.67 vs 0.64 passing, variations 0.68 vs 0.56); a heavier weight for the
given tokens gained nothing, so they weigh as LIKELIHOOD_WEIGHT says. Previews show the
given tokens ahead of the patches drawn so far (`EditPlan.images`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shapes_backend import world
from shapes_backend.model import image_tokens as it
from shapes_backend.model.common import ImagePrompt

FREE = -1  # in a plan's tokens: the sampler draws this one
MASK_THRESHOLD = 0.5  # mask values at or above it are repainted
BACKGROUND_COVERAGE = 0.5  # decoded object coverage below which a pixel is background
AROUND = 0.9  # a mask around the objects: this much of the background, 1 - it of them
VARIATION_STREAM = 1  # spawn key of the variation draws' stream, beside the sampler's


@dataclass(frozen=True)
class EditPlan:
    """Each of n candidates' image tokens as given (FREE where the sampler draws), split as
    the transformer takes them, and what its images are composited with."""

    tokenizer: it.ImageTokenizer
    backgrounds: np.ndarray  # (n,) background ids, or FREE
    kinds: np.ndarray  # (n, patches) patch kinds, or FREE
    codes: np.ndarray  # (n, patches) mask codes (n_codes: no code), or FREE
    image: np.ndarray  # (64, 64, 3) uint8: the input
    keep: np.ndarray | None  # (64, 64) bool: the input's own pixels (None: variations)

    def images(self, backgrounds: np.ndarray, patches: np.ndarray) -> np.ndarray:
        """The images of (n,) backgrounds and the (n, done) patches drawn so far: the given
        tokens beyond them (empty where still to draw), decoded, composited (rule 3)."""
        done, n_codes = patches.shape[1], self.tokenizer.n_codes
        rest = join_tokens(self.kinds[:, done:], self.codes[:, done:], n_codes)
        tokens = np.concatenate([patches, np.where(rest == FREE, it.EMPTY, rest)], axis=1)
        decoded = self.tokenizer.decode_batch(backgrounds, tokens)
        if self.keep is None:
            return decoded
        return np.where(self.keep[None, :, :, None], self.image[None], decoded)


def plan_edit(tokenizer: it.ImageTokenizer, edit: ImagePrompt, seed: int, n: int) -> EditPlan:
    """The tokens `n` candidates (seeds seed .. seed + n - 1) are given by an image prompt."""
    image = checked_image(edit)
    background, tokens = tokenizer.encode(image)
    if edit.mask is not None:
        redraw, drawn, snapped = masked_tokens(tokenizer, edit.mask, tokens)
        free_background = np.full(n, redraw)
        free = np.repeat(drawn[None], n, axis=0)
        keep = ~snapped
    else:
        if not 0.0 <= edit.strength <= 1.0:
            raise ValueError(f"an image prompt's strength is in [0, 1], not {edit.strength}")
        free = variation_draws(seed, n, 1 + tokenizer.n_patches) < edit.strength
        free_background, free = free[:, 0], free[:, 1:]
        keep = None
    kinds, codes = split_tokens(np.repeat(tokens[None], n, axis=0), tokenizer.n_codes)
    return EditPlan(
        tokenizer,
        np.where(free_background, FREE, background),
        np.where(free, FREE, kinds),
        np.where(free, FREE, codes),
        image,
        keep,
    )


def snapped_mask(tokenizer: it.ImageTokenizer, edit: ImagePrompt) -> np.ndarray:
    """(64, 64) bool: the pixels an edit may change (rule 3); everywhere else its images
    are the input's pixels exactly. Variations (no mask) may change every pixel."""
    if edit.mask is None:
        return np.ones((world.CANVAS, world.CANVAS), bool)
    return masked_tokens(tokenizer, edit.mask, tokenizer.encode(checked_image(edit))[1])[2]


def masked_tokens(
    tokenizer: it.ImageTokenizer, mask: np.ndarray, tokens: np.ndarray
) -> tuple[bool, np.ndarray, np.ndarray]:
    """For a mask over an input of patch `tokens` (rule 2): whether the background is
    redrawn, which patches are drawn ((patches,) bool) and the snapped mask (64, 64)."""
    mask = np.asarray(mask)
    if mask.shape != (world.CANVAS, world.CANVAS):
        raise ValueError(f"an image prompt's mask is (64, 64), not {mask.shape}")
    masked = mask >= MASK_THRESHOLD
    background = background_pixels(tokenizer, tokens)
    on_background = np.count_nonzero(masked & background)  # masked background pixels
    on_objects = np.count_nonzero(masked & ~background)
    redraw = on_background > 0 and 2 * on_background >= np.count_nonzero(background)
    in_patch = tokenizer.to_patches(masked)  # (patches, pixels)
    drawn = in_patch.any(axis=1)
    if redraw:  # a patch masked on its background pixels alone keeps its token
        objects = np.count_nonzero(~background)
        around = (
            on_background >= AROUND * np.count_nonzero(background)
            and objects > 0
            and on_objects <= (1 - AROUND) * objects
        )
        masks_object = (in_patch & ~tokenizer.to_patches(background)).any(axis=1)
        drawn &= masks_object | (in_patch.all(axis=1) & (not around))
    snapped = from_patches(tokenizer, np.repeat(drawn[:, None], in_patch.shape[1], axis=1))
    if redraw:
        snapped |= masked & background
    return bool(redraw), drawn, snapped


def background_pixels(tokenizer: it.ImageTokenizer, tokens: np.ndarray) -> np.ndarray:
    """(64, 64) bool: the pixels patch `tokens`, decoded, cover with less than half an
    object's colour (BACKGROUND_COVERAGE)."""
    coverage = np.zeros((len(tokens), tokenizer.patch_h * tokenizer.patch_w), np.float32)
    coverage[(tokens >= it.FIRST_SOLID) & (tokens < it.FIRST_MASK)] = 1.0
    masks = tokens >= it.FIRST_MASK
    coverage[masks] = tokenizer.codebook[(tokens[masks] - it.FIRST_MASK) % tokenizer.n_codes]
    return from_patches(tokenizer, coverage) < BACKGROUND_COVERAGE


def variation_draws(seed: int, n: int, tokens: int) -> np.ndarray:
    """(n, tokens) uniform draws in [0, 1): candidate i's come from a child stream of its
    seed, seed + i (spawn key VARIATION_STREAM), apart from the stream its sampler draws
    from (`ImageDraws`): at strength 1 a variation is the text prompt's own sample."""
    return np.stack(
        [
            np.random.default_rng(
                np.random.SeedSequence((seed + i) % 2**32, spawn_key=(VARIATION_STREAM,))
            ).random(tokens)
            for i in range(n)
        ]
    )


def split_tokens(tokens: np.ndarray, n_codes: int) -> tuple[np.ndarray, np.ndarray]:
    """Patch token ids -> (kind, code); code = n_codes where there is none."""
    is_mask = tokens >= it.FIRST_MASK
    offset = np.maximum(tokens - it.FIRST_MASK, 0)
    kind = np.where(is_mask, it.FIRST_MASK + offset // n_codes, tokens)
    return kind, np.where(is_mask, offset % n_codes, n_codes)


def join_tokens(kind: np.ndarray, code: np.ndarray, n_codes: int) -> np.ndarray:
    """(kind, code) -> patch token ids; FREE where the kind is."""
    joined = it.FIRST_MASK + (kind - it.FIRST_MASK) * n_codes + np.minimum(code, n_codes - 1)
    return np.where(kind >= it.FIRST_MASK, joined, kind)


def from_patches(tokenizer: it.ImageTokenizer, values: np.ndarray) -> np.ndarray:
    """(patches, pixels) per-patch values -> the (64, 64) grid (`to_patches` undone)."""
    rows, columns = tokenizer.grid
    blocks = values.reshape(rows, columns, tokenizer.patch_h, tokenizer.patch_w)
    return blocks.transpose(0, 2, 1, 3).reshape(world.CANVAS, world.CANVAS)


def checked_image(edit: ImagePrompt) -> np.ndarray:
    image = np.asarray(edit.image)
    if image.shape != (world.CANVAS, world.CANVAS, 3) or image.dtype != np.uint8:
        raise ValueError(
            f"an image prompt is a ({world.CANVAS}, {world.CANVAS}, 3) uint8 array, "
            f"not {image.shape} {image.dtype}"
        )
    return image
