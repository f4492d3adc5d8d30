"""Fooocus: with its own metadata scheme, JSON in `parameters` (and "fooocus" in a
`fooocus_scheme` chunk): snake_case keys, the seed as text, the size as "(1152, 896)"."""

from __future__ import annotations

import re
from typing import Any

from studio.interop.found import Found

FIELDS = {
    "prompt": "prompt",
    "negative_prompt": "negative_prompt",
    "seed": "seed",
    "steps": "steps",
    "guidance_scale": "guidance",
    "base_model": "model",
    "base_model_hash": "model_hash",
    "sampler": "sampler",
}
EXTRA = {
    "scheduler": "Scheduler",
    "performance": "Performance",
    "styles": "Styles",
    "refiner_model": "Refiner",
    "version": "Version",
}
_RESOLUTION = re.compile(r"\(\s*(-?\d{1,40})\s*,\s*(-?\d{1,40})\s*\)")


def matches(data: dict[str, Any]) -> bool:
    return "guidance_scale" in data and ("base_model" in data or "resolution" in data)


def from_json(data: dict[str, Any]) -> Found:
    found = Found("fooocus")
    for key, name in FIELDS.items():
        found.put(name, data.get(key))
    for key, label in EXTRA.items():
        found.put_extra(label, data.get(key))
    resolution = data.get("resolution")
    match = _RESOLUTION.fullmatch(resolution.strip()) if isinstance(resolution, str) else None
    if match:
        found.put("width", match.group(1))
        found.put("height", match.group(2))
    elif resolution is not None:
        found.notes.append(f"resolution {str(resolution)[:40]!r} is not a size: left out")
    return found
