"""ComfyUI: the API graph (`prompt`) and the UI graph (`workflow`), wherever they are.

PNG: `prompt` and `workflow` text chunks (ComfyUI's SaveImage, and Image Saver beside its
A1111 text). WebP and JPEG: EXIF text tags holding "prompt:{…}" and "workflow:{…}"
(ComfyUI's SaveAnimatedWEBP writes the prompt to Model, then each extra entry to Make,
ImageDescription, … counting down). Savers that write a graph as JSON into `parameters`
are sent here by `parameters`.
"""

from __future__ import annotations

from typing import Any

from studio.core.metadata_formats import load_json
from studio.interop import comfyui_workflow
from studio.interop.comfyui_graph import api_graph, graph_fields
from studio.interop.entries import IMAGE_DESCRIPTION, MAKE, MODEL, SOFTWARE, Entries
from studio.interop.found import Found

EXIF_KEYS = (MODEL, MAKE, IMAGE_DESCRIPTION, SOFTWARE)


def read(entries: Entries) -> list[Found]:
    prompt, workflow = entries.get("prompt"), entries.get("workflow")
    for key in EXIF_KEYS:
        text = entries.get(key) or ""
        label, colon, rest = text.partition(":")
        if colon and label.strip().lower() == "prompt":
            prompt = prompt or rest
        elif colon and label.strip().lower() == "workflow":
            workflow = workflow or rest
    found = from_json(load_json(prompt), load_json(workflow))
    return [found] if found else []


def from_json(prompt: Any, workflow: Any = None) -> Found | None:
    """The API graph's reading, or failing that the UI graph's; None when neither is one."""
    graph = api_graph(prompt)
    found = graph_fields(graph) if graph else None
    if found is None:
        graph = comfyui_workflow.to_graph(workflow)
        found = graph_fields(graph) if graph else None
    return found


def is_graph(data: Any) -> bool:
    """`data` looks like an API graph: node ids mapping to nodes with a class and inputs."""
    graph = api_graph(data)
    return graph is not None and any("class_type" in node for node in graph.values())
