"""The shape classifier at inference time: a small MLP run with numpy alone.

Its weights, and the per-shape calibration of size and centre measured on ground
truth, live in one safetensors file (`safetensors.numpy`, so no torch is imported).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from shapes_backend import world

CLASSES = (*world.SHAPES, "junk")
JUNK = len(world.SHAPES)
MIN_CONFIDENCE = 0.5  # below this the component is not clearly any one shape: junk
WEIGHTS = Path(str(files("shapes_lab.judge") / "judge-v1.safetensors"))  # package data


@dataclass(frozen=True)
class ShapeClassifier:
    weights: list[np.ndarray]  # (in, out) per layer, ReLU between layers
    biases: list[np.ndarray]
    mean: np.ndarray  # feature normalisation
    std: np.ndarray
    area_k: np.ndarray  # per shape: soft area = k * side^2
    center_dy: np.ndarray  # per shape: box centre y - alpha centroid y, per pixel of side

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """(n, len(CLASSES)) softmax probabilities for (n, FEATURES) inputs."""
        h = (np.asarray(features, np.float32) - self.mean) / self.std
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = h @ w + b
            if i < len(self.weights) - 1:
                h = np.maximum(h, 0.0)
        h = h - h.max(axis=1, keepdims=True)
        e = np.exp(h)
        return e / e.sum(axis=1, keepdims=True)

    def classify(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Class indices (junk when unsure), their confidences, and all probabilities."""
        if len(features) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros((0, len(CLASSES)))
        p = self.probabilities(features)
        best = p.argmax(axis=1)
        confidence = p[np.arange(len(p)), best]
        return np.where(confidence < MIN_CONFIDENCE, JUNK, best), confidence, p

    def side(self, shape: int, soft_area: float) -> float:
        """The side s of a shape's box estimated from its soft area."""
        return float(np.sqrt(soft_area / self.area_k[shape]))

    @classmethod
    def load(cls, path: Path = WEIGHTS) -> ShapeClassifier:
        tensors = load_file(str(path))
        n = sum(1 for name in tensors if name.startswith("weight."))
        return cls(
            weights=[tensors[f"weight.{i}"] for i in range(n)],
            biases=[tensors[f"bias.{i}"] for i in range(n)],
            mean=tensors["mean"],
            std=tensors["std"],
            area_k=tensors["area_k"],
            center_dy=tensors["center_dy"],
        )


def save_weights(classifier: ShapeClassifier, path: Path, metadata: dict[str, str]) -> None:
    """Write the classifier as float32 safetensors, with the class order in the metadata."""
    tensors = {
        "mean": classifier.mean,
        "std": classifier.std,
        "area_k": classifier.area_k,
        "center_dy": classifier.center_dy,
    }
    for i, (w, b) in enumerate(zip(classifier.weights, classifier.biases, strict=True)):
        tensors[f"weight.{i}"], tensors[f"bias.{i}"] = w, b
    tensors = {k: np.ascontiguousarray(v, np.float32) for k, v in tensors.items()}
    save_file(tensors, str(path), metadata={"classes": ",".join(CLASSES), **metadata})
