"""The built-in model as a Studio backend, run by PyTorch (CUDA when present, else CPU).

Request options (all optional): `temperature` (default 0.3; 0.7 with a picture),
`top_k` (32), `rank` (true: the sampled candidates are ordered by the ranker's match of
prompt and image plus each image's own likelihood under the model, and the best `count`
are kept; false: the first `count` samples are kept as drawn) and `phrases` (true: in a
prompt naming objects of different colours, each object's shape is drawn under its own noun phrase,
which binds colours to the right shapes; false: under the whole prompt only). Guidance 0
means the default, 2.

Image prompts (`request.image`), as DALL-E's: the picture is scaled to 64 x 64 and read
as tokens. With a mask, the patches it touches are drawn under the prompt and the rest
kept: outside the mask, snapped to the 8 x 8 patch grid, results are the input's pixels
exactly (`shapes_backend.model.edit`). Without one, a variation: every token drawn anew
with the picture's own as a prior, as strong as `strength` (default 0.3) is low.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from shapes_backend.model.bundle import SHIPPED, TRANSFORMER, model_label
from studio.api import (
    Backend,
    Candidate,
    Capabilities,
    GenerationContext,
    GenerationRequest,
    ModelInfo,
    PromptCut,
    RequestError,
)

MODEL_REF = "shapes-v1"
DEFAULT_GUIDANCE = 2.0
DEFAULT_STRENGTH = 0.3  # variations keep about 70 % of the picture's tokens
TEMPERATURE = 0.3
# An image prompt draws more varied candidates, for the ranking to choose from. A masked
# edit draws under tokens it cannot see yet (those after it, given): on the lab's tuning
# edits (not the eval set; bench/tune_image_prompts.py), 4 shown of 16 passed 0.60 at
# 0.3, 0.69 at 0.5, 0.73 at 0.7 and 0.71 at 1.0. A variation of the model's own image at
# 0.3 redraws that image, token for token: its tokens are the model's likeliest anyway.
EDIT_TEMPERATURE = 0.7
PREVIEW_TILES = 4  # candidates shown side by side in a live preview


class ModelFilesMissing(FileNotFoundError):
    pass


def capabilities(devices: tuple[str, ...]) -> Capabilities:
    """What the built-in model does, whichever runtime runs it."""
    return Capabilities(
        fixed_sizes=((64, 64),),
        max_count=16,
        max_candidates=64,
        default_guidance=DEFAULT_GUIDANCE,
        max_guidance=10.0,
        samplers=("top-k",),
        devices=devices,
        ranks=True,
        image=True,
        mask=True,
        strength=True,
        default_strength=DEFAULT_STRENGTH,
    )


def model_info(folder: Path = SHIPPED) -> ModelInfo:
    """The shipped model, with the short hash other tools show (SHA-256, first 10 digits)."""
    weights = folder / TRANSFORMER
    size = sum(f.stat().st_size for f in folder.glob("*") if f.is_file()) if folder.is_dir() else 0
    return ModelInfo(
        ref=MODEL_REF,
        name=f"{model_label(folder)} (built in)",
        architecture="dall-e-style transformer",
        format="safetensors",
        size_bytes=size,
        hash=_short_hash(weights),
        description="Draws the Shapes world: coloured shapes, counts, places and relations.",
    )


@cache
def _short_hash(path: Path) -> str:
    if not path.is_file():
        return ""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:10]


def sampler_label(request: GenerationRequest) -> str:
    """The sampler as image metadata names it: its settings after its name, as A1111's
    names carry theirs ("DPM++ 2M Karras"), with no comma (readers split at commas)."""
    options = request.options
    return f"top-k {options.get('top_k', 32)} temperature {temperature(request)}"


def temperature(request: GenerationRequest) -> float:
    """The request's sampling temperature: its option, else the default for what it asks."""
    if "temperature" in request.options:
        return float(request.options["temperature"])
    return EDIT_TEMPERATURE if request.image is not None else TEMPERATURE


def check_model(model: str, folder: Path) -> None:
    if model not in ("", MODEL_REF):
        raise FileNotFoundError(f"the built-in backend has one model, {MODEL_REF!r}, not {model!r}")
    if not (folder / TRANSFORMER).is_file():
        raise ModelFilesMissing(
            f"the built-in model's weights are missing from {folder}; train them with "
            "`python -m shapes_lab.model.train --config shipped --out OUT` (the lab) and "
            "copy OUT into shapes_backend/weights"
        )


def preview_tiles(partial: np.ndarray) -> np.ndarray:
    """The first candidates, side by side, as one preview image."""
    return np.concatenate(list(partial[:PREVIEW_TILES]), axis=1)


def unknown_words(prompt: str) -> list[str]:
    """The words of `prompt` the shipped model's vocabulary lacks."""
    return list(_vocabulary().encode(prompt).unknown)


def prompt_cut(prompt: str) -> PromptCut | None:
    """Where the model stops reading a prompt of more words than its text tokens."""
    from shapes_backend.model.text_tokens import TEXT_LENGTH, cut_at

    at = cut_at(prompt)
    return None if at is None else PromptCut(at, f"{TEXT_LENGTH} words")


@cache
def _vocabulary() -> Any:
    from shapes_backend.model.bundle import TEXT_VOCAB
    from shapes_backend.model.text_tokens import TextTokenizer

    path = SHIPPED / TEXT_VOCAB
    words = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    return TextTokenizer(tuple(words)) if words else TextTokenizer.build()


class BuiltinShapesBackend(Backend):
    """What both runtimes share: the model files, capabilities, options and generation.
    Subclasses load a pipeline (anything with `generate` like `ShapesPipeline`)."""

    def __init__(self, folder: Path = SHIPPED, threads: int = 0) -> None:
        self.folder = folder
        self.threads = threads  # 0: the runtime's own choice
        self.pipeline: Any = None

    def capabilities(self) -> Capabilities:
        return capabilities(("cpu", "cuda"))

    def models(self) -> list[ModelInfo]:
        return [model_info(self.folder)]

    def sampler_name(self, request: GenerationRequest) -> str:
        return sampler_label(request)

    def unknown_words(self, prompt: str) -> list[str]:
        return unknown_words(prompt)

    def prompt_cut(self, prompt: str) -> PromptCut | None:
        return prompt_cut(prompt)

    def unload(self) -> None:
        self.pipeline = None

    def generate(self, request: GenerationRequest, ctx: GenerationContext) -> list[Candidate]:
        return generate_candidates(self.pipeline, request, ctx)


class ShapesBackend(BuiltinShapesBackend):
    display_name = "Built-in Shapes model (PyTorch)"

    def device(self) -> str:
        return self.pipeline.device if self.pipeline is not None else "cpu"

    def load(self, model: str) -> None:
        check_model(model, self.folder)
        import torch

        from shapes_backend.model.pipeline import ShapesPipeline

        if self.threads:
            torch.set_num_threads(self.threads)
        device = "cuda:0" if torch.cuda.is_available() else "cpu"
        self.pipeline = ShapesPipeline.load(self.folder, device)
        if device != "cpu":  # fp16 halves the transformer's time; the ranker stays fp32
            self.pipeline.transformer.half()

    def unload(self) -> None:
        super().unload()
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def image_prompt(request: GenerationRequest) -> Any:
    """The request's input picture and mask at the model's size, as the sampler takes
    them (None for text alone). Any size is scaled to 64 x 64 (not cropped)."""
    if request.image is None:
        return None
    from PIL import Image

    from shapes_backend import world
    from shapes_backend.model.common import ImagePrompt

    side = world.CANVAS
    image = request.image.open().convert("RGB")
    if image.size != (side, side):
        image = image.resize((side, side), Image.Resampling.LANCZOS)
    mask = None
    if request.mask is not None:
        scaled = request.mask.open().convert("L")
        if scaled.size != (side, side):
            scaled = scaled.resize((side, side), Image.Resampling.BILINEAR)
        mask = np.asarray(scaled, np.float32) / 255.0
        if not (mask >= 0.5).any():
            raise RequestError(
                [
                    f"the mask, scaled to the model's {side} x {side} pixels, marks nothing "
                    "to repaint: paint a larger area"
                ]
            )
    return ImagePrompt(np.asarray(image), mask, request.strength or DEFAULT_STRENGTH)


def generate_candidates(
    pipeline: Any, request: GenerationRequest, ctx: GenerationContext
) -> list[Candidate]:
    """Run either runtime's pipeline for a request: progress, previews, cancel, ranking."""
    from shapes_backend.model.common import SamplingOptions

    options = SamplingOptions(
        temperature=temperature(request),
        top_k=int(request.options.get("top_k", 32)),
        guidance=request.guidance or DEFAULT_GUIDANCE,
        phrases=bool(request.options.get("phrases", True)),
    )

    def on_progress(done: int, total: int, partial: np.ndarray | None) -> None:
        ctx.progress(done, total)  # raises Cancelled: stops within one patch
        if partial is not None:
            ctx.preview(preview_tiles(partial))

    result = pipeline.generate(
        request.prompt,
        request.candidates,
        request.seed,
        options,
        rank=bool(request.options.get("rank", True)),
        on_progress=on_progress,
        edit=image_prompt(request),
    )
    # Candidate i drew from its own stream, seeded with seed + i: recorded as its seed, so
    # that the seed alone (with one candidate) draws it again, here or on any machine.
    return [
        Candidate(image, score=float(score), seed=(request.seed + int(index)) % 2**32)
        for image, score, index in zip(result.images, result.scores, result.order, strict=True)
    ]
