"""Reading JSON values out of untrusted metadata: parse without raising, take numbers only
when they are numbers (a bool is not one, an int too big for a float is not a float).

Other tools' formats are read by `studio.interop`, above the core.
"""

from __future__ import annotations

import json
import math
from typing import Any


def load_json(text: str | None) -> Any:
    """The parsed JSON, or None for anything that isn't (deep nesting included)."""
    if not text:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def as_float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        value = float(value)
    except OverflowError:  # an int too big for a float
        return None
    return value if math.isfinite(value) else None
