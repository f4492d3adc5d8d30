"""SwarmUI: JSON in `parameters`, settings under "sui_image_params" (lower-case names, no
separators: "negativeprompt", "cfgscale"), model files in "sui_models"."""

from __future__ import annotations

from typing import Any

from studio.interop.found import Found

FIELDS = {
    "prompt": "prompt",
    "negativeprompt": "negative_prompt",
    "seed": "seed",
    "steps": "steps",
    "cfgscale": "guidance",
    "width": "width",
    "height": "height",
    "model": "model",
    "sampler": "sampler",
}
EXTRA = {"scheduler": "Scheduler", "swarm_version": "Version", "aspectratio": "Aspect ratio"}


def matches(data: dict[str, Any]) -> bool:
    return isinstance(data.get("sui_image_params"), dict)


def from_json(data: dict[str, Any]) -> Found:
    params = data["sui_image_params"]
    found = Found("swarmui")
    for key, name in FIELDS.items():
        found.put(name, params.get(key))
    for key, label in EXTRA.items():
        found.put_extra(label, params.get(key))
    return found
