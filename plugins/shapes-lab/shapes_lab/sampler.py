"""Random scenes of every kind, seeded, that keep the held-out colour-shape pairs out.

`pairs` decides which colour-shape pairs may appear: "seen" (training: never a
held-out pair, named or not), "held_out" (every coloured object is a held-out pair;
kinds that name no colours are skipped), or "any".
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator, Sequence
from typing import Literal

from shapes_backend import world
from shapes_backend.scene import ObjectSpec, PromptSpec, RelationSpec, Scene, SceneObject

Pairs = Literal["seen", "held_out", "any"]
HELD_OUT_KINDS = ("single", "count", "colors", "relation", "size", "place")

P_BACKGROUND = 0.35  # captions that name the background
P_SINGLE_SIZE = 0.35  # single-object captions that name a size
P_RELATION_COLORS = 0.6  # relation captions that name colours
MARGIN = 2.0  # pixels by which a drawn scene clears each rule it must satisfy
LAYOUT_TRIES = 300
SIZE_TRIES = 30


class LayoutError(RuntimeError):
    """No layout satisfied the spec (should not happen for specs this module makes)."""


class SceneSampler:
    """Draws `PromptSpec`s and `Scene`s from a seeded random stream."""

    def __init__(
        self, seed: int, *, kinds: Sequence[str] = world.KINDS, pairs: Pairs = "seen"
    ) -> None:
        if pairs == "held_out":
            kinds = [k for k in kinds if k in HELD_OUT_KINDS]
        unknown = set(kinds) - set(world.KINDS)
        if unknown or not kinds:
            raise ValueError(f"unknown or no scene kinds: {sorted(unknown) or kinds}")
        self.rng = random.Random(seed)
        self.kinds = tuple(kinds)
        self.pairs: Pairs = pairs

    def __iter__(self) -> Iterator[Scene]:
        while True:
            yield self.scene()

    def scene(self, kind: str | None = None) -> Scene:
        """A captioned scene of `kind` (or of a kind drawn uniformly)."""
        from shapes_lab.captions import write_caption

        spec = self.spec(kind)
        return dataclasses.replace(self.realise(spec), caption=write_caption(spec, self.rng))

    # -- specs: what a caption names -------------------------------------------

    def spec(self, kind: str | None = None) -> PromptSpec:
        kind = kind or self.rng.choice(self.kinds)
        rng = self.rng
        background = rng.choice(list(world.BACKGROUNDS)) if rng.random() < P_BACKGROUND else None
        if kind == "single":
            size = rng.choice(list(world.SIZES)) if rng.random() < P_SINGLE_SIZE else None
            objects = (self._coloured(size=size),)
        elif kind == "count":
            shape, color = self._pair()
            objects = (ObjectSpec(shape, color, count=rng.randint(2, world.MAX_OBJECTS)),)
        elif kind == "two":
            objects = tuple(ObjectSpec(s) for s in rng.sample(world.SHAPES, 2))
        elif kind == "colors":
            objects = self._two_coloured()
        elif kind == "relation":
            if self.pairs == "held_out" or rng.random() < P_RELATION_COLORS:
                objects = self._two_coloured()
            else:
                objects = tuple(ObjectSpec(s) for s in rng.sample(world.SHAPES, 2))
            relation = RelationSpec(0, 1, rng.choice(world.RELATIONS))
            return PromptSpec(objects, background, relation=relation, kind=kind)
        elif kind == "size":
            sizes = rng.sample(list(world.SIZES), 2)
            a, b = self._two_coloured()
            objects = (
                ObjectSpec(a.shape, a.color, sizes[0]),
                ObjectSpec(b.shape, b.color, sizes[1]),
            )
        elif kind == "place":
            return PromptSpec(
                (self._coloured(),), background, place=rng.choice(world.PLACES), kind=kind
            )
        else:
            raise ValueError(f"unknown scene kind {kind!r}")
        return PromptSpec(objects, background, kind=kind)

    def _allowed(self, color: str, shape: str) -> bool:
        held_out = (color, shape) in world.HELD_OUT
        return {"seen": not held_out, "held_out": held_out, "any": True}[self.pairs]

    def _pair(self, avoid: tuple[str, str] | None = None) -> tuple[str, str]:
        """A (shape, colour) allowed by `pairs`; with `avoid`, of another colour."""
        while True:
            shape, color = self.rng.choice(world.SHAPES), self.rng.choice(list(world.COLORS))
            if self._allowed(color, shape) and (avoid is None or color != avoid[1]):
                return shape, color

    def _coloured(self, size: str | None = None) -> ObjectSpec:
        shape, color = self._pair()
        return ObjectSpec(shape, color, size)

    def _two_coloured(self) -> tuple[ObjectSpec, ObjectSpec]:
        first = self._pair()
        second = self._pair(avoid=first)
        return ObjectSpec(*first), ObjectSpec(*second)

    # -- scenes: everything chosen, laid out ------------------------------------

    def realise(self, spec: PromptSpec) -> Scene:
        """A scene that satisfies `spec`, every free attribute drawn at random."""
        rng = self.rng
        background = spec.background or rng.choice(list(world.BACKGROUNDS))
        wanted = [o for o in spec.objects for _ in range(o.count)]
        colors = [o.color or self._free_color(o.shape) for o in wanted]
        for _ in range(SIZE_TRIES):
            sides = [self._side(o.size, len(wanted)) for o in wanted]
            boxes = self._layout(spec, sides)
            if boxes is not None:
                objects = tuple(
                    SceneObject(o.shape, c, s, x, y)
                    for o, c, s, (x, y) in zip(wanted, colors, sides, boxes, strict=True)
                )
                return Scene(spec.kind or "", background, objects, spec)
        raise LayoutError(f"no layout found for {spec}")

    def _free_color(self, shape: str) -> str:
        while True:
            color = self.rng.choice(list(world.COLORS))
            if self.pairs == "any" or (color, shape) not in world.HELD_OUT:
                return color

    def _side(self, size: str | None, n_objects: int) -> int:
        if size is None:  # three or four large objects can't fit: leave large out
            size = self.rng.choice(["small", "medium"] if n_objects > 2 else list(world.SIZES))
        low, high = world.SIZES[size]
        return self.rng.randint(low, high)

    def _layout(self, spec: PromptSpec, sides: list[int]) -> list[tuple[int, int]] | None:
        """Top-left corners for boxes of `sides`, apart, inside, obeying place/relation."""
        for _ in range(LAYOUT_TRIES):
            boxes: list[tuple[int, int]] = []
            for side in sides:
                corner = self._corner(side, spec.place)
                if corner is None or not all(
                    _apart(corner, side, b, s)
                    for b, s in zip(boxes, sides[: len(boxes)], strict=True)
                ):
                    break
                boxes.append(corner)
            else:
                if spec.relation is None or _relation_clear(spec.relation.type, boxes, sides):
                    return boxes
        return None

    def _corner(self, side: int, place: str | None) -> tuple[int, int] | None:
        low, high = 0, world.CANVAS - side
        if place is None:
            return self.rng.randint(low, high), self.rng.randint(low, high)
        row, column = divmod(world.PLACES.index(place), 3)
        x = self._in_cell(column, side)
        y = self._in_cell(row, side)
        return None if x is None or y is None else (x, y)

    def _in_cell(self, cell: int, side: int) -> int | None:
        """A box corner whose centre lies in grid cell `cell`, MARGIN inside its edges."""
        third = world.CANVAS / 3
        first = max(0, _ceil(cell * third + MARGIN - side / 2))
        last = min(world.CANVAS - side, _floor((cell + 1) * third - MARGIN - side / 2))
        return self.rng.randint(first, last) if first <= last else None


def _apart(a: tuple[int, int], side_a: int, b: tuple[int, int], side_b: int) -> bool:
    """Boxes at least MIN_GAP pixels apart along some axis."""
    gap = world.MIN_GAP
    return (
        a[0] + side_a + gap <= b[0]
        or b[0] + side_b + gap <= a[0]
        or a[1] + side_a + gap <= b[1]
        or b[1] + side_b + gap <= a[1]
    )


def _relation_clear(relation: str, boxes: list[tuple[int, int]], sides: list[int]) -> bool:
    """The relation holds with MARGIN to spare, so measured centres agree with it too."""
    (ax, ay), (bx, by) = boxes[0], boxes[1]
    sa, sb = sides[0], sides[1]
    a, b = (ax + sa / 2, ay + sa / 2), (bx + sb / 2, by + sb / 2)
    return world.relation_holds(a, b, sa, sb, relation, margin=MARGIN)


def _ceil(x: float) -> int:
    return int(-(-x // 1))


def _floor(x: float) -> int:
    return int(x // 1)
