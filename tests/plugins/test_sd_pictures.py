"""The SD backends' picture geometry (`sd_backends.pictures`): generation sizes, the
only-masked region, the inward feather, and that compositing keeps every pixel outside
the mask, for pictures as users have them."""

from __future__ import annotations

import numpy as np
import pytest
from support.pictures import box_mask, photo

from sd_backends.pictures import (
    MASKED,
    feathered,
    generation_size,
    mask_array,
    model_inputs,
    plan,
    put_back,
)


@pytest.mark.parametrize(
    ("size", "expected"),
    [((512, 512), (512, 512)), ((4000, 3000), (592, 440)), ((600, 1000), (400, 664))],
)
def test_the_model_runs_at_its_native_area_with_the_regions_aspect(size, expected) -> None:
    w, h = generation_size(*size, native=512, multiple=8)
    assert (w, h) == expected
    assert w % 8 == 0 and h % 8 == 0 and abs(w * h - 512 * 512) < 0.05 * 512 * 512


def test_only_masked_crops_to_the_mask_with_padding_clipped_to_the_picture() -> None:
    mask = mask_array(box_mask((4000, 3000), (3900, 100, 3990, 180)), (4000, 3000))
    canvas = plan((4000, 3000), 512, 8, mask, MASKED, padding=32)
    assert canvas.region == (3868, 68, 4000, 212)
    assert canvas.generation[0] * canvas.generation[1] == pytest.approx(512 * 512, rel=0.05)
    whole = plan((4000, 3000), 512, 8, mask)
    assert whole.whole and whole.generation == (592, 440)


def test_the_feather_stays_inside_the_mask() -> None:
    mask = mask_array(box_mask((64, 64), (16, 16, 48, 48)), (64, 64))
    soft = feathered(mask, blur=4)
    assert (soft[~mask] == 0).all()  # nothing outside
    assert soft[32, 32] == 1.0 and 0 < soft[16, 32] < 0.5  # full inside, soft at the edge
    assert np.array_equal(feathered(mask, 0), mask.astype(np.float32))


@pytest.mark.parametrize("area", ["whole", MASKED])
@pytest.mark.parametrize("size", [(61, 47), (47, 90), (300, 200)])  # odd, portrait, wide
def test_outside_the_mask_every_pixel_is_the_pictures_own(area, size) -> None:
    picture = photo(*size)
    mask = box_mask(size, (size[0] // 4, size[1] // 3, size[0] // 2, size[1] // 2))
    canvas = plan(size, 64, 8, mask_array(mask, size), area, padding=4)
    image, model_mask = model_inputs(picture, mask, canvas)
    assert image.shape == (canvas.generation[1], canvas.generation[0], 3)
    assert model_mask is not None and model_mask.shape == image.shape[:2] and model_mask.any()
    made = np.random.default_rng(1).random(image.shape)  # whatever the model made
    result = put_back(picture, made, canvas, mask, blur=2)
    outside = ~mask_array(mask, size)
    assert result.shape == (size[1], size[0], 3)
    assert np.array_equal(result[outside], np.asarray(picture)[outside])
    assert not np.array_equal(result[~outside], np.asarray(picture)[~outside])


def test_only_masked_touches_nothing_outside_its_region() -> None:
    size = (400, 300)
    picture, mask = photo(*size), box_mask(size, (300, 200, 340, 240))
    canvas = plan(size, 64, 8, mask_array(mask, size), MASKED, padding=16)
    result = put_back(picture, np.ones((*canvas.generation[::-1], 3)), canvas, mask, blur=0)
    left, top, right, bottom = canvas.region
    changed = np.argwhere((result != np.asarray(picture)).any(axis=2))
    assert changed[:, 0].min() >= top and changed[:, 0].max() < bottom
    assert changed[:, 1].min() >= left and changed[:, 1].max() < right


def test_img2img_scales_the_models_output_to_the_result_size() -> None:
    canvas = plan((300, 200), 64, 8)
    assert canvas.whole and canvas.generation == (80, 56)
    result = put_back(photo(300, 200), np.zeros((56, 80, 3)), canvas)
    assert result.shape == (200, 300, 3) and (result == 0).all()


def test_the_blend_feathers_at_the_masks_edge_on_a_large_picture() -> None:
    size = (2000, 1500)
    picture, mask = photo(*size), box_mask(size, (1000, 700, 1100, 800))
    canvas = plan(size, 64, 8, mask_array(mask, size))
    white = np.ones((*canvas.generation[::-1], 3))
    result = put_back(picture, white, canvas, mask, blur=8).astype(int)
    original = np.asarray(picture).astype(int)
    assert np.array_equal(result[750, 1050], [255, 255, 255])  # well inside: the model's
    edge = result[750, 1000] - original[750, 1000]  # on the edge: barely changed
    assert np.abs(edge).max() < 0.2 * 255
