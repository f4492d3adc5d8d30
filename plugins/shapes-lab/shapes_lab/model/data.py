"""Training batches streamed from the scene generator, reproducible across resumes."""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from shapes_backend import world
from shapes_backend.model.bundle import Tokenizers
from shapes_backend.model.image_tokens import EMPTY
from shapes_backend.scene import Scene
from shapes_lab.captions import write_caption
from shapes_lab.model.negatives import hard_negative
from shapes_lab.render import render_array, render_with_objects
from shapes_lab.sampler import LayoutError, SceneSampler

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
    their tokens with one of the transformer's typical mistakes (`near_miss`). `labels`
    adds what covers each patch (`patch_labels`)."""

    def __init__(
        self,
        tokenizers: Tokenizers,
        batch: int,
        seed: int,
        start_step: int = 0,
        negatives: int = 0,
        twins: int = 0,
        labels: bool = False,
    ) -> None:
        self.tokenizers, self.batch, self.seed = tokenizers, batch, seed
        self.negatives, self.twins, self.labels = negatives, twins, labels
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
        return [
            (scene, [self._negative(scene.spec) for _ in range(self.negatives)]) for scene in group
        ]

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
        if self.negatives:
            return self._ranker_batch(
                text, [scene for scene, _ in drawn], [captions for _, captions in drawn]
            )
        image_tokens = self.tokenizers.image
        images = [render_array(scene) for scene, _ in drawn]
        encoded = [image_tokens.encode(image) for image in images]
        backgrounds = torch.tensor([b for b, _ in encoded])
        patches = torch.from_numpy(np.stack([t for _, t in encoded]))
        return Batch(text, backgrounds=backgrounds, patches=patches)

    def _ranker_batch(
        self, text: torch.Tensor, scenes: list[Scene], negatives: list[list[str]]
    ) -> Batch:
        image_tokens, patch = self.tokenizers.image, self.tokenizers.image.patch_h
        images, owners, labels = [], [], []
        for scene in scenes:
            image, objects = render_with_objects(scene)
            images.append(image)
            owners.append(patch_owners(objects, len(scene.objects), patch, least=0.0))
            if self.labels:  # on the tokenizer's grid, which the ranker's patches follow
                labelled = patch_owners(objects, len(scene.objects), patch, least=1 / 8)
                labels.append(patch_labels(scene, labelled, patch))
        near_misses, rng = [], random.Random(self.seed * 1_000_003 + self.step)  # resumable
        for i in range(len(images) // 2):  # the ranker judges tokenizer output too
            background, tokens = image_tokens.encode(images[i])
            images[i] = image_tokens.decode(background, tokens)
            near_misses.append(image_tokens.decode(background, near_miss(tokens, owners[i], rng)))
        text_of = self.tokenizers.text.encode
        return Batch(
            text,
            images=torch.from_numpy(np.stack(images)),
            negatives=torch.from_numpy(np.stack([[text_of(c).ids for c in n] for n in negatives])),
            near_misses=torch.from_numpy(np.stack(near_misses)),
            labels=torch.from_numpy(np.stack(labels)) if labels else None,
        )


TokenBatch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # text, backgrounds, patches


def transformer_batches(
    tokenizers: Tokenizers, batch: int, seed: int, start_step: int = 0, workers: int = 0
) -> Iterator[TokenBatch]:
    """The transformer's batches, endlessly. With `workers` processes each renders its own
    stream (seeded `seed * 1009 + worker`) and the batches come round-robin, for a trainer
    faster than one core renders; with none, `CaptionedBatches` runs in this process."""
    if workers == 0:
        yield from _WorkerStream(tokenizers, batch, seed, start_step)
        return
    loader = torch.utils.data.DataLoader(
        _WorkerStream(tokenizers, batch, seed, start_step),
        batch_size=None,
        num_workers=workers,
        prefetch_factor=4,
        pin_memory=torch.cuda.is_available(),
    )
    yield from loader


class _WorkerStream(torch.utils.data.IterableDataset):
    def __init__(self, tokenizers: Tokenizers, batch: int, seed: int, start_step: int) -> None:
        self.tokenizers, self.batch = tokenizers, batch
        self.seed, self.start_step = seed, start_step

    def __iter__(self) -> Iterator[TokenBatch]:
        info = torch.utils.data.get_worker_info()
        seed, start = self.seed, self.start_step
        if info is not None:
            seed, start = seed * 1009 + info.id, start // info.num_workers
            torch.set_num_threads(1)
        batches = CaptionedBatches(self.tokenizers, self.batch, seed, start_step=start)
        while True:
            drawn = batches.next()
            yield drawn.text, drawn.backgrounds, drawn.patches


def near_miss(tokens: np.ndarray, owners: np.ndarray, rng: random.Random) -> np.ndarray:
    """The image tokens (a square grid) with one of the transformer's typical mistakes:
    an object drawn twice, an object cut off by the edge, a stray fragment (a copy of
    one patch in an empty place) or a hole (a patch emptied). `owners` names the object
    covering each patch (`patch_owners`), 0 for none."""
    n = math.isqrt(len(tokens))
    grid, owned = tokens.reshape(n, n), owners.reshape(n, n)
    mistakes = [_fragment, _hole] + ([_duplicate, _cut_off] if owners.any() else [])
    for mistake in rng.sample(mistakes, len(mistakes)):
        broken = mistake(grid, owned, rng)
        if broken is not None:
            return broken.reshape(-1)
    return tokens.copy()


def _fragment(grid: np.ndarray, owned: np.ndarray, rng: random.Random) -> np.ndarray | None:
    filled, empty = np.argwhere(grid != EMPTY), np.argwhere(grid == EMPTY)
    if not len(filled) or not len(empty):
        return None
    broken = grid.copy()
    broken[tuple(rng.choice(empty))] = grid[tuple(rng.choice(filled))]
    return broken


def _hole(grid: np.ndarray, owned: np.ndarray, rng: random.Random) -> np.ndarray | None:
    filled = np.argwhere(grid != EMPTY)
    if not len(filled):
        return None
    broken = grid.copy()
    broken[tuple(rng.choice(filled))] = EMPTY
    return broken


def _object_patches(owned: np.ndarray, rng: random.Random) -> np.ndarray:
    return np.argwhere(owned == rng.choice(sorted(set(owned[owned > 0].tolist()))))


def _duplicate(grid: np.ndarray, owned: np.ndarray, rng: random.Random) -> np.ndarray | None:
    """A copy of one object's patches where they land on empty patches only."""
    cells, n = _object_patches(owned, rng), len(grid)
    low, high = cells.min(0), cells.max(0)
    for _ in range(12):
        shift = np.array([rng.randrange(-low[0], n - high[0]), rng.randrange(-low[1], n - high[1])])
        target = cells + shift
        if shift.any() and (grid[tuple(target.T)] == EMPTY).all():
            broken = grid.copy()
            broken[tuple(target.T)] = grid[tuple(cells.T)]
            return broken
    return None


def _cut_off(grid: np.ndarray, owned: np.ndarray, rng: random.Random) -> np.ndarray | None:
    """One object moved towards an edge until a part of it is past the edge."""
    cells, n = _object_patches(owned, rng), len(grid)
    extent = cells.max(0) - cells.min(0) + 1
    if extent.max() < 2:
        return None  # too small to show a cut
    axis, toward_end = rng.randrange(2), rng.random() < 0.5
    past = max(1, extent[axis] // 2)  # patches beyond the edge
    shift = np.zeros(2, np.int64)
    shift[axis] = (
        (n - 1 - cells[:, axis].max() + past) if toward_end else -(cells[:, axis].min() + past)
    )
    broken = grid.copy()
    broken[tuple(cells.T)] = EMPTY
    target = cells + shift
    inside = ((target >= 0) & (target < n)).all(1)
    broken[tuple(target[inside].T)] = grid[tuple(cells[inside].T)]
    return broken


def patch_owners(objects: np.ndarray, n_objects: int, patch: int, least: float) -> np.ndarray:
    """Which object covers the most of each patch, if at least the share `least` of it
    (0: any pixel): its index in the scene plus one (0 for none), from the object map
    `render_with_objects` gives."""
    n = world.CANVAS // patch
    blocks = objects.reshape(n, patch, n, patch).transpose(0, 2, 1, 3).reshape(n * n, -1)
    counts = np.stack([(blocks == i).sum(1) for i in range(n_objects + 1)], 1)
    counts[:, 0] = 0
    covered = counts.max(1)
    return np.where((covered > 0) & (covered >= least * patch * patch), counts.argmax(1), 0)


def patch_labels(scene: Scene, owners: np.ndarray, patch: int) -> np.ndarray:
    """(4, patches) labels: the shape, colour and size of the object covering each patch
    (`patch_owners`, at least an eighth of it; each 0 for none, else its index + 1) and 1
    where an object's centre lies."""
    n = world.CANVAS // patch
    table = np.zeros((4, len(scene.objects) + 1), np.int64)
    for i, obj in enumerate(scene.objects, 1):
        table[0, i] = world.SHAPES.index(obj.shape) + 1
        table[1, i] = list(world.COLORS).index(obj.color) + 1
        table[2, i] = list(world.SIZES).index(obj.size) + 1
    labels = table[:, owners]
    labels[3] = 0
    for obj in scene.objects:
        x, y = obj.center
        labels[3, min(int(y) // patch, n - 1) * n + min(int(x) // patch, n - 1)] = 1
    return labels
