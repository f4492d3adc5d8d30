"""Hard negatives for the ranker: the same prompt with one thing changed.

Colour, shape, count, relation, place, size or background swapped, so the ranker must
read every clause, not just the nouns. (The judge has its own, separate notion of a
wrong prompt: the ranker and the judge share no code.)
"""

from __future__ import annotations

import dataclasses
import random

from shapes_backend import world
from shapes_backend.scene import ObjectSpec, PromptSpec

_TRIES = 8  # draws of one kind of change before trying another
OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}


def hard_negative(spec: PromptSpec, rng: random.Random) -> PromptSpec | None:
    """A spec differing from `spec` in one named clause (None if nothing can change).
    It never names a held-out colour-shape pair: those stay out of all training data."""
    for change in rng.sample(_CHANGES, len(_CHANGES)):  # uniform over those that apply
        for _ in range(_TRIES):
            changed = change(spec, rng)
            if changed is None:
                break
            if not changed.uses_held_out_pair():
                return changed
    return None


def _with_object(spec: PromptSpec, index: int, **fields: object) -> PromptSpec:
    objects = list(spec.objects)
    objects[index] = dataclasses.replace(objects[index], **fields)
    return dataclasses.replace(spec, objects=tuple(objects))


def _colour(spec: PromptSpec, rng: random.Random) -> PromptSpec | None:
    named = [i for i, o in enumerate(spec.objects) if o.color]
    if not named:
        return None
    i = rng.choice(named)
    other = rng.choice([c for c in world.COLORS if c != spec.objects[i].color])
    return _with_object(spec, i, color=other)


def _shape(spec: PromptSpec, rng: random.Random) -> PromptSpec | None:
    i = rng.randrange(len(spec.objects)) if spec.objects else None
    if i is None:
        return None
    other = rng.choice([s for s in world.SHAPES if s != spec.objects[i].shape])
    return _with_object(spec, i, shape=other)


def _count(spec: PromptSpec, rng: random.Random) -> PromptSpec | None:
    if len(spec.objects) != 1:
        return None
    count = spec.objects[0].count
    other = rng.choice([n for n in range(1, world.MAX_OBJECTS + 1) if n != count])
    return _with_object(spec, 0, count=other)


def _swap_pair(spec: PromptSpec, rng: random.Random) -> PromptSpec | None:
    """The two objects' colours or sizes exchanged: the same words, bound differently."""
    if len(spec.objects) != 2:
        return None
    a, b = spec.objects
    if a.color and b.color and a.color != b.color:
        objects = (ObjectSpec(a.shape, b.color, a.size), ObjectSpec(b.shape, a.color, b.size))
    elif a.size and b.size and a.size != b.size:
        objects = (ObjectSpec(a.shape, a.color, b.size), ObjectSpec(b.shape, b.color, a.size))
    else:
        return None
    return dataclasses.replace(spec, objects=objects)


def _relation(spec: PromptSpec, rng: random.Random) -> PromptSpec | None:
    if spec.relation is None:
        return None
    other = (
        OPPOSITE[spec.relation.type]
        if rng.random() < 0.6
        else rng.choice([r for r in world.RELATIONS if r != spec.relation.type])
    )
    return dataclasses.replace(spec, relation=dataclasses.replace(spec.relation, type=other))


def _place(spec: PromptSpec, rng: random.Random) -> PromptSpec | None:
    if spec.place is None:
        return None
    return dataclasses.replace(spec, place=rng.choice([p for p in world.PLACES if p != spec.place]))


def _background(spec: PromptSpec, rng: random.Random) -> PromptSpec | None:
    if spec.background is None:
        return None
    other = rng.choice([b for b in world.BACKGROUNDS if b != spec.background])
    return dataclasses.replace(spec, background=other)


_CHANGES = (_colour, _shape, _count, _swap_pair, _relation, _place, _background)
