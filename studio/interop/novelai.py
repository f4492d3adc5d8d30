"""NovelAI: PNG text chunks "Software" ("NovelAI"), "Source" (the model), "Description"
(the prompt) and "Comment" (JSON settings: "uc" is the negative prompt, "scale" the
guidance; V4 files keep the prompts under "v4_prompt"/"v4_negative_prompt" too). The
same chunks, as one JSON object, are what NovelAI hides in the alpha channel, and some
files carry the Comment's JSON alone in `parameters`.
"""

from __future__ import annotations

from typing import Any

from studio.core.metadata_formats import load_json
from studio.interop.entries import Entries
from studio.interop.found import Found

CHUNKS = ("Software", "Source", "Description", "Comment", "Title")
SETTINGS = {"seed": "seed", "steps": "steps", "scale": "guidance", "sampler": "sampler"}
EXTRA = {"noise_schedule": "Noise schedule", "cfg_rescale": "CFG rescale"}


def read(entries: Entries) -> list[Found]:
    chunks = {key: text for key in CHUNKS if (text := entries.get(key)) is not None}
    if not is_novelai(chunks):
        return []
    return [from_chunks(chunks)]


def is_novelai(chunks: dict[str, Any]) -> bool:
    """NovelAI's chunks: its Software name, or a Comment of its settings."""
    software = chunks.get("Software")
    if isinstance(software, str) and software.strip().lower().startswith("novelai"):
        return True
    comment = chunks.get("Comment")
    comment = load_json(comment) if isinstance(comment, str) else comment
    return isinstance(comment, dict) and is_settings(comment)


def is_settings(data: dict[str, Any]) -> bool:
    """The Comment's JSON: "uc" and "scale" are NovelAI's names."""
    return ("uc" in data and ("scale" in data or "sampler" in data)) or "v4_prompt" in data


def from_chunks(chunks: dict[str, Any]) -> Found:
    comment = chunks.get("Comment")
    comment = load_json(comment) if isinstance(comment, str) else comment
    found = from_settings(comment if isinstance(comment, dict) else {})
    if "prompt" not in found.fields:
        found.put("prompt", chunks.get("Description"))
    found.put("model", chunks.get("Source"))
    return found


def from_settings(data: dict[str, Any]) -> Found:
    found = Found("novelai")
    prompt, negative = data.get("prompt"), data.get("uc")
    found.put("prompt", prompt if prompt is not None else _caption(data.get("v4_prompt")))
    found.put(
        "negative_prompt",
        negative if negative is not None else _caption(data.get("v4_negative_prompt")),
    )
    for key, name in SETTINGS.items():
        found.put(name, data.get(key))
    found.put("width", data.get("width"))
    found.put("height", data.get("height"))
    for key, label in EXTRA.items():
        found.put_extra(label, data.get(key))
    return found


def _caption(data: Any) -> Any:
    """V4's {"caption": {"base_caption": …}}."""
    caption = data.get("caption") if isinstance(data, dict) else None
    return caption.get("base_caption") if isinstance(caption, dict) else None
