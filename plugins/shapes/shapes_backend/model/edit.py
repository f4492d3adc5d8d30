"""Image prompts (DALL-E's completions, repaints and variations): which image tokens each
candidate draws and which it is given from the input, and how its image is put together.

Shared by both runtimes, numpy only (the ONNX path never imports torch). The rules:

1. The input is tokenized with the image tokenizer: background b0, patch tokens t0.
2. With a mask (completion, repainting): M = `mask >= 0.5`, the pixels to repaint. The
   input's background pixels are those its tokens, decoded, cover with less than half an
   object's colour (`background_pixels`; the renderer labels pixels the same way); the
   others are its object pixels. Every candidate draws the same tokens:
   - the background may be redrawn when M holds at least half of the background pixels
     (one at least); it is drawn then if the prompt names another background than b0
     or the mask covers everything, and given as b0 otherwise (and always when the mask
     does not allow it);
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
4. Without a mask (variations), every token is drawn, under the prompt, with the input's
   tokens as a prior: the input's token at each place gets a bonus of PRIOR_BIAS *
   ln(1 / strength) added to its guided log-probability before the draw (the patch's code
   only when the drawn kind is the input's); the backend draws image prompts at
   temperature 0.7, for which the bias was tuned (at 0.3, a variation of the model's own
   image is that image again: its tokens are the model's likeliest anyway). So a
   candidate follows the input while the model agrees with it, and where one draw
   departs (an object begun a row lower, another colour), the model carries on from its
   own tokens, coherently, instead of patching a token into a picture that does not
   expect it. Strength 1 is no bonus: the text
   prompt's own sample; near 0 the input's tokens. Nothing is composited: the image is
   its tokens' decode. An earlier version redrew a random share `strength` of the tokens
   and kept the rest; at 0.3 nearly every shown variation was the input itself (the
   ranking preferred the untouched ones) and the rest had stray fragments.

The sampler feeds a given token to the transformer as it is and consumes no random draw
for it; its log-probability under the same guided distribution still counts in the
image's log-likelihood, so the ranking sees whether the drawn tokens fit the kept ones.
A prior's bonus steers the draw only: the likelihood is the model's own.
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
PRIOR_BIAS = 2.0  # nats per ln(1 / strength), at temperature 0.7 (bench/tune_image_prompts.py)


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
    # Variations: the input's tokens (background (n,), kinds and codes (n, P)) as a prior,
    # and the bonus their log-probabilities get before each draw (0: no prior).
    prior: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    bias: float = 0.0

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


def named_background(prompt: str) -> int | None:
    """The background (its id) a prompt names, if any."""
    from shapes_backend.parser import parse_prompt

    name = parse_prompt(prompt).background
    return list(world.BACKGROUNDS).index(name) if name in world.BACKGROUNDS else None


def unchanged_images(plan: EditPlan) -> list[np.ndarray]:
    """What a candidate that changed nothing looks like: the input, and (uncomposited,
    as a variation is) its tokens' decode. Such candidates are shown last."""
    tokenizer = plan.tokenizer
    return [plan.image, tokenizer.decode(*tokenizer.encode(plan.image))]


def plan_edit(
    tokenizer: it.ImageTokenizer, edit: ImagePrompt, n: int, prompt: str = ""
) -> EditPlan:
    """The tokens an image prompt gives `n` candidates, and the prior of a variation's.
    Where the mask lets the background be redrawn, it is drawn only when `prompt` names
    another background than the input's (rule 2): a completion of a picture on white,
    under a prompt that names no background, goes on on white."""
    image = checked_image(edit)
    background, tokens = tokenizer.encode(image)
    if edit.mask is not None:
        redraw, drawn, snapped = masked_tokens(tokenizer, edit.mask, tokens)
        named = named_background(prompt)
        whole = bool((np.asarray(edit.mask) >= MASK_THRESHOLD).all())  # a fresh sample
        free_background = np.full(n, redraw and (whole or named not in (None, background)))
        free = np.repeat(drawn[None], n, axis=0)
        keep = ~snapped
    kinds, codes = split_tokens(np.repeat(tokens[None], n, axis=0), tokenizer.n_codes)
    if edit.mask is None:  # a variation: every token drawn, the input's as a prior
        if not 0.0 < edit.strength <= 1.0:
            raise ValueError(f"a variation's strength is in (0, 1], not {edit.strength}")
        drawn = np.full(n, FREE)
        prior = (np.full(n, background), kinds, codes)
        bias = PRIOR_BIAS * float(np.log(1.0 / edit.strength))
        free = np.full_like(kinds, FREE)
        return EditPlan(tokenizer, drawn, free, free, image, None, prior, bias)
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
