"""Readers for other tools' metadata: ComfyUI's node graphs and InvokeAI's JSON.

Each reader takes the text of PNG text chunks and returns the `Fields` it found (named like
`ParsedMetadata`'s fields), or None when the text is not that format. Files are untrusted:
readers never raise on bad content, and graph walks are bounded (depth, visited set).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from typing import Any, TypedDict, cast

MAX_DEPTH = 12  # links followed from a sampler before giving up
MAX_SAMPLERS = 32  # considered per graph, so a hostile graph can't make us crawl
SEED_CONTROLS = {"fixed", "increment", "decrement", "randomize"}

# Widget order of the core ComfyUI nodes in the UI `workflow` format (it has no names).
WORKFLOW_WIDGETS: dict[str, list[str]] = {
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
    "CLIPTextEncode": ["text"],
    "EmptyLatentImage": ["width", "height", "batch_size"],
    "CheckpointLoaderSimple": ["ckpt_name"],
    "PrimitiveNode": ["value", "control_after_generate"],
}

TEXT_KEYS = ("text", "text_g", "text_l", "string", "value", "prompt")
SEED_KEYS = ("seed", "noise_seed", "value", "int", "number")
# Inputs that lead to models or pixels, never to the prompt text.
NOT_TEXT_KEYS = {"clip", "model", "vae", "control_net", "image", "mask", "pixels", "latent_image"}

Graph = dict[str, dict[str, Any]]  # node id -> {"class_type": str, "inputs": {name: value}}


class Fields(TypedDict, total=False):
    prompt: str
    negative_prompt: str
    seed: int
    steps: int
    guidance: float
    width: int
    height: int
    model: str
    model_hash: str
    sampler: str
    extra: dict[str, str]


def load_json(text: str | None) -> Any:
    """The parsed JSON, or None for anything that isn't (deep nesting included)."""
    if not text:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def as_float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        value = float(value)
    except OverflowError:  # an int too big for a float
        return None
    return value if math.isfinite(value) else None


# --------------------------------------------------------------------------- InvokeAI


def invokeai_fields(text: str | None) -> Fields | None:
    """InvokeAI 3+/4+ `invokeai_metadata`: a flat JSON object with prompts and settings."""
    data = load_json(text)
    if not isinstance(data, dict) or not any(
        key in data for key in ("positive_prompt", "negative_prompt", "seed", "cfg_scale")
    ):
        return None
    fields: dict[str, Any] = {}
    _put_str(fields, "prompt", data.get("positive_prompt"))
    _put_str(fields, "negative_prompt", data.get("negative_prompt"))
    _put_str(fields, "sampler", data.get("scheduler"))
    _put_number(fields, "seed", as_int(data.get("seed")))
    _put_number(fields, "steps", as_int(data.get("steps")))
    _put_number(fields, "guidance", as_float(data.get("cfg_scale")))
    _put_number(fields, "width", as_int(data.get("width")))
    _put_number(fields, "height", as_int(data.get("height")))
    model = data.get("model")
    if isinstance(model, dict):  # 4.x: {name, hash, ...}; 3.x: {model_name, base_model, ...}
        _put_str(fields, "model", model.get("name") or model.get("model_name"))
        _put_str(fields, "model_hash", model.get("hash"))
    else:
        _put_str(fields, "model", model)
    if isinstance(data.get("app_version"), str):
        fields["extra"] = {"Version": f"InvokeAI {data['app_version']}"}
    return cast(Fields, fields)


# --------------------------------------------------------------------------- ComfyUI


def comfyui_fields(prompt_text: str | None, workflow_text: str | None) -> Fields | None:
    """ComfyUI's `prompt` (the API graph), or failing that its UI `workflow`, best effort."""
    graph = _api_graph(load_json(prompt_text))
    if graph is None:
        graph = _workflow_graph(load_json(workflow_text))
    if not graph:
        return None
    samplers = [node for _, node in _sorted_nodes(graph) if _is_sampler(node)][:MAX_SAMPLERS]
    if not samplers:
        return None
    # The first pass starts from an empty latent; a later hires pass starts from its output.
    sampler = next((s for s in samplers if _size_node(graph, s) is not None), samplers[0])
    return _sampler_fields(graph, sampler)


def _sampler_fields(graph: Graph, sampler: dict[str, Any]) -> Fields:
    inputs = sampler["inputs"]
    fields: dict[str, Any] = {}
    for polarity, name in (("positive", "prompt"), ("negative", "negative_prompt")):
        text = _find_text(graph, inputs.get(polarity), polarity)
        _put_str(fields, name, text)
    seed = _scalar(graph, inputs.get("seed", inputs.get("noise_seed")), SEED_KEYS)
    _put_number(fields, "seed", as_int(seed))
    _put_number(fields, "steps", as_int(_scalar(graph, inputs.get("steps"), ("steps", "value"))))
    _put_number(fields, "guidance", as_float(_scalar(graph, inputs.get("cfg"), ("cfg", "value"))))
    _put_str(fields, "sampler", _scalar(graph, inputs.get("sampler_name"), ("sampler_name",)))
    size = _size_node(graph, sampler) or _first(graph, _has_size, "EmptyLatentImage")
    if size is not None:
        _put_number(fields, "width", as_int(size["inputs"]["width"]))
        _put_number(fields, "height", as_int(size["inputs"]["height"]))
    loader = _follow(graph, inputs.get("model"), _has_checkpoint, keys=("model",))
    loader = loader or _first(graph, _has_checkpoint, "CheckpointLoader")
    if loader is not None:
        name = loader["inputs"].get("ckpt_name", loader["inputs"].get("unet_name"))
        _put_str(fields, "model", name)
    scheduler = _scalar(graph, inputs.get("scheduler"), ("scheduler",))
    if isinstance(scheduler, str) and scheduler:
        fields["extra"] = {"Scheduler": scheduler}
    return cast(Fields, fields)


def _api_graph(data: Any) -> Graph | None:
    if not isinstance(data, dict):
        return None
    graph = {
        str(node_id): node
        for node_id, node in data.items()
        if isinstance(node, dict) and isinstance(node.get("inputs"), dict)
    }
    return graph or None


def _workflow_graph(data: Any) -> Graph | None:
    """Turn the UI graph (widgets by position, links by id) into the API graph's shape."""
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
        return None
    links = _workflow_links(data.get("links"))
    graph: Graph = {}
    for node in data["nodes"]:
        if not isinstance(node, dict) or "id" not in node:
            continue
        kind = str(node.get("type", ""))
        inputs = _widget_inputs(WORKFLOW_WIDGETS.get(kind, []), node.get("widgets_values"))
        slots = node.get("inputs")
        for slot in slots if isinstance(slots, list) else ():
            if isinstance(slot, dict) and isinstance(slot.get("name"), str):
                link_id = slot.get("link")
                if isinstance(link_id, int) and link_id in links:
                    inputs[slot["name"]] = links[link_id]  # overrides the widget's stored value
        graph[str(node["id"])] = {"class_type": kind, "inputs": inputs}
    return graph or None


def _workflow_links(raw: Any) -> dict[int, list[Any]]:
    """link id -> [origin node id, origin slot]; links are lists or (newer) dicts."""
    links: dict[int, list[Any]] = {}
    for link in raw if isinstance(raw, list) else ():
        if isinstance(link, list) and len(link) >= 3:
            link_id, origin, slot = link[0], link[1], link[2]
        elif isinstance(link, dict):
            link_id, origin, slot = link.get("id"), link.get("origin_id"), link.get("origin_slot")
        else:
            continue
        if isinstance(link_id, int) and origin is not None:
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


def _sorted_nodes(graph: Graph) -> list[tuple[str, dict[str, Any]]]:
    def key(item: tuple[str, dict[str, Any]]) -> tuple[int, int, str]:
        node_id = item[0]
        numeric = node_id.isascii() and node_id.isdigit() and len(node_id) < 19
        return (0, int(node_id), "") if numeric else (1, 0, node_id)

    return sorted(graph.items(), key=key)


def _is_link(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str | int)
        and not isinstance(value[0], bool)
    )


def _is_sampler(node: dict[str, Any]) -> bool:
    inputs = node["inputs"]
    return (
        "positive" in inputs
        and "negative" in inputs
        and ("seed" in inputs or "noise_seed" in inputs)
    )


def _has_size(node: dict[str, Any]) -> bool:
    inputs = node["inputs"]
    return as_int(inputs.get("width")) is not None and as_int(inputs.get("height")) is not None


def _has_checkpoint(node: dict[str, Any]) -> bool:
    inputs = node["inputs"]
    return isinstance(inputs.get("ckpt_name"), str) or isinstance(inputs.get("unet_name"), str)


def _size_node(graph: Graph, sampler: dict[str, Any]) -> dict[str, Any] | None:
    return _follow(
        graph, sampler["inputs"].get("latent_image"), _has_size, keys=("samples", "latent")
    )


def _first(graph: Graph, match: Callable[[dict[str, Any]], bool], kind: str) -> Any:
    """The first node of a class named like `kind` that matches, for graphs we can't trace."""
    for _, node in _sorted_nodes(graph):
        if kind in str(node.get("class_type", "")) and match(node):
            return node
    return None


def _follow(
    graph: Graph,
    start: Any,
    match: Callable[[dict[str, Any]], bool],
    *,
    keys: tuple[str, ...] = (),
    avoid: frozenset[str] | set[str] = frozenset(),
    any_link: bool = False,
) -> dict[str, Any] | None:
    """Depth-first from link `start` to the first node that `match`es.

    Links under `keys` are tried first; other links only with `any_link`, never `avoid`.
    """
    seen: set[str] = set()
    stack: list[tuple[Any, int]] = [(start, 0)]
    while stack:
        link, depth = stack.pop()
        if not _is_link(link) or depth > MAX_DEPTH or str(link[0]) in seen:
            continue
        seen.add(str(link[0]))
        node = graph.get(str(link[0]))
        if node is None:
            continue
        if match(node):
            return node
        inputs = node["inputs"]
        names = [k for k in keys if k in inputs]
        if any_link:
            names += [k for k in inputs if k not in keys and k not in avoid]
        stack.extend((inputs[name], depth + 1) for name in reversed(names))
    return None


def _find_text(graph: Graph, start: Any, polarity: str) -> str | None:
    """Follow a sampler's conditioning input back to the text that was encoded."""
    if isinstance(start, str):
        return start
    opposite = "negative" if polarity == "positive" else "positive"
    node = _follow(
        graph,
        start,
        _has_text,
        keys=(
            polarity,
            "conditioning",
            "conditioning_to",
            "conditioning_1",
            "conditioning_from",
            "conditioning_2",
        ),
        avoid=NOT_TEXT_KEYS | {opposite},
        any_link=True,
    )
    if node is None:
        return None
    value = _scalar(graph, _text_input(node), TEXT_KEYS)
    return value if isinstance(value, str) else None


def _text_input(node: dict[str, Any]) -> Any:
    inputs = node["inputs"]
    return next(v for k in TEXT_KEYS if isinstance(v := inputs.get(k), str) or _is_link(v))


def _has_text(node: dict[str, Any]) -> bool:
    inputs = node["inputs"]
    return any(isinstance(inputs.get(k), str) or _is_link(inputs.get(k)) for k in TEXT_KEYS)


def _scalar(graph: Graph, value: Any, keys: tuple[str, ...]) -> Any:
    """A widget's value, following links to nodes (primitives, seed nodes) that hold it."""
    for _ in range(MAX_DEPTH):
        if not _is_link(value):
            return value
        node = graph.get(str(value[0]))
        if node is None:
            return None
        inputs = node["inputs"]
        value = next((inputs[k] for k in keys if k in inputs), None)
    return None


def _put_str(fields: dict[str, Any], name: str, value: Any) -> None:
    if isinstance(value, str):
        fields[name] = value


def _put_number(fields: dict[str, Any], name: str, value: float | None) -> None:
    if value is not None:
        fields[name] = value
