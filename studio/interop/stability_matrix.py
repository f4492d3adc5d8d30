"""Stability Matrix: beside its A1111 `parameters` text, a `parameters-json` chunk with its
GenerationParameters as .NET writes them (PascalCase: "PositivePrompt", "CfgScale"; the
seed an unsigned 64-bit number), and the project in `smproj`."""

from __future__ import annotations

from typing import Any

from studio.core.metadata_formats import load_json
from studio.interop.entries import Entries
from studio.interop.found import Found

FIELDS = {
    "PositivePrompt": "prompt",
    "NegativePrompt": "negative_prompt",
    "Seed": "seed",
    "Steps": "steps",
    "CfgScale": "guidance",
    "Width": "width",
    "Height": "height",
    "ModelName": "model",
    "ModelHash": "model_hash",
    "Sampler": "sampler",
}


def read(entries: Entries) -> list[Found]:
    data = load_json(entries.get("parameters-json"))
    return [from_json(data)] if isinstance(data, dict) and matches(data) else []


def matches(data: dict[str, Any]) -> bool:
    return "PositivePrompt" in data or "CfgScale" in data


def from_json(data: dict[str, Any]) -> Found:
    found = Found("stability-matrix")
    for key, name in FIELDS.items():
        found.put(name, data.get(key))
    found.put_extra("Scheduler", data.get("Scheduler"))
    return found
