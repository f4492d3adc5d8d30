"""Prompt -> ranked images with the PyTorch model: tokenize, sample, decode, rank."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from plugins.shapes.model.bundle import RANKER, TRANSFORMER, Tokenizers, load_module
from plugins.shapes.model.ranker import RankerConfig, ShapesRanker
from plugins.shapes.model.sampling import SamplingOptions, sample_tokens
from plugins.shapes.model.transformer import ShapesTransformer, TransformerConfig

# Called after every patch (patches done, of total, partial images): the images, decoded
# so far (n, 64, 64, 3), come at the end of each row of patches and are None otherwise.
# It may raise to stop sampling (the engine's cancel does).
OnProgress = Callable[[int, int, np.ndarray | None], None]


@dataclass
class Generated:
    images: np.ndarray  # (n, 64, 64, 3) uint8, best first when ranked
    scores: np.ndarray  # (n,) ranker scores (cosine), or zeros without a ranker
    unknown_words: tuple[str, ...]


class NoKnownWords(ValueError):
    """A prompt none of whose words the model knows: it would draw noise."""


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
    ) -> Generated:
        encoded = self.tokenizers.text.encode(prompt)
        if not (encoded.ids > 1).any():  # nothing but padding and unknown words
            raise NoKnownWords(
                "none of the words of this prompt are known to the built-in model "
                "(it draws shapes: try e.g. 'three yellow hearts on a black background')"
            )
        generator = torch.Generator().manual_seed(seed)  # CPU generator: same on any device
        text = torch.from_numpy(encoded.ids).to(self.device)
        image = self.tokenizers.image
        row = image.grid[1]

        def on_patch(done: int, backgrounds: torch.Tensor, patches: torch.Tensor) -> None:
            if on_progress is None:
                return
            partial = None
            if done % row == 0:
                partial = image.decode_batch(backgrounds.cpu().numpy(), patches.cpu().numpy())
            on_progress(done, image.n_patches, partial)

        options = options or SamplingOptions()
        backgrounds, patches = sample_tokens(
            self.transformer, text, n, options, generator, on_patch
        )
        images = image.decode_batch(backgrounds.cpu().numpy(), patches.cpu().numpy())
        scores = np.zeros(n, np.float32)
        if rank and self.ranker is not None:
            scores = (
                self.ranker.scores(text, torch.from_numpy(images).to(self.device)).cpu().numpy()
            )
            order = np.argsort(-scores, kind="stable")
            images, scores = images[order], scores[order]
        return Generated(images, scores, encoded.unknown)
