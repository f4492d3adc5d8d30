"""The ranker's training signal: patch labels, near misses, resumable batches, its loss."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from shapes_backend import world
from shapes_backend.model.bundle import Tokenizers
from shapes_backend.model.image_tokens import EMPTY
from shapes_backend.model.ranker import PatchHeads, RankerConfig, ShapesRanker
from shapes_backend.parser import parse_prompt
from shapes_lab.model.data import CaptionedBatches, near_miss, patch_labels, patch_owners
from shapes_lab.model.train import parse_overrides
from shapes_lab.render import render_array, render_with_objects
from shapes_lab.sampler import SceneSampler

torch.set_num_threads(1)


def test_patch_labels_name_each_object_where_it_is() -> None:
    sampler = SceneSampler(3)
    for _ in range(40):
        scene = sampler.scene()
        image, objects = render_with_objects(scene)
        assert np.array_equal(image, render_array(scene))
        owners = patch_owners(objects, len(scene.objects), 8, least=1 / 8)
        assert set(owners.tolist()) <= set(range(len(scene.objects) + 1))
        labels = patch_labels(scene, owners, 8)
        assert labels.shape == (4, 64)
        assert labels[3].sum() == len(scene.objects)  # one centre each, never shared
        for obj in scene.objects:
            x, y = obj.center
            at = int(y) // 8 * 8 + int(x) // 8
            assert labels[:3, at].tolist() == [
                world.SHAPES.index(obj.shape) + 1,
                list(world.COLORS).index(obj.color) + 1,
                list(world.SIZES).index(obj.size) + 1,
            ]
        spans = [math.ceil(o.size_px / 8) + 1 for o in scene.objects]  # patches a side
        assert (labels[0] == 0).sum() >= 64 - sum(s * s for s in spans)  # background
        touched = patch_owners(objects, len(scene.objects), 8, least=0.0)
        assert ((touched > 0) >= (owners > 0)).all()  # any pixel: at least as many


def test_near_misses_break_a_scene_in_each_typical_way(micro_bundle) -> None:
    tokenizers = Tokenizers.load(micro_bundle)
    scene = SceneSampler(0).realise(parse_prompt("a large red square"))
    image, objects = render_with_objects(scene)
    _, tokens = tokenizers.image.encode(image)
    owners = patch_owners(objects, 1, 8, least=0.0)
    filled = (tokens != EMPTY).sum()
    seen = set()
    for seed in range(60):
        broken = near_miss(tokens, owners, random.Random(seed))
        assert not np.array_equal(broken, tokens)
        assert np.array_equal(near_miss(tokens, owners, random.Random(seed)), broken)
        now = (broken != EMPTY).sum()
        changed = np.flatnonzero(broken != tokens)
        if now == 2 * filled:
            seen.add("drawn twice")
        elif now == filled + 1:
            seen.add("fragment")
        elif now == filled - 1 and len(changed) == 1:
            seen.add("hole")
        elif now < filled and len(changed) > 1:
            seen.add("cut off")
    assert seen == {"drawn twice", "fragment", "hole", "cut off"}


def test_ranker_batches_are_the_same_after_a_resume(micro_bundle) -> None:
    tokenizers = Tokenizers.load(micro_bundle)
    options = dict(negatives=2, twins=1, labels=True)
    straight = CaptionedBatches(tokenizers, 6, seed=4, **options)
    for _ in range(3):
        expected = straight.next()
    resumed = CaptionedBatches(tokenizers, 6, seed=4, start_step=2, **options).next()
    for name in ("text", "images", "negatives", "near_misses", "labels"):
        assert torch.equal(getattr(resumed, name), getattr(expected, name)), name
    assert len(expected.near_misses) == 3  # the tokenized half


def test_near_misses_and_patch_heads_add_to_the_ranker_loss(micro_bundle) -> None:
    tokenizers = Tokenizers.load(micro_bundle)
    batch = CaptionedBatches(tokenizers, 8, seed=1, negatives=2, twins=1, labels=True).next()
    torch.manual_seed(0)
    ranker = ShapesRanker(RankerConfig(text_vocab=tokenizers.text.size, width=32, image_layers=1))
    heads = PatchHeads(32)
    plain = ranker.loss(batch.text, batch.images, batch.negatives)
    with_misses = ranker.loss(batch.text, batch.images, batch.negatives, batch.near_misses)
    assert with_misses > plain  # one more candidate per caption in its softmax
    full = ranker.loss(
        batch.text, batch.images, batch.negatives, batch.near_misses, heads, batch.labels
    )
    assert full > with_misses
    full.backward()
    assert heads.head.weight.grad.abs().sum() > 0
    assert ranker.image.embed.weight.grad.abs().sum() > 0


def test_configuration_overrides_are_typed_and_checked() -> None:
    assert parse_overrides(["ranker_steps=600", "ranker_near_misses=false", "lr=3e-4"]) == {
        "ranker_steps": 600,
        "ranker_near_misses": False,
        "lr": 3e-4,
    }
    with pytest.raises(ValueError, match="not a plain configuration field"):
        parse_overrides(["patch=4"])
    with pytest.raises(ValueError, match="true or false"):
        parse_overrides(["ranker_patch_heads=yes"])
    with pytest.raises(ValueError, match="not a plain"):
        parse_overrides(["no_such_field=1"])
