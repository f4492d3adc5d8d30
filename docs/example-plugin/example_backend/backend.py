"""A gradient between the first two colours the prompt names, at a seeded angle, with noise.

Image i comes from its own seed (the request's + i), so it is the same alone or in a batch.
"""

from __future__ import annotations

import re
import tomllib
from importlib.resources import files

import numpy as np

from studio.api import (
    Backend,
    Candidate,
    Capabilities,
    GenerationContext,
    GenerationRequest,
    ModelInfo,
)

ROWS_PER_STEP = 32  # progress is reported, and cancelling checked, once per block of rows
SEEDS = 2**32  # a request's seed is below this; so must each image's be


def colour_table() -> dict[str, np.ndarray]:
    text = (files("example_backend") / "colours.toml").read_text(encoding="utf-8")
    return {name: np.array(rgb, np.float32) for name, rgb in tomllib.loads(text).items()}


class GradientBackend(Backend):
    display_name = "Example: two-colour gradient"

    def __init__(self) -> None:
        self.colours: dict[str, np.ndarray] | None = None

    def capabilities(self) -> Capabilities:
        return Capabilities(min_size=64, max_size=512, size_multiple=8, max_count=8)

    def models(self) -> list[ModelInfo]:
        return [ModelInfo(ref="gradient", name="Gradient", description="no weights to load")]

    def load(self, model: str) -> None:
        if model not in ("", "gradient"):
            raise FileNotFoundError(f"no model {model!r}: this backend has only 'gradient'")
        self.colours = colour_table()

    def unload(self) -> None:
        self.colours = None

    def generate(self, request: GenerationRequest, ctx: GenerationContext) -> list[Candidate]:
        assert self.colours is not None, "generate before load"
        named = [
            self.colours[w]
            for w in re.findall(r"[a-z]+", request.prompt.lower())
            if w in self.colours
        ]
        start, end = [*named, self.colours["black"], self.colours["white"]][:2]
        height, width = request.height, request.width
        blocks = range(0, height, ROWS_PER_STEP)
        xs, ys = (np.linspace(-1, 1, n, dtype=np.float32) for n in (width, height))
        total, done = request.count * len(blocks), 0
        candidates = []
        for i in range(request.count):
            seed = (request.seed + i) % SEEDS
            rng = np.random.default_rng(seed)
            angle = rng.uniform(0, 2 * np.pi)
            noise = rng.normal(0, 6, (height, width, 1)).astype(np.float32)
            image = np.zeros((height, width, 3), np.uint8)
            for top in blocks:
                ctx.check_cancelled()
                y = ys[top : top + ROWS_PER_STEP, None]
                t = (np.cos(angle) * xs[None, :] + np.sin(angle) * y) / np.sqrt(2)
                t = (t[..., None] + 1) / 2  # 0..1 along the gradient's direction
                rows = start + (end - start) * t + noise[top : top + ROWS_PER_STEP]
                image[top : top + ROWS_PER_STEP] = np.clip(rows, 0, 255).round()
                done += 1
                ctx.progress(done, total)  # raises Cancelled too
                ctx.preview(image)
            candidates.append(Candidate(image, seed=seed))
        return candidates
