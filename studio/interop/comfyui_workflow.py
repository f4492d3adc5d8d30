"""ComfyUI's UI `workflow` turned into the shape of its API `prompt` graph.

The workflow names no widget: each node keeps its widgets' values by position, so the
core nodes' widget order is written down here. Links are ids in a separate list.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from studio.interop.comfyui_graph import Graph

SEED_CONTROLS = {"fixed", "increment", "decrement", "randomize"}
MAX_NODES = 10_000

# Widget order of the core nodes (seed nodes have a control widget after the seed).
WIDGETS: dict[str, list[str]] = {
    "KSampler": [
        "seed",
        "control_after_generate",
        "steps",
        "cfg",
        "sampler_name",
        "scheduler",
        "denoise",
    ],
    "KSamplerAdvanced": [
        "add_noise",
        "noise_seed",
        "control_after_generate",
        "steps",
        "cfg",
        "sampler_name",
        "scheduler",
        "start_at_step",
        "end_at_step",
        "return_with_leftover_noise",
    ],
    "SamplerCustom": ["add_noise", "noise_seed", "control_after_generate", "cfg"],
    "RandomNoise": ["noise_seed", "control_after_generate"],
    "CFGGuider": ["cfg"],
    "BasicScheduler": ["scheduler", "steps", "denoise"],
    "KSamplerSelect": ["sampler_name"],
    "FluxGuidance": ["guidance"],
    "CLIPTextEncode": ["text"],
    "CLIPTextEncodeFlux": ["clip_l", "t5xxl", "guidance"],
    "EmptyLatentImage": ["width", "height", "batch_size"],
    "EmptySD3LatentImage": ["width", "height", "batch_size"],
    "ConditioningSetArea": ["width", "height", "x", "y", "strength"],
    "CheckpointLoaderSimple": ["ckpt_name"],
    "UNETLoader": ["unet_name", "weight_dtype"],
    "PrimitiveNode": ["value", "control_after_generate"],
}


def to_graph(data: Any) -> Graph | None:
    """The API-shaped graph of a UI workflow, or None when `data` is not one."""
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
        return None
    links = _links(data.get("links"))
    graph: Graph = {}
    for node in data["nodes"][:MAX_NODES]:
        if not isinstance(node, dict) or not isinstance(node.get("id"), int | str):
            continue
        kind = str(node.get("type", ""))
        inputs = _widget_inputs(WIDGETS.get(kind, []), node.get("widgets_values"))
        slots = node.get("inputs")
        for slot in slots if isinstance(slots, list) else ():
            if isinstance(slot, dict) and isinstance(slot.get("name"), str):
                link_id = slot.get("link")
                if isinstance(link_id, int) and link_id in links:
                    inputs[slot["name"]] = links[link_id]  # overrides the widget's stored value
        graph[str(node["id"])] = {"class_type": kind, "inputs": inputs}
    return graph or None


def _links(raw: Any) -> dict[int, list[Any]]:
    """link id -> [origin node id, origin slot]; links are lists or (newer) dicts."""
    links: dict[int, list[Any]] = {}
    for link in raw[: MAX_NODES * 8] if isinstance(raw, list) else ():
        if isinstance(link, list) and len(link) >= 3:
            link_id, origin, slot = link[0], link[1], link[2]
        elif isinstance(link, dict):
            link_id, origin, slot = link.get("id"), link.get("origin_id"), link.get("origin_slot")
        else:
            continue
        if isinstance(link_id, int) and isinstance(origin, int | str):
            links[link_id] = [str(origin), slot]
    return links


def _widget_inputs(names: list[str], values: Any) -> dict[str, Any]:
    if not isinstance(values, list):
        return {}
    inputs: dict[str, Any] = {}
    remaining = iter(values)
    for name in names:
        value = next(remaining, None)
        if name == "control_after_generate" and not (
            isinstance(value, str) and value in SEED_CONTROLS
        ):
            # Older files have no seed-control widget: this value belongs to the next name.
            remaining = _prepend(value, remaining)
            continue
        inputs[name] = value
    return inputs


def _prepend(value: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield value
    yield from rest
