"""A quick alignment score during training: a few shipped eval prompts per kind, judged."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shapes_backend import world
from shapes_backend.model.bundle import TRANSFORMER, Tokenizers, load_module
from shapes_backend.model.pipeline import ShapesPipeline
from shapes_backend.model.ranker import RankerConfig, ShapesRanker
from shapes_backend.model.transformer import ShapesTransformer, TransformerConfig
from shapes_backend.parser import parse_prompt
from shapes_lab.evaluate import DEFAULT_PROMPTS, load_prompts
from shapes_lab.judge import Judge

IMAGES = 4
CANDIDATES = 16


def quick_eval(
    bundle: Path, per_kind: int, seed: int, ranked: bool, transformer: Path | None = None
) -> dict[str, float]:
    """Pass rates per kind (seen pairs), their mean, and the held-out mean."""
    model = load_module(ShapesTransformer, TransformerConfig, transformer or bundle / TRANSFORMER)
    ranker = None
    if ranked:
        ranker = load_module(ShapesRanker, RankerConfig, bundle / "ranker.safetensors")
    pipeline = ShapesPipeline(Tokenizers.load(bundle), model, ranker)
    judge = Judge.load()
    taken: dict[tuple[str, str], int] = {}
    passed: dict[tuple[str, str], list[float]] = {}
    for index, item in enumerate(load_prompts(DEFAULT_PROMPTS)):
        key = (item.split, item.kind)
        if taken.get(key, 0) >= per_kind:
            continue
        taken[key] = taken.get(key, 0) + 1
        n = CANDIDATES if ranked else IMAGES
        images = pipeline.generate(item.prompt, n, seed + index, rank=ranked).images[:IMAGES]
        spec = parse_prompt(item.prompt)
        passed.setdefault(key, []).extend(judge.check(image, spec).passed for image in images)
    if not passed:
        return {}
    scores = {kind: float(np.mean(passed["seen", kind])) for kind in world.KINDS}
    held_out = [float(np.mean(v)) for (split, _), v in passed.items() if split == "held_out"]
    return {
        "overall": float(np.mean(list(scores.values()))),
        **scores,
        "held_out": float(np.mean(held_out)),
    }
