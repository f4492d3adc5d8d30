"""InvokeAI 2 (and its "dream" scripts before it): an `sd-metadata` chunk of JSON (the
image's settings under "image", or "images" for a grid) and a `Dream` chunk holding the
command line that made the image: "a fox [blurry]" -s 50 -S 42 -W 512 -H 512 -C 7.5 -A k_lms.
The negative prompt is the prompt's [bracketed] parts.
"""

from __future__ import annotations

import re
from typing import Any

from studio.core.metadata_formats import load_json
from studio.interop.entries import Entries
from studio.interop.found import Found

SWITCHES = {
    "-s": "steps",
    "--steps": "steps",
    "-S": "seed",
    "--seed": "seed",
    "-W": "width",
    "--width": "width",
    "-H": "height",
    "--height": "height",
    "-C": "guidance",
    "--cfg_scale": "guidance",
    "-A": "sampler",
    "--sampler": "sampler",
}
IMAGE_FIELDS = {
    "seed": "seed",
    "steps": "steps",
    "cfg_scale": "guidance",
    "width": "width",
    "height": "height",
    "sampler": "sampler",
}
_NEGATIVE = re.compile(r"\s*\[([^\[\]]*)\]")


def read(entries: Entries) -> list[Found]:
    found = []
    metadata = load_json(entries.get("sd-metadata"))
    if isinstance(metadata, dict):
        found.append(from_metadata(metadata))
    dream = entries.get("Dream")
    if dream is not None and dream.lstrip().startswith('"'):
        found.append(from_dream(dream))
    return found


def from_metadata(data: dict[str, Any]) -> Found:
    found = Found("invokeai")
    image = data.get("image")
    if image is None and isinstance(data.get("images"), list) and data["images"]:
        image = data["images"][0]
    image = image if isinstance(image, dict) else {}
    for key, name in IMAGE_FIELDS.items():
        found.put(name, image.get(key))
    prompt = image.get("prompt")
    if isinstance(prompt, list):  # [{"prompt": text, "weight": w}, …]: weighted parts
        parts = [p.get("prompt") for p in prompt if isinstance(p, dict)]
        prompt = " ".join(p for p in parts if isinstance(p, str)) if parts else None
    if isinstance(prompt, str):
        _put_prompts(found, prompt)
    found.put("model", data.get("model_weights"))
    found.put("model_hash", data.get("model_hash"))
    if isinstance(data.get("app_version"), str):
        found.extra["Version"] = f"InvokeAI {data['app_version']}"
    return found


def from_dream(text: str) -> Found:
    found = Found("invokeai")
    text = text.strip()
    end = text.rfind('"')
    _put_prompts(found, text[1:end] if end > 0 else text[1:])
    words = text[end + 1 :].split() if end > 0 else []
    for switch, value in zip(words, [*words[1:], ""], strict=False):
        name = SWITCHES.get(switch)
        if name is not None and name not in found.fields:
            found.put(name, value)
    return found


def _put_prompts(found: Found, prompt: str) -> None:
    negatives = _NEGATIVE.findall(prompt)
    found.put("prompt", _NEGATIVE.sub("", prompt).strip())
    found.put("negative_prompt", " ".join(n.strip() for n in negatives))
