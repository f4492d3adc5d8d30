"""Training batches streamed from the scene generator, reproducible across resumes."""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

import numpy as np
import torch

from plugins.shapes.captions import write_caption
from plugins.shapes.model.bundle import Tokenizers
from plugins.shapes.model.negatives import hard_negative
from plugins.shapes.render import render_array
from plugins.shapes.sampler import LayoutError, SceneSampler
from plugins.shapes.scene import Scene

CHUNK = 500  # steps per re-seed: batch i is the same whether or not the run resumed


@dataclass
class Batch:
    text: torch.Tensor  # (B, T) word ids
    backgrounds: torch.Tensor | None = None  # (B,) for the transformer
    patches: torch.Tensor | None = None  # (B, P) image token ids
    images: torch.Tensor | None = None  # (B, 64, 64, 3) uint8, for the ranker
    negatives: torch.Tensor | None = None  # (B, N, T) captions with one clause changed


class CaptionedBatches:
    """Token batches for the transformer, or image + hard-negative batches for the ranker.

    For the ranker (`negatives` > 0) each scene comes with `twins`: scenes drawn for its
    caption with one clause changed, in the same batch, so that every image has a near
    miss among the captions and every caption among the images. Each image also gets
    `negatives` changed captions of its own. Half of the images pass through the image
    tokenizer, as the transformer's samples do."""

    def __init__(self, tokenizers: Tokenizers, batch: int, seed: int, start_step: int = 0,
                 negatives: int = 0, twins: int = 0) -> None:  # fmt: skip
        self.tokenizers, self.batch, self.seed = tokenizers, batch, seed
        self.negatives, self.twins = negatives, twins
        self.step = start_step
        self._start_chunk(skip=start_step % CHUNK)

    def _start_chunk(self, skip: int = 0) -> None:
        chunk_seed = self.seed * 1_000_003 + self.step // CHUNK
        self.sampler = SceneSampler(chunk_seed)
        self.rng = random.Random(chunk_seed)
        for _ in range(skip):  # captions and layouts only: cheap
            self._draw_batch()

    def _draw(self) -> list[tuple[Scene, list[str]]]:
        """A scene (and its twins), each with its hard-negative captions."""
        group = [self.sampler.scene()]
        for _ in range(self.twins):
            changed = hard_negative(group[0].spec, self.rng)
            try:
                twin = self.sampler.realise(changed) if changed is not None else None
            except LayoutError:  # e.g. "four large squares": no room for them
                twin = None
            if twin is not None:
                group.append(dataclasses.replace(twin, caption=write_caption(changed, self.rng)))
        return [(scene, [self._negative(scene.spec) for _ in range(self.negatives)])
                for scene in group]  # fmt: skip

    def _draw_batch(self) -> list[tuple[Scene, list[str]]]:
        drawn: list[tuple[Scene, list[str]]] = []
        while len(drawn) < self.batch:
            drawn += self._draw()
        return drawn[: self.batch]

    def _negative(self, spec) -> str:
        changed = hard_negative(spec, self.rng)
        return write_caption(changed, self.rng) if changed is not None else ""

    def next(self) -> Batch:
        if self.step % CHUNK == 0:
            self._start_chunk()
        self.step += 1
        drawn = self._draw_batch()
        text_of = self.tokenizers.text.encode
        text = torch.from_numpy(np.stack([text_of(scene.caption).ids for scene, _ in drawn]))
        images = [render_array(scene) for scene, _ in drawn]
        image_tokens = self.tokenizers.image
        if self.negatives:
            group = 1 + self.twins
            for i in range(len(images)):  # the ranker judges tokenizer output too
                if (i // group + self.step) % 2:
                    images[i] = image_tokens.decode(*image_tokens.encode(images[i]))
            negatives = np.stack([[text_of(c).ids for c in caps] for _, caps in drawn])
            return Batch(text, images=torch.from_numpy(np.stack(images)),
                         negatives=torch.from_numpy(negatives))  # fmt: skip
        encoded = [image_tokens.encode(image) for image in images]
        backgrounds = torch.tensor([b for b, _ in encoded])
        patches = torch.from_numpy(np.stack([t for _, t in encoded]))
        return Batch(text, backgrounds=backgrounds, patches=patches)
