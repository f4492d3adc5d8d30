"""Training batches streamed from the scene generator, reproducible across resumes."""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

import numpy as np
import torch

from plugins.shapes import world
from plugins.shapes.captions import write_caption
from plugins.shapes.model.bundle import Tokenizers
from plugins.shapes.model.image_tokens import EMPTY
from plugins.shapes.model.negatives import hard_negative
from plugins.shapes.render import render_with_objects
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
    near_misses: torch.Tensor | None = None  # (M, 64, 64, 3): images[:M], slightly broken
    labels: torch.Tensor | None = None  # (B, 4, patches): what covers each patch


class CaptionedBatches:
    """Token batches for the transformer, or image + hard-negative batches for the ranker.

    For the ranker (`negatives` > 0) each scene comes with `twins`: scenes drawn for its
    caption with one clause changed, in the same batch, so that every image has a near
    miss among the captions and every caption among the images. Each image also gets
    `negatives` changed captions of its own. The first half of the images pass through
    the image tokenizer, as the transformer's samples do, and those get a near miss each:
    their tokens with a stray fragment added or a piece taken away. `label_patch` > 0
    adds what covers each patch of that size (`patch_labels`)."""

    def __init__(self, tokenizers: Tokenizers, batch: int, seed: int, start_step: int = 0,
                 negatives: int = 0, twins: int = 0, label_patch: int = 0) -> None:  # fmt: skip
        self.tokenizers, self.batch, self.seed = tokenizers, batch, seed
        self.negatives, self.twins, self.label_patch = negatives, twins, label_patch
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
        rendered = [render_with_objects(scene) for scene, _ in drawn]
        images = [image for image, _ in rendered]
        image_tokens = self.tokenizers.image
        if self.negatives:
            near_misses, rng = [], random.Random(self.seed * 1_000_003 + self.step)  # resumable
            for i in range(len(images) // 2):  # the ranker judges tokenizer output too
                background, tokens = image_tokens.encode(images[i])
                images[i] = image_tokens.decode(background, tokens)
                near_misses.append(image_tokens.decode(background, near_miss(tokens, rng)))
            negatives = np.stack([[text_of(c).ids for c in caps] for _, caps in drawn])
            labels = None
            if self.label_patch:
                labels = torch.from_numpy(np.stack([
                    patch_labels(scene, objects, self.label_patch)
                    for (scene, _), (_, objects) in zip(drawn, rendered, strict=True)
                ]))  # fmt: skip
            return Batch(text, images=torch.from_numpy(np.stack(images)),
                         negatives=torch.from_numpy(negatives),
                         near_misses=torch.from_numpy(np.stack(near_misses)),
                         labels=labels)  # fmt: skip
        encoded = [image_tokens.encode(image) for image in images]
        backgrounds = torch.tensor([b for b, _ in encoded])
        patches = torch.from_numpy(np.stack([t for _, t in encoded]))
        return Batch(text, backgrounds=backgrounds, patches=patches)


def near_miss(tokens: np.ndarray, rng: random.Random) -> np.ndarray:
    """The image tokens with a stray fragment (a copy of one of its patches in an empty
    place) or a hole (a patch emptied): what the transformer gets wrong most."""
    tokens = tokens.copy()
    filled, empty = np.flatnonzero(tokens != EMPTY), np.flatnonzero(tokens == EMPTY)
    if not len(filled):
        return tokens
    if len(empty) and rng.random() < 0.5:
        tokens[rng.choice(empty)] = tokens[rng.choice(filled)]
    else:
        tokens[rng.choice(filled)] = EMPTY
    return tokens


def patch_labels(scene: Scene, objects: np.ndarray, patch: int) -> np.ndarray:
    """(4, patches) labels from the object map `render_with_objects` gives: the shape,
    colour and size (each 0 for none, else its index + 1) of the object covering the
    most of each patch, at least an eighth of it, and 1 where an object's centre lies."""
    n = world.CANVAS // patch
    blocks = objects.reshape(n, patch, n, patch).transpose(0, 2, 1, 3).reshape(n * n, -1)
    counts = np.stack([(blocks == i).sum(1) for i in range(1, len(scene.objects) + 1)], 1)
    best = counts.argmax(1)
    owner = np.where(counts.max(1) * 8 >= patch * patch, best + 1, 0)  # 0: background
    table = np.zeros((4, len(scene.objects) + 1), np.int64)
    for i, obj in enumerate(scene.objects, 1):
        table[0, i] = world.SHAPES.index(obj.shape) + 1
        table[1, i] = list(world.COLORS).index(obj.color) + 1
        table[2, i] = list(world.SIZES).index(obj.size) + 1
    labels = table[:, owner]
    labels[3] = 0
    for obj in scene.objects:
        x, y = obj.center
        labels[3, min(int(y) // patch, n - 1) * n + min(int(x) // patch, n - 1)] = 1
    return labels
