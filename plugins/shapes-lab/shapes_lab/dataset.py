"""Shapes data: dataset shards on disk, and a stream for training that never touches disk."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from shapes_backend import world
from shapes_backend.scene import Scene
from shapes_lab.render import render, render_array
from shapes_lab.sampler import Pairs, SceneSampler
from studio.api import atomic_write_bytes

ANNOTATIONS = "annotations.jsonl"


def stream(
    seed: int, *, kinds: Sequence[str] = world.KINDS, pairs: Pairs = "seen"
) -> Iterator[tuple[Scene, np.ndarray]]:
    """Endless (captioned scene, 64 x 64 x 3 uint8 image) pairs for training."""
    for scene in SceneSampler(seed, kinds=kinds, pairs=pairs):
        yield scene, render_array(scene)


def write_shard(
    out: Path,
    count: int,
    seed: int,
    *,
    kinds: Sequence[str] = world.KINDS,
    include_held_out: bool = False,
) -> Path:
    """Write `count` PNG images and their annotations (one JSON line each) into `out`.

    Held-out colour-shape pairs appear only with `include_held_out`. The annotation
    file is written last, atomically: a shard with an annotation file is complete
    (images are not fsynced one by one: an interrupted shard is simply written again).
    """
    out.mkdir(parents=True, exist_ok=True)
    sampler = SceneSampler(seed, kinds=kinds, pairs="any" if include_held_out else "seen")
    width = max(6, len(str(count - 1)))
    lines = []
    for index in range(count):
        scene = sampler.scene()
        name = f"{index:0{width}d}.png"
        render(scene).save(out / name, "PNG")
        lines.append(json.dumps(scene.annotation(name), ensure_ascii=False))
    annotations = out / ANNOTATIONS
    atomic_write_bytes(annotations, ("\n".join(lines) + "\n").encode("utf-8"))
    return annotations
