"""InvokeAI 3 and later: JSON in an `invokeai_metadata` chunk. InvokeAI calls its samplers
schedulers ("dpmpp_2m_k"); 4.x names the model {"name", "hash", …}, 3.x {"model_name", …}."""

from __future__ import annotations

from studio.core.metadata_formats import load_json
from studio.interop.entries import Entries
from studio.interop.found import Found

FIELDS = {
    "positive_prompt": "prompt",
    "negative_prompt": "negative_prompt",
    "seed": "seed",
    "steps": "steps",
    "cfg_scale": "guidance",
    "width": "width",
    "height": "height",
    "scheduler": "sampler",
}


def read(entries: Entries) -> list[Found]:
    data = load_json(entries.get("invokeai_metadata"))
    if not isinstance(data, dict) or not FIELDS.keys() & data.keys():
        return []
    found = Found("invokeai")
    for key, name in FIELDS.items():
        found.put(name, data.get(key))
    model = data.get("model")
    if isinstance(model, dict):
        found.put("model", model.get("name", model.get("model_name")))
        found.put("model_hash", model.get("hash"))
    else:
        found.put("model", model)
    if isinstance(data.get("app_version"), str):
        found.extra["Version"] = f"InvokeAI {data['app_version']}"
    return [found]
