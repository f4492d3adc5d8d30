"""Prompt (and image prompt) -> ranked images with the PyTorch model: tokenize, sample,
decode, rank."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from shapes_backend.model.bundle import RANKER, TRANSFORMER, Tokenizers, load_module
from shapes_backend.model.common import (
    Generated,
    ImageDraws,
    ImagePrompt,
    OnProgress,
    Phrases,
    SamplingOptions,
    check_known_words,
)
from shapes_backend.model.edit import plan_edit, unchanged_images
from shapes_backend.model.ranker import RankerConfig, ShapesRanker
from shapes_backend.model.sampling import sample_tokens
from shapes_backend.model.transformer import ShapesTransformer, TransformerConfig


@dataclass
class ShapesPipeline:
    tokenizers: Tokenizers
    transformer: ShapesTransformer
    ranker: ShapesRanker | None
    device: str = "cpu"

    @classmethod
    def load(cls, folder: Path, device: str = "cpu", ranker: bool = True) -> ShapesPipeline:
        tokenizers = Tokenizers.load(folder)
        transformer = load_module(
            ShapesTransformer, TransformerConfig, folder / TRANSFORMER, device
        )
        ranking = (
            load_module(ShapesRanker, RankerConfig, folder / RANKER, device) if ranker else None
        )
        return cls(tokenizers, transformer, ranking, device)

    @torch.inference_mode()
    def generate(
        self,
        prompt: str,
        n: int,
        seed: int,
        options: SamplingOptions | None = None,
        rank: bool = True,
        on_progress: OnProgress | None = None,
        edit: ImagePrompt | None = None,
    ) -> Generated:
        """`n` images of `prompt`, image i drawn from seed + i; with an image prompt
        `edit`, completions and repaints of its image (with a mask) or variations of it
        (`shapes_backend.model.edit`)."""
        encoded = check_known_words(self.tokenizers.text, prompt)
        text = torch.from_numpy(encoded.ids).to(self.device)
        image = self.tokenizers.image
        row = image.grid[1]
        plan = None if edit is None else plan_edit(image, edit, n, prompt)

        def decode(backgrounds: torch.Tensor, patches: torch.Tensor) -> np.ndarray:
            ids, tokens = backgrounds.cpu().numpy(), patches.cpu().numpy()
            return image.decode_batch(ids, tokens) if plan is None else plan.images(ids, tokens)

        def on_patch(done: int, backgrounds: torch.Tensor, patches: torch.Tensor) -> None:
            if on_progress is None:
                return
            partial = None
            if done % row == 0:
                partial = decode(backgrounds, patches)
            on_progress(done, image.n_patches, partial)

        options = options or SamplingOptions()
        backgrounds, patches, log_likelihoods = sample_tokens(
            self.transformer,
            text,
            n,
            options,
            ImageDraws(seed, n),  # numpy streams: the same on any device
            on_patch,
            Phrases.of(self.tokenizers.text, prompt),
            plan,
        )
        images = decode(backgrounds, patches)
        generated = Generated(
            images, np.zeros(n, np.float32), log_likelihoods.numpy(), encoded.unknown
        )
        if not rank or self.ranker is None:
            return generated
        cosines = self.ranker.scores(text, torch.from_numpy(images).to(self.device))
        ranked = generated.ranked(cosines.cpu().numpy())
        return ranked if plan is None else ranked.distinct(unchanged_images(plan))
