"""Image prompts on the shipped model (`shapes_backend.model.edit`): both runtimes draw the
same edits and variations, pixel for pixel; outside the snapped mask an edit is the input
exactly; candidate i is a function of seed + i alone; cancel still stops."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shapes_backend.model.bundle import SHIPPED
from shapes_backend.model.common import ImagePrompt
from shapes_backend.model.edit import FREE, masked_tokens, plan_edit, snapped_mask
from shapes_backend.model.onnx_pipeline import OnnxShapesPipeline
from shapes_backend.model.pipeline import ShapesPipeline
from shapes_backend.scene import PromptSpec, Scene, SceneObject
from shapes_lab.render import render_with_objects

PROMPT = "a red circle above a blue square on a white background"
TWO_COLOURS = "a red circle and a blue square"  # each object under its own phrase


def scene_picture() -> tuple[np.ndarray, np.ndarray]:
    """A red circle (top left) and a blue square (bottom right) on white, and the map of
    which object covers each pixel (0: the background)."""
    objects = (SceneObject("circle", "red", 18, 6, 4), SceneObject("square", "blue", 20, 36, 38))
    return render_with_objects(Scene("two", "white", objects, PromptSpec(objects=())))


IMAGE, OBJECTS = scene_picture()


def box(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    mask = np.zeros((64, 64), np.float32)
    mask[y0:y1, x0:x1] = 1.0
    return mask


MASKS = {
    "top half given": box(0, 32, 64, 64),
    "small box": box(40, 6, 52, 18),
    "background only": (OBJECTS == 0).astype(np.float32),
    "all ones": np.ones((64, 64), np.float32),
}


@pytest.fixture(scope="module")
def runtimes() -> dict:
    torch.set_num_threads(1)
    return {
        "torch": ShapesPipeline.load(SHIPPED),
        "onnx": OnnxShapesPipeline(SHIPPED, prefer_cuda=False, threads=1),
    }


@pytest.fixture(scope="module")
def tokenizer(runtimes):
    return runtimes["onnx"].tokenizers.image


@pytest.mark.parametrize(
    ("prompt", "edit"),
    [
        (PROMPT, ImagePrompt(IMAGE, MASKS["top half given"])),
        (TWO_COLOURS, ImagePrompt(IMAGE, MASKS["small box"])),
        (PROMPT, ImagePrompt(IMAGE, strength=0.3)),
    ],
    ids=["completion", "repaint with phrases", "variation"],
)
def test_both_runtimes_draw_the_same_images(runtimes, prompt, edit) -> None:
    drawn = {name: p.generate(prompt, 6, 21, edit=edit) for name, p in runtimes.items()}
    torch_result, onnx_result = drawn["torch"], drawn["onnx"]
    assert np.array_equal(torch_result.images, onnx_result.images)
    assert np.allclose(torch_result.scores, onnx_result.scores, atol=1e-4)
    assert np.allclose(torch_result.log_likelihoods, onnx_result.log_likelihoods, atol=1e-3)


@pytest.mark.parametrize("name", MASKS)
def test_outside_the_snapped_mask_an_edit_is_the_input(runtimes, tokenizer, name) -> None:
    edit = ImagePrompt(IMAGE, MASKS[name])
    snapped = snapped_mask(tokenizer, edit)
    assert snapped[MASKS[name] >= 0.5].all()  # it holds the mask
    result = runtimes["onnx"].generate(PROMPT, 4, 3, edit=edit)
    for image in result.images:
        assert np.array_equal(image[~snapped], IMAGE[~snapped])
    assert np.isfinite(result.log_likelihoods).all()


def test_a_mask_around_the_objects_redraws_the_background_alone(tokenizer) -> None:
    _, tokens = tokenizer.encode(IMAGE)
    redraw, drawn, snapped = masked_tokens(tokenizer, MASKS["background only"], tokens)
    assert redraw
    # Every patch keeps its token, but where the tokens' decode (not exact) puts object
    # colour on a masked pixel: the objects stay, behind them the new background.
    assert drawn.sum() <= 1
    assert snapped[OBJECTS > 0].mean() < 0.1


def test_a_completion_draws_the_patches_wholly_in_the_mask(tokenizer) -> None:
    top = IMAGE.copy()
    top[32:] = IMAGE[0, 0]  # the bottom half emptied: the square is gone
    _, tokens = tokenizer.encode(top)
    redraw, drawn, _ = masked_tokens(tokenizer, MASKS["top half given"], tokens)
    assert redraw  # it holds more than half of the background
    assert drawn[32:].all() and not drawn[:32].any()  # new objects may go in the bottom


def test_a_mask_of_all_ones_is_a_fresh_sample(runtimes) -> None:
    edit = ImagePrompt(IMAGE, MASKS["all ones"])
    for pipeline in runtimes.values():
        fresh = pipeline.generate(PROMPT, 4, 8, rank=False)
        edited = pipeline.generate(PROMPT, 4, 8, rank=False, edit=edit)
        assert np.array_equal(fresh.images, edited.images)
        assert np.allclose(fresh.log_likelihoods, edited.log_likelihoods)


def test_a_variation_draws_every_token_with_the_input_as_a_prior(runtimes, tokenizer) -> None:
    plan = plan_edit(tokenizer, ImagePrompt(IMAGE, strength=0.3), n=16)
    assert (plan.kinds == FREE).all() and plan.keep is None  # all drawn, nothing composited
    background, tokens = tokenizer.encode(IMAGE)
    assert (plan.prior[0] == background).all() and plan.bias > 0
    pipeline = runtimes["onnx"]
    # Strength 1: no prior, the text prompt's own sample.
    fresh = pipeline.generate(PROMPT, 4, 8, rank=False)
    whole = pipeline.generate(PROMPT, 4, 8, rank=False, edit=ImagePrompt(IMAGE, strength=1.0))
    assert np.array_equal(fresh.images, whole.images)
    # Near 0: the input's tokens.
    held = pipeline.generate(PROMPT, 2, 8, rank=False, edit=ImagePrompt(IMAGE, strength=1e-4))
    assert np.array_equal(held.images[0], tokenizer.decode(background, tokens))
    # The lower the strength, the more of the input's tokens are kept; the images shown
    # first are new ones, not the input again, while there are any (at 0.1, rarely).
    unchanged = tokenizer.decode(background, tokens).tobytes()
    kept = []
    for strength in (1.0, 0.3, 0.1):
        varied = pipeline.generate(PROMPT, 16, 8, edit=ImagePrompt(IMAGE, strength=strength))
        shown = varied.images[:4]
        kept.append(np.mean([np.mean(tokenizer.encode(i)[1] == tokens) for i in shown]))
        if strength >= 0.3:
            assert all(image.tobytes() != unchanged for image in shown)
            assert len({image.tobytes() for image in shown}) == 4
    assert kept[0] < kept[1] < kept[2]


@pytest.mark.parametrize(
    "edit", [ImagePrompt(IMAGE, MASKS["small box"]), ImagePrompt(IMAGE, strength=0.5)]
)
def test_each_candidate_is_its_own_seed_alone(runtimes, edit) -> None:
    pipeline = runtimes["torch"]
    batch = pipeline.generate(PROMPT, 6, 30, rank=False, edit=edit)
    for i in (0, 4):
        alone = pipeline.generate(PROMPT, 1, 30 + i, rank=False, edit=edit)
        assert np.array_equal(alone.images[0], batch.images[i])
        assert alone.log_likelihoods[0] == pytest.approx(batch.log_likelihoods[i], abs=1e-4)


class Stop(Exception):
    pass


@pytest.mark.parametrize("name", ["torch", "onnx"])
def test_progress_previews_and_cancel(runtimes, tokenizer, name) -> None:
    edit = ImagePrompt(IMAGE, MASKS["top half given"])
    snapped = snapped_mask(tokenizer, edit)
    seen: list[int] = []

    def on_progress(done: int, total: int, partial: np.ndarray | None) -> None:
        seen.append(done)
        if partial is not None:  # the kept input shows ahead of the patches drawn
            assert np.array_equal(partial[0][~snapped], IMAGE[~snapped])
        if done == 20:
            raise Stop

    with pytest.raises(Stop):
        runtimes[name].generate(PROMPT, 4, 1, edit=edit, on_progress=on_progress)
    assert seen == list(range(1, 21))


def test_bad_image_prompts_are_refused(tokenizer) -> None:
    with pytest.raises(ValueError, match="uint8"):
        plan_edit(tokenizer, ImagePrompt(IMAGE.astype(np.float32)), 1)
    with pytest.raises(ValueError, match="mask"):
        plan_edit(tokenizer, ImagePrompt(IMAGE, np.ones((32, 32))), 1)
    with pytest.raises(ValueError, match="strength"):
        plan_edit(tokenizer, ImagePrompt(IMAGE, strength=1.5), 1)
