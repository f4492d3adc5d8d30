"""Checking what readers found: implausible values become missing, with a note saying so.

Files are untrusted and writers have bugs: a step count of 10^24, a seed of -5, a size
of 0 x 0 or `"width": true` are shown as missing, never as read. Numbers may be JSON
numbers or decimal text (A1111's settings line, Fooocus's seeds); booleans never count.
"""

from __future__ import annotations

import math
from typing import Any

from studio.core.metadata import ParsedMetadata
from studio.interop.found import NUMBER_FIELDS, TEXT_FIELDS, Found

MAX_SEED = 2**64 - 1  # other tools write 64-bit seeds
MAX_STEPS = 10_000
MAX_GUIDANCE = 100.0
MAX_SIDE = 65_536
MAX_NUMBER_TEXT = 40  # characters of a number written as text
SHOWN = 40  # characters of a refused value quoted in its note

# field -> (lowest, highest, whole numbers only)
_RANGES: dict[str, tuple[float, float, bool]] = {
    "seed": (0, MAX_SEED, True),
    "steps": (1, MAX_STEPS, True),
    "guidance": (0.0, MAX_GUIDANCE, False),
    "width": (1, MAX_SIDE, True),
    "height": (1, MAX_SIDE, True),
}
_LABELS = {"negative_prompt": "negative prompt", "model_hash": "model hash"}


def checked(found: Found) -> ParsedMetadata:
    """`found` as `ParsedMetadata`: each value of the right kind and plausible, or left out."""
    result = ParsedMetadata(found.source_format, extra=dict(found.extra))
    notes = list(found.notes)
    for name, value in found.fields.items():
        if name in TEXT_FIELDS:
            if isinstance(value, str):
                setattr(result, name, value)
            else:
                notes.append(_refused(name, value, "is not text"))
        elif name in NUMBER_FIELDS:
            number = _number(name, value)
            if number is None:
                notes.append(_refused(name, value, "is not a plausible value"))
            else:
                setattr(result, name, number)
    result.notes = notes
    return result


def _number(name: str, value: Any) -> int | float | None:
    """`value` as a number in the field's range, or None."""
    low, high, whole = _RANGES[name]
    if isinstance(value, str):
        value = _parse(value.strip(), whole)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float):
        if not math.isfinite(value) or (whole and not value.is_integer()):
            return None
        value = int(value) if whole else value
    if not low <= value <= high:  # compared before any conversion: ints may be huge
        return None
    return value if whole else float(value)


def _parse(text: str, whole: bool) -> int | float | None:
    if not text or len(text) > MAX_NUMBER_TEXT:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return None
    return value if not whole or value.is_integer() else None


def _refused(name: str, value: Any, why: str) -> str:
    shown = repr(value) if not isinstance(value, str) else repr(value[:SHOWN])
    shown = shown if len(shown) <= SHOWN + 2 else shown[:SHOWN] + "…"
    return f"{_LABELS.get(name, name)} {shown} {why}: left out"
