"""How good is the judge? Its pass rate on ground-truth scenes (the upper bound of any
model's score) and its false-pass rate on images checked against a wrong spec."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shapes_backend import world
from shapes_backend.scene import PromptSpec, Scene
from shapes_lab.judge import rules
from shapes_lab.judge.detections import Detection, Detections
from shapes_lab.judge.judge import Judge
from shapes_lab.render import render_array
from shapes_lab.sampler import MARGIN, SceneSampler

WRONG_SPEC_TRIES = 200


def truth(scene: Scene) -> Detections:
    """A scene's exact detections, from its ground truth rather than its pixels."""
    objects = tuple(
        Detection(o.shape, o.color, o.size, float(o.size_px), o.center, o.bbox, 1.0)
        for o in scene.objects
    )
    return Detections(scene.background, 1.0, objects)


def ground_truth_accuracy(
    judge: Judge | None = None,
    n_per_kind: int = 100,
    seed: int = 0,
    kinds: Sequence[str] = world.KINDS,
) -> dict[str, float]:
    """Per kind, the share of fresh ground-truth scenes (any colour-shape pair, held-out
    ones included) that the judge (default: the shipped one) passes against their own
    spec: the upper bound of any model's score."""
    judge = judge or Judge.load()
    sampler = SceneSampler(seed, pairs="any")
    scores = {}
    for kind in kinds:
        passed = 0
        for _ in range(n_per_kind):
            scene = sampler.realise(sampler.spec(kind))
            passed += judge.check(render_array(scene), scene.spec).passed
        scores[kind] = passed / n_per_kind if n_per_kind else 0.0
    return scores


def wrong_spec(scene: Scene, sampler: SceneSampler) -> PromptSpec:
    """Another spec of the scene's kind that the scene clearly breaks: it fails even
    with place and relation rules relaxed by the sampler's margin."""
    for _ in range(WRONG_SPEC_TRIES):
        spec = sampler.spec(scene.kind)
        if rules.failures(truth(scene), spec, margin=-MARGIN):
            return spec
    raise RuntimeError(f"no wrong spec found for {scene.spec}")


@dataclass(frozen=True)
class KindScore:
    kind: str
    images: int
    ground_truth_accuracy: float  # own spec passed
    false_pass_rate: float  # a clearly wrong spec passed


def score_kinds(
    judge: Judge, n_per_kind: int, seed: int = 0, kinds: Sequence[str] = world.KINDS
) -> list[KindScore]:
    """Both figures per kind, on the same images."""
    sampler = SceneSampler(seed, pairs="any")
    scores = []
    for kind in kinds:
        passed = false_passes = 0
        for _ in range(n_per_kind):
            scene = sampler.realise(sampler.spec(kind))
            image = render_array(scene)
            passed += judge.check(image, scene.spec).passed
            false_passes += judge.check(image, wrong_spec(scene, sampler)).passed
        n = max(n_per_kind, 1)
        scores.append(KindScore(kind, n_per_kind, passed / n, false_passes / n))
    return scores
