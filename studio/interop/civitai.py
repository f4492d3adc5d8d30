"""Civitai's generation metadata as JSON: camelCase keys ("negativePrompt", "cfgScale"),
the size as "Size": "832x1216"; on-site generations keep it, as text, under
"extraMetadata" beside the ComfyUI graph that ran."""

from __future__ import annotations

from typing import Any

from studio.core.metadata_formats import load_json
from studio.interop.found import Found, first_of

FIELDS = {
    "prompt": ("prompt",),
    "negative_prompt": ("negativePrompt",),
    "seed": ("seed",),
    "steps": ("steps",),
    "guidance": ("cfgScale",),
    "width": ("width",),
    "height": ("height",),
    "model": ("Model", "model"),
    "model_hash": ("Model hash",),
    "sampler": ("sampler",),
}


def matches(data: dict[str, Any]) -> bool:
    return "negativePrompt" in data or "cfgScale" in data or _extra(data) is not None


def from_json(data: dict[str, Any]) -> Found:
    meta = _extra(data) or data
    found = Found("civitai")
    for name, keys in FIELDS.items():
        value = first_of(meta, *keys)
        if name == "model" and isinstance(value, dict):  # {"name": …, "hash": …}
            value = value.get("name")
        found.put(name, value)
    size = meta.get("Size")
    if isinstance(size, str) and "x" in size and "width" not in found.fields:
        width, _, height = size.partition("x")
        found.put("width", width)
        found.put("height", height)
    found.put_extra("Workflow", meta.get("workflowId") or meta.get("workflow"))
    return found


def _extra(data: dict[str, Any]) -> dict[str, Any] | None:
    extra = data.get("extraMetadata")
    extra = load_json(extra) if isinstance(extra, str) else extra
    return extra if isinstance(extra, dict) else None
