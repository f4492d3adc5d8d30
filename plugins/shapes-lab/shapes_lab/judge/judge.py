"""The judge: read an image back into objects and check it against a prompt's spec.

Numpy and scipy only (no torch): the judge shares no code path or weights with the
model or its ranker, so a model cannot pass by fooling itself.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from shapes_backend import world
from shapes_backend.scene import PromptSpec
from shapes_lab.judge import rules
from shapes_lab.judge.classifier import CLASSES, JUNK, WEIGHTS, ShapeClassifier
from shapes_lab.judge.detections import JUNK_SHAPE, Detection, Detections, Verdict
from shapes_lab.judge.segment import features, segment

ImageLike = Image.Image | np.ndarray


class Judge:
    """Checks images against `PromptSpec`s by the rules of SHAPES_DOMAIN.md "Scoring".

    Images are PIL images or HxWx3 uint8 arrays, 64 x 64; other sizes are first
    resized to 64 x 64 with a box filter (so a 256 x 256 rendering reads the same)."""

    def __init__(self, classifier: ShapeClassifier) -> None:
        self.classifier = classifier

    @classmethod
    def load(cls, path: Path = WEIGHTS) -> Judge:
        """The judge with the shipped weights (or those at `path`)."""
        return cls(ShapeClassifier.load(path))

    def detect(self, image: ImageLike) -> Detections:
        """The background and every object: shape (or junk), colour, size, centre."""
        seg = segment(image)
        if not seg.components:
            return Detections(seg.background, seg.background_fraction, ())
        x = np.stack([features(c) for c in seg.components])
        labels, confidences, _ = self.classifier.classify(x)
        mean_k = float(np.mean(self.classifier.area_k))
        objects = []
        for component, label, confidence in zip(seg.components, labels, confidences, strict=True):
            cx, cy = component.centroid
            if label == JUNK:
                side = float(np.sqrt(component.soft_area / mean_k))
            else:
                side = self.classifier.side(int(label), component.soft_area)
                cy += float(self.classifier.center_dy[label]) * side  # centroid -> box centre
            objects.append(
                Detection(
                    shape=JUNK_SHAPE if label == JUNK else CLASSES[label],
                    color=component.color,
                    size=world.size_name(side),
                    size_px=side,
                    center=(cx, cy),
                    bbox=component.bbox,
                    confidence=float(confidence),
                    area=component.soft_area,
                )
            )
        return Detections(seg.background, seg.background_fraction, tuple(objects))

    def check(self, image: ImageLike, spec: PromptSpec) -> Verdict:
        """Whether the image satisfies every clause of `spec`, with readable failures."""
        detections = self.detect(image)
        reasons = rules.failures(detections, spec)
        return Verdict(passed=not reasons, failures=reasons, detections=detections)

    def __call__(self, image: ImageLike, spec: PromptSpec) -> bool:
        """Pass or fail: the `evaluate.Judge` callable."""
        return self.check(image, spec).passed
