"""GenEval-style rules: does a set of detections satisfy a prompt's spec?

Strict: the named background matches; the number of objects equals the spec's (junk
counts as an extra object); some one-to-one assignment of objects to the named ones
matches every named shape, colour and size, and makes the relation and place hold.
"""

from __future__ import annotations

from itertools import permutations

import numpy as np
from scipy.optimize import linear_sum_assignment

from shapes_backend import world
from shapes_backend.scene import ObjectSpec, PromptSpec
from shapes_lab.judge.detections import Detection, Detections

MIN_BACKGROUND_FRACTION = 0.4  # two large squares still leave > 60 % plain background
MAX_PERMUTED = 6  # up to this many objects every assignment is tried (6! = 720)


def failures(detections: Detections, spec: PromptSpec, margin: float = 0.0) -> list[str]:
    """The spec's clauses the detections break, as readable reasons; [] means it passes.

    `margin` (pixels) makes place and relation stricter when positive and more lenient
    when negative; the judge uses 0, the exact rule."""
    reasons = []
    if detections.background_fraction < MIN_BACKGROUND_FRACTION:
        share = round(100 * detections.background_fraction)
        reasons.append(f"no clear background: only {share}% of pixels are a background colour")
    if spec.background is not None and detections.background != spec.background:
        reasons.append(f"background is {detections.background}, expected {spec.background}")
    wanted = [(index, o) for index, o in enumerate(spec.objects) for _ in range(o.count)]
    found = detections.objects
    if len(found) == len(wanted):
        geometry = _best_assignment(found, wanted, spec, margin)
        if geometry is not None:
            return reasons + geometry
    return reasons + _mismatch(found, wanted)


def matches(detection: Detection, wanted: ObjectSpec) -> bool:
    """Shape, and colour and size where named, agree."""
    return (
        detection.shape == wanted.shape
        and (wanted.color is None or detection.color == wanted.color)
        and (wanted.size is None or detection.size == wanted.size)
    )


def _best_assignment(
    found: tuple[Detection, ...],
    wanted: list[tuple[int, ObjectSpec]],
    spec: PromptSpec,
    margin: float,
) -> list[str] | None:
    """Geometry failures of the best attribute-matching assignment ([] when one passes),
    or None when no assignment matches every object's attributes."""
    if len(wanted) > MAX_PERMUTED:
        order = _matching(found, wanted)
        orders = [order] if len(order) == len(wanted) else []
    else:
        orders = permutations(range(len(found)))
    first: list[str] | None = None
    for order in orders:
        if all(matches(found[d], w) for d, (_, w) in zip(order, wanted, strict=True)):
            reasons = _geometry([found[d] for d in order], wanted, spec, margin)
            if not reasons:
                return []
            first = first if first is not None else reasons
    return first


def _geometry(
    assigned: list[Detection], wanted: list[tuple[int, ObjectSpec]], spec: PromptSpec, margin: float
) -> list[str]:
    reasons = []
    if spec.relation is not None:
        first_of = {}
        for detection, (index, _) in zip(assigned, wanted, strict=True):
            first_of.setdefault(index, detection)
        a, b = first_of.get(spec.relation.a), first_of.get(spec.relation.b)
        if a is not None and b is not None:
            reasons += _relation_failure(a, b, spec.relation.type, margin)
    if spec.place is not None and assigned:
        center = assigned[0].center
        if not place_holds(center, spec.place, margin):
            actual = world.place_of(*center)
            reasons.append(f"place '{spec.place}' does not hold: the object is at '{actual}'")
    return reasons


def _relation_failure(a: Detection, b: Detection, relation: str, margin: float) -> list[str]:
    if world.relation_holds(a.center, b.center, a.size_px, b.size_px, relation, margin):
        return []
    seen = [
        r
        for r in world.RELATIONS
        if world.relation_holds(a.center, b.center, a.size_px, b.size_px, r)
    ]
    actual = f"{a.describe()} is {seen[0]} {b.describe()}" if seen else "no relation holds"
    return [f"relation '{relation}' does not hold ({actual})"]


def place_holds(center: tuple[float, float], place: str, margin: float = 0.0) -> bool:
    """The centre lies in the place's grid cell, `margin` pixels inside its edges
    (outside them, when negative); margin 0 is exactly `world.place_of`."""
    if margin == 0:
        return world.place_of(*center) == place
    third = world.CANVAS / 3
    row, column = divmod(world.PLACES.index(place), 3)
    return all(
        cell * third + margin <= value < (cell + 1) * third - margin
        for cell, value in ((column, center[0]), (row, center[1]))
    )


def _matching(found: tuple[Detection, ...], wanted: list[tuple[int, ObjectSpec]]) -> list[int]:
    """A maximum one-to-one matching of wanted objects to detections (by attributes):
    for each wanted object in order, its detection's index, or -1 when unmatched."""
    if not found or not wanted:
        return [-1] * len(wanted)
    cost = np.array([[0.0 if matches(d, w) else 1.0 for d in found] for _, w in wanted])
    rows, columns = linear_sum_assignment(cost)
    order = [-1] * len(wanted)
    for r, c in zip(rows, columns, strict=True):
        if cost[r, c] == 0:
            order[r] = int(c)
    return order


def _mismatch(found: tuple[Detection, ...], wanted: list[tuple[int, ObjectSpec]]) -> list[str]:
    """Missing objects per named object, then every detection left over as extra."""
    order = _matching(found, wanted)
    reasons = []
    named = {index: spec_object for index, spec_object in wanted}
    for index, spec_object in named.items():
        got = sum(1 for o, (i, _) in zip(order, wanted, strict=True) if i == index and o >= 0)
        if got < spec_object.count:
            reasons.append(f"expected {spec_object.count} {describe(spec_object)}, found {got}")
    used = set(order)
    reasons += [f"extra object: {d.describe()}" for i, d in enumerate(found) if i not in used]
    return reasons


def describe(spec_object: ObjectSpec) -> str:
    """ "small yellow hearts" / "red circle": the words of a named object."""
    noun = spec_object.shape + ("s" if spec_object.count != 1 else "")
    return " ".join(w for w in (spec_object.size, spec_object.color, noun) if w)
