"""The `parameters` text and its stand-ins (EXIF UserComment, a JPEG comment): A1111's
layout, or JSON that other tools write to the same place.

Content decides, not the key: text that parses as a JSON object goes to the reader its
keys name (SwarmUI, Fooocus, NovelAI, Civitai, Stability Matrix, a ComfyUI graph); any
other text is A1111's layout. A JPEG comment counts only with a settings line (any
program can write a comment).
"""

from __future__ import annotations

from typing import Any

from studio.core.metadata_formats import load_json
from studio.interop import (
    a1111,
    civitai,
    comfyui,
    fooocus,
    novelai,
    stability_matrix,
    swarmui,
)
from studio.interop.entries import JPEG_COMMENT, USER_COMMENT, Entries
from studio.interop.found import Found

SOURCES = ("parameters", USER_COMMENT, JPEG_COMMENT)


def read(entries: Entries) -> list[Found]:
    found: list[Found] = []
    for key in SOURCES:
        text = entries.get(key)
        if text is None or not text.strip():
            continue
        data = load_json(text) if text.lstrip().startswith("{") else None
        if isinstance(data, dict):
            found += from_json(data, key)
        elif (
            reading := a1111.from_text(text, whole_text_is_prompt=key != JPEG_COMMENT)
        ) is not None:
            found.append(reading)
    return found


def from_json(data: dict[str, Any], key: str) -> list[Found]:
    """What a JSON object in `key` holds, by the names of its keys."""
    if swarmui.matches(data):
        return [swarmui.from_json(data)]
    if fooocus.matches(data):
        return [fooocus.from_json(data)]
    if stability_matrix.matches(data):
        return [stability_matrix.from_json(data)]
    if novelai.is_novelai(data):  # the chunks as one object
        return [novelai.from_chunks(data)]
    if novelai.is_settings(data):  # the Comment alone
        return [novelai.from_settings(data)]
    graph = comfyui.from_json(data) if comfyui.is_graph(data) else None
    if civitai.matches(data):
        # Civitai's own settings, and what only the graph that ran holds (size, model)
        found = civitai.from_json(data)
        for name, value in graph.fields.items() if graph else ():
            found.fields.setdefault(name, value)
        return [found]
    if graph is not None:
        return [graph]
    return [Found("none", notes=[f"the {key} text is JSON that Studio cannot read"])]
