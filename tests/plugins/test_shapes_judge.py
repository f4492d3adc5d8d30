"""The Shapes judge: ground truth passes, wrong images fail, garbage never crashes."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from shapes_backend import world
from shapes_backend.scene import ObjectSpec, PromptSpec, RelationSpec, Scene
from shapes_lab.judge import Judge, score_kinds
from shapes_lab.judge.classifier import WEIGHTS
from shapes_lab.judge.segment import features, segment
from shapes_lab.render import render, render_array
from shapes_lab.sampler import SceneSampler

REPO = Path(__file__).resolve().parents[2]
OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}


@pytest.fixture(scope="module")
def judge() -> Judge:
    return Judge.load()


def scene_of(kind: str, seed: int = 0, **spec_changes: object) -> Scene:
    sampler = SceneSampler(seed, pairs="any")
    spec = dataclasses.replace(sampler.spec(kind), **spec_changes)
    return sampler.realise(spec)


def test_ground_truth_passes_and_wrong_specs_fail(judge: Judge) -> None:
    for score in score_kinds(judge, 60, seed=11):
        assert score.ground_truth_accuracy >= 0.98, score
        assert score.false_pass_rate <= 0.02, score


def test_detections_match_the_ground_truth(judge: Judge) -> None:
    sampler = SceneSampler(3, pairs="any")
    for _ in range(20):
        scene = sampler.realise(sampler.spec("count"))
        found = judge.detect(render_array(scene))
        assert found.background == scene.background
        assert len(found.objects) == len(scene.objects)
        for obj in scene.objects:
            match = min(found.objects, key=lambda d: np.hypot(*np.subtract(d.center, obj.center)))
            assert (match.shape, match.color, match.size) == (obj.shape, obj.color, obj.size)
            assert abs(match.size_px - obj.size_px) < 0.6
            assert np.hypot(*np.subtract(match.center, obj.center)) < 0.5
            assert 0.5 <= match.confidence <= 1.0
            x0, y0, x1, y1 = obj.bbox
            assert x0 <= match.bbox[0] < match.bbox[2] <= x1
            assert y0 <= match.bbox[1] < match.bbox[3] <= y1


def failures(judge: Judge, scene: Scene, spec: PromptSpec) -> list[str]:
    verdict = judge.check(render(scene), spec)
    assert not verdict.passed and verdict.failures
    return verdict.failures


def test_messages_for_wrong_colour_shape_and_count(judge: Judge) -> None:
    hearts = ObjectSpec("heart", "yellow", count=3)
    scene = scene_of("count", objects=(hearts,))
    assert judge.check(render(scene), scene.spec).passed
    fewer = dataclasses.replace(scene, objects=scene.objects[:2])
    assert "expected 3 yellow hearts, found 2" in failures(judge, fewer, scene.spec)
    more = dataclasses.replace(scene.spec, objects=(dataclasses.replace(hearts, count=4),))
    assert "expected 4 yellow hearts, found 3" in failures(judge, scene, more)

    circle = scene_of("single", objects=(ObjectSpec("circle", "red"),))
    blue = PromptSpec((ObjectSpec("circle", "blue"),))
    assert failures(judge, circle, blue) == [
        "expected 1 blue circle, found 0",
        "extra object: a red circle",
    ]
    star = PromptSpec((ObjectSpec("star", "red"),))
    assert "extra object: a red circle" in failures(judge, circle, star)


def test_wrong_relation_place_background_and_size_fail(judge: Judge) -> None:
    relation = scene_of("relation", seed=1)
    assert judge.check(render(relation), relation.spec).passed
    kind = relation.spec.relation.type
    reversed_ = dataclasses.replace(relation.spec, relation=RelationSpec(0, 1, OPPOSITE[kind]))
    assert failures(judge, relation, reversed_)[0].startswith(
        f"relation '{OPPOSITE[kind]}' does not hold"
    )

    placed = scene_of("place", seed=2, place="top left")
    assert judge.check(render(placed), placed.spec).passed
    moved = dataclasses.replace(placed.spec, place="bottom right")
    assert failures(judge, placed, moved) == [
        "place 'bottom right' does not hold: the object is at 'top left'"
    ]

    white = scene_of("single", seed=3, background="white")
    black = dataclasses.replace(white.spec, background="black")
    assert failures(judge, white, black) == ["background is white, expected black"]

    sized = scene_of("size", seed=4)
    assert judge.check(render(sized), sized.spec).passed
    a, b = sized.spec.objects
    swapped = dataclasses.replace(
        sized.spec,
        objects=(dataclasses.replace(a, size=b.size), dataclasses.replace(b, size=a.size)),
    )
    assert failures(judge, sized, swapped)


def test_shape_swapped_in_every_kind_fails(judge: Judge) -> None:
    for i, kind in enumerate(world.KINDS):
        scene = scene_of(kind, seed=20 + i)
        first = scene.spec.objects[0]
        others = {o.shape for o in scene.spec.objects}
        shape = next(s for s in world.SHAPES if s not in others)
        objects = (dataclasses.replace(first, shape=shape), *scene.spec.objects[1:])
        failures(judge, scene, dataclasses.replace(scene.spec, objects=objects))


def test_blank_noise_and_stray_blobs_fail(judge: Judge) -> None:
    spec = PromptSpec((ObjectSpec("circle", "red"),))
    blank = np.full((64, 64, 3), world.BACKGROUNDS["white"], np.uint8)
    assert judge.check(blank, spec).failures == ["expected 1 red circle, found 0"]
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert not judge.check(noise, spec).passed

    scene = scene_of("single", seed=5, objects=(spec.objects[0],), place="top left")
    image = render_array(scene).copy()
    image[50:56, 50:56] = world.COLORS["blue"]  # a 6 x 6 stray blob far from the circle
    verdict = judge.check(image, dataclasses.replace(spec, background=scene.background))
    assert not verdict.passed
    assert any(f.startswith("extra object: a blue") for f in verdict.failures)


def test_garbage_never_raises(judge: Judge) -> None:
    rng = np.random.default_rng(1)
    palette = np.array([*world.COLORS.values(), *world.BACKGROUNDS.values()], np.uint8)
    spec = PromptSpec((ObjectSpec("star", "pink", count=2),), background="gray")
    images = [
        np.zeros((64, 64, 3), np.uint8),
        np.full((64, 64, 3), 255, np.uint8),
        palette[rng.integers(0, len(palette), (64, 64))],
        np.kron(palette[rng.integers(0, len(palette), (8, 8))], np.ones((8, 8, 1), np.uint8)),
        np.repeat(palette[rng.integers(0, len(palette), 64)][None], 64, axis=0),
        rng.integers(0, 256, (1, 1, 3), dtype=np.uint8),
        rng.integers(0, 256, (97, 40, 3), dtype=np.uint8),
        rng.integers(0, 256, (64, 64), dtype=np.uint8),
        rng.integers(0, 256, (64, 64, 4), dtype=np.uint8),
    ] + [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(5)]
    for image in images:
        verdict = judge.check(image, spec)
        assert not verdict.passed and verdict.failures
    assert not judge.check(Image.new("L", (30, 30), 128), spec).passed


def test_other_sizes_are_box_resized(judge: Judge) -> None:
    for kind in ("count", "relation", "place"):
        scene = scene_of(kind, seed=6)
        image = render(scene)
        for size in (128, 256):
            assert judge.check(image.resize((size, size), Image.Resampling.NEAREST), scene.spec)


def test_training_runs_and_round_trips_through_safetensors(tmp_path: Path) -> None:
    from shapes_lab.judge.train import train

    out = tmp_path / "judge.safetensors"
    log: list[str] = []
    trained = train(out, seed=0, n_images=40, n_validation=20, epochs=1, log=log.append)
    assert any(line.startswith("validation accuracy") for line in log)
    loaded = Judge.load(out).classifier
    for ours, theirs in zip(trained.weights, loaded.weights, strict=True):
        assert np.array_equal(ours, theirs)  # float32 both: the very weights
    pairs = [*zip(trained.biases, loaded.biases, strict=True)]
    pairs += [
        (getattr(trained, n), getattr(loaded, n)) for n in ("mean", "std", "area_k", "center_dy")
    ]
    for ours, theirs in pairs:  # written as float32
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    for kind in ("single", "count", "relation", "place"):  # so the two judge alike
        scene = scene_of(kind, seed=2)
        components = segment(render(scene)).components
        x = np.stack([features(c) for c in components])
        np.testing.assert_allclose(trained.probabilities(x), loaded.probabilities(x), atol=1e-6)


def test_shipped_weights_are_small_and_checking_never_imports_torch() -> None:
    assert WEIGHTS.stat().st_size < 1_000_000
    code = (
        "import sys\n"
        "from shapes_lab.judge import Judge\n"
        "from shapes_lab.render import render_array\n"
        "from shapes_lab.sampler import SceneSampler\n"
        "s = SceneSampler(0, pairs='any'); scene = s.realise(s.spec('relation'))\n"
        "assert Judge.load().check(render_array(scene), scene.spec).passed\n"
        "assert 'torch' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)
