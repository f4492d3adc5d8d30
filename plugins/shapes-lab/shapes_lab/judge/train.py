"""Train the judge's shape classifier and calibrate its size and centre estimates.

    .venv/bin/python -m shapes_lab.judge.train \\
        --out plugins/shapes-lab/shapes_lab/judge/judge-v1.safetensors --seed 0

Torch is used here only; the judge runs the saved weights with numpy. Deterministic
given the seed (one torch thread). Writes the weights and, beside them, a `.log`.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from shapes_backend import world
from shapes_lab.judge.classifier import CLASSES, ShapeClassifier, save_weights
from shapes_lab.judge.dataset import Samples, build
from shapes_lab.render import unit_outline

HIDDEN = (192, 96)
BATCH = 256
LEARNING_RATE = 2e-3
WEIGHT_DECAY = 1e-4
VALIDATION_SEED_OFFSET = 1_000_003  # a disjoint stream for the fresh validation set
MIN_CALIBRATION = 20  # samples of a shape needed to measure its calibration


def train(
    out: Path,
    seed: int,
    n_images: int = 30_000,
    n_validation: int = 6_000,
    epochs: int = 20,
    log: Callable[[str], None] = print,
) -> ShapeClassifier:
    """Build data, fit the MLP, calibrate, save to `out`; returns the numpy classifier."""
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    started = time.perf_counter()
    data = build(n_images, seed)
    validation = build(n_validation, seed + VALIDATION_SEED_OFFSET)
    x, y, _ = data.arrays()
    log(
        f"data: {len(y)} training components from {n_images} images, "
        f"{len(validation.y)} validation from {n_validation}; "
        f"class counts {np.bincount(y, minlength=len(CLASSES)).tolist()}; "
        f"{time.perf_counter() - started:.0f} s"
    )

    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-3
    sizes = (x.shape[1], *HIDDEN, len(CLASSES))
    layers: list[torch.nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    optimiser = torch.optim.AdamW(model.parameters(), LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    inputs = torch.from_numpy((x - mean) / std)
    targets = torch.from_numpy(y)
    steps = epochs * math.ceil(len(y) / BATCH)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, LEARNING_RATE, total_steps=steps)
    generator = torch.Generator().manual_seed(seed)
    fit_started = time.perf_counter()
    for epoch in range(epochs):
        order = torch.randperm(len(y), generator=generator)
        total = 0.0
        for start in range(0, len(y), BATCH):
            index = order[start : start + BATCH]
            loss = torch.nn.functional.cross_entropy(model(inputs[index]), targets[index])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += float(loss.detach()) * len(index)
        log(f"epoch {epoch + 1}/{epochs}: loss {total / len(y):.4f}")
    log(f"fit: {time.perf_counter() - fit_started:.0f} s")

    linear = [m for m in model if isinstance(m, torch.nn.Linear)]
    area_k, center_dy = calibrate(data)
    classifier = ShapeClassifier(
        weights=[m.weight.detach().numpy().T.copy() for m in linear],
        biases=[m.bias.detach().numpy().copy() for m in linear],
        mean=mean.astype(np.float32),
        std=std.astype(np.float32),
        area_k=area_k,
        center_dy=center_dy,
    )
    report(classifier, validation, log)
    save_weights(classifier, out, {"seed": str(seed), "images": str(n_images)})
    log(
        f"saved {out} ({out.stat().st_size / 1024:.0f} KiB); "
        f"total {time.perf_counter() - started:.0f} s"
    )
    return classifier


def calibrate(data: Samples) -> tuple[np.ndarray, np.ndarray]:
    """Per shape: k in soft area = k * side^2 (least squares), and the offset from the
    alpha centroid down to the box centre, as a fraction of the side. A shape with too
    few samples (tiny smoke runs) keeps its outline's exact geometric values."""
    rows = np.array(data.calibration, np.float64).reshape(-1, 4)
    area_k = np.zeros(len(world.SHAPES), np.float32)
    center_dy = np.zeros(len(world.SHAPES), np.float32)
    for i, shape in enumerate(world.SHAPES):
        shape_rows = rows[rows[:, 0] == i]
        if len(shape_rows) < MIN_CALIBRATION:
            area_k[i], center_dy[i] = _polygon_area_and_offset(unit_outline(shape))
            continue
        side, area, dy = shape_rows[:, 1], shape_rows[:, 2], shape_rows[:, 3]
        area_k[i] = (area * side**2).sum() / (side**4).sum()
        center_dy[i] = np.median(dy / side)
    return area_k, center_dy


def _polygon_area_and_offset(points: tuple[tuple[float, float], ...]) -> tuple[float, float]:
    """Area of a unit outline and the offset from its centroid to its box centre (0, 0)."""
    x, y = np.asarray(points).T
    cross = x * np.roll(y, -1) - np.roll(x, -1) * y
    area = cross.sum() / 2
    centroid_y = ((y + np.roll(y, -1)) * cross).sum() / (6 * area)
    return abs(area), -centroid_y


def report(classifier: ShapeClassifier, validation: Samples, log: Callable[[str], None]) -> None:
    """Per-class accuracy on the fresh validation set (low confidence counts as junk),
    for all components and for the generator's own scenes alone; size and centre errors."""
    x, y, from_scene = validation.arrays()
    predicted = classifier.classify(x)[0]
    log("validation accuracy per class (all images | generator scenes only):")
    for i, name in enumerate(CLASSES):
        mine = y == i
        scene = mine & from_scene
        if not mine.any():
            continue
        scene_text = "-"
        if scene.any():
            scene_text = f"{(predicted[scene] == i).mean():.4f} (n={scene.sum()})"
        log(f"  {name:9s} {(predicted[mine] == i).mean():.4f} (n={mine.sum()}) | {scene_text}")
    scene_overall = (predicted[from_scene] == y[from_scene]).mean() if from_scene.any() else 0
    log(f"  overall   {(predicted == y).mean():.4f} | {scene_overall:.4f}")
    confusion = np.zeros((len(CLASSES), len(CLASSES)), np.int64)
    np.add.at(confusion, (y, predicted), 1)
    log("confusion (rows true, columns predicted, order " + " ".join(CLASSES) + "):")
    for i, name in enumerate(CLASSES):
        log(f"  {name:9s} " + " ".join(f"{n:5d}" for n in confusion[i]))
    rows = np.array(validation.calibration, np.float64)
    if len(rows) == 0:
        return
    shapes = rows[:, 0].astype(int)
    side = np.sqrt(rows[:, 2] / classifier.area_k[shapes])
    dy = rows[:, 3] - classifier.center_dy[shapes] * side
    log(
        f"size error (px): max {np.abs(side - rows[:, 1]).max():.3f}, "
        f"mean {np.abs(side - rows[:, 1]).mean():.3f}; centre y error (px): "
        f"max {np.abs(dy).max():.3f}; k {np.round(classifier.area_k, 4).tolist()}; "
        f"dy/side {np.round(classifier.center_dy, 4).tolist()}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--images", type=int, default=30_000)
    parser.add_argument("--validation", type=int, default=6_000)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out.with_suffix(".log"), "w", encoding="utf-8") as log_file:

        def log(line: str) -> None:
            print(line, flush=True)
            log_file.write(line + "\n")

        log(
            f"train --out {args.out} --seed {args.seed} --images {args.images} "
            f"--validation {args.validation} --epochs {args.epochs}"
        )
        train(args.out, args.seed, args.images, args.validation, args.epochs, log)


if __name__ == "__main__":
    main()
