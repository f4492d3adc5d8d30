"""AUTOMATIC1111's `parameters` text (and the many tools that write its layout: Forge,
SD.Next, Fooocus's A1111 scheme, ComfyUI Image Saver, Civitai): prompt lines, a
"Negative prompt:" line, a `Key: value, …` settings line.

The text's syntax is the core's (`parse_parameters`, which Studio's own files use too);
this maps its settings onto fields by name in any case ("CFG Scale" as well as "CFG
scale") and leaves values to be checked, so that "Steps: 20.5" is a note, not a setting.
"""

from __future__ import annotations

import re

from studio.core.metadata import parse_parameters
from studio.interop.found import Found

SETTINGS = {
    "steps": "steps",
    "sampler": "sampler",
    "cfg scale": "guidance",
    "seed": "seed",
    "model": "model",
    "model hash": "model_hash",
}
TYPED = ("seed", "steps", "guidance", "width", "height")
_SIZE = re.compile(r"\s*(-?\w{1,40}?)\s*x\s*(-?\w{1,40})\s*")


def from_text(text: str, *, whole_text_is_prompt: bool = True) -> Found | None:
    """The fields of an A1111 text. Without a settings line the text is all prompt, or
    with `whole_text_is_prompt` False (a JPEG comment: any text can be there) not ours."""
    parsed = parse_parameters(text)
    found = Found("parameters")
    for name in TYPED:
        found.put(name, getattr(parsed, name))
    for name in ("model", "model_hash", "sampler"):
        found.put(name, getattr(parsed, name) or None)
    for key, value in parsed.extra.items():
        name = SETTINGS.get(key.strip().lower())
        if key.strip().lower() == "size":
            _put_size(found, value)
        elif name is not None and name not in found.fields:
            found.put(name, value)  # as written: checked later, with a note if wrong
        else:
            found.extra[key] = value
    if not found.fields and not found.extra and not whole_text_is_prompt:
        return None
    found.put("prompt", parsed.prompt)
    found.put("negative_prompt", parsed.negative_prompt)
    return found


def _put_size(found: Found, value: str) -> None:
    match = _SIZE.fullmatch(value)
    if match is None:
        found.notes.append(f"size {value[:40]!r} is not a plausible value: left out")
        return
    found.put("width", match.group(1))
    found.put("height", match.group(2))
