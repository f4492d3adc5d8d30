"""Reading the settings of an image out of a ComfyUI node graph (API `prompt` shape).

A graph has no "the prompt": it has samplers, and each sampler's inputs link back to the
nodes that made them. So the reader picks the sampler that made the image (the first
whose latent starts empty; a hires pass starts from another's output) and follows its
links: to the text encoders for the prompts (through ControlNets, combines, guidance),
to the loader for the model, to the empty latent for the size. Samplers of both kinds
are read: KSampler-like nodes that hold everything, and the Flux-era SamplerCustomAdvanced
whose noise, guider, sampler and sigmas are nodes of their own.

Graphs are untrusted: walks are bounded in depth and never visit a node twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from studio.core.metadata_formats import as_float
from studio.interop.found import Found

Graph = dict[str, dict[str, Any]]  # node id -> {"class_type": str, "inputs": {name: value}}
Node = dict[str, Any]

MAX_DEPTH = 32  # links followed from a sampler before giving up
MAX_SAMPLERS = 32  # considered per graph, so a hostile graph can't make us crawl
MAX_VISITS = 2_000  # nodes visited by one walk

TEXT_KEYS = ("text", "t5xxl", "text_g", "clip_l", "text_l", "prompt", "string", "value")
SEED_KEYS = ("seed", "noise_seed", "value", "int", "number")
CONDITIONING_KEYS = (
    "conditioning",
    "conditioning_to",
    "conditioning_1",
    "conditioning_from",
    "conditioning_2",
)
# Inputs that lead to models or pixels, never to the prompt text.
NOT_TEXT_KEYS = {
    "clip",
    "model",
    "vae",
    "control_net",
    "image",
    "mask",
    "pixels",
    "latent_image",
    "style_model",
    "clip_vision_output",
}
MODEL_FILE_KEYS = ("ckpt_name", "unet_name")
LATENT_KEYS = ("samples", "latent", "latent_image")


def graph_fields(graph: Graph) -> Found | None:
    """What the graph's main sampler was given, or None when it has no sampler."""
    samplers = [node for _, node in sorted_nodes(graph) if _is_sampler(node)][:MAX_SAMPLERS]
    if not samplers:
        return None
    sampler = next((s for s in samplers if _starts_empty(graph, s)), samplers[0])
    return _sampler_fields(graph, sampler)


def api_graph(data: Any) -> Graph | None:
    """`data` as an API graph (nodes with dict inputs), or None when it is not one."""
    if not isinstance(data, dict):
        return None
    graph = {
        str(node_id): node
        for node_id, node in data.items()
        if isinstance(node, dict) and isinstance(node.get("inputs"), dict)
    }
    return graph or None


def sorted_nodes(graph: Graph) -> list[tuple[str, Node]]:
    """Nodes in id order (numbers as numbers): roughly the order they were added."""

    def key(item: tuple[str, Node]) -> tuple[int, int, str]:
        node_id = item[0]
        numeric = node_id.isascii() and node_id.isdigit() and len(node_id) < 19
        return (0, int(node_id), "") if numeric else (1, 0, node_id)

    return sorted(graph.items(), key=key)


# --------------------------------------------------------------------------- one sampler


def _sampler_fields(graph: Graph, sampler: Node) -> Found:
    inputs = sampler["inputs"]
    guider = _linked(graph, inputs.get("guider"))
    guider_inputs = guider["inputs"] if guider else {}
    found = Found("comfyui")
    positive = inputs.get("positive", guider_inputs.get("positive"))
    positive = positive if positive is not None else guider_inputs.get("conditioning")
    negative = inputs.get("negative", guider_inputs.get("negative"))
    found.put("prompt", _find_text(graph, positive, "positive"))
    if negative is not None:
        found.put("negative_prompt", _find_text(graph, negative, "negative") or "")

    noise = _linked(graph, inputs.get("noise"))
    seed = inputs.get("seed", inputs.get("noise_seed"))
    if seed is None and noise is not None:
        seed = noise["inputs"].get("noise_seed", noise["inputs"].get("seed"))
    found.put("seed", _scalar(graph, seed, SEED_KEYS))

    sigmas = _follow(graph, inputs.get("sigmas"), _has("steps"), keys=("sigmas",))
    sigma_inputs = sigmas["inputs"] if sigmas else {}
    found.put(
        "steps", _scalar(graph, inputs.get("steps", sigma_inputs.get("steps")), ("steps", "value"))
    )
    cfg = _scalar(graph, inputs.get("cfg", guider_inputs.get("cfg")), ("cfg", "value"))
    guidance = _scalar(graph, _guidance(graph, positive), ("guidance", "value"))
    found.put("guidance", cfg if cfg is not None else guidance)
    if cfg is not None and as_float(guidance) is not None:
        found.put_extra("Guidance", guidance)

    sampler_select = _linked(graph, inputs.get("sampler"))
    name = inputs.get(
        "sampler_name", (sampler_select or {"inputs": {}})["inputs"].get("sampler_name")
    )
    found.put("sampler", _scalar(graph, name, ("sampler_name", "value")))
    scheduler = _scalar(
        graph, inputs.get("scheduler", sigma_inputs.get("scheduler")), ("scheduler",)
    )
    found.put_extra("Scheduler", scheduler)

    size = _size_node(graph, sampler) or _first(graph, _has_size, "EmptyLatentImage")
    if size is not None:
        found.put("width", _scalar(graph, size["inputs"].get("width"), ("width", "value", "int")))
        found.put(
            "height", _scalar(graph, size["inputs"].get("height"), ("height", "value", "int"))
        )
    model = inputs.get("model", guider_inputs.get("model"))
    loader = _follow(graph, model, _has_model_file, keys=("model",))
    loader = loader or _first(graph, _has_model_file, "Loader")
    if loader is not None:
        found.put(
            "model",
            next(v for k in MODEL_FILE_KEYS if isinstance(v := loader["inputs"].get(k), str)),
        )
    return found


def _is_sampler(node: Node) -> bool:
    inputs = node["inputs"]
    classic = "positive" in inputs and "negative" in inputs
    classic = classic and ("seed" in inputs or "noise_seed" in inputs)
    return classic or ("guider" in inputs and "sigmas" in inputs)


def _starts_empty(graph: Graph, sampler: Node) -> bool:
    """The sampler's latent comes from an empty latent of a size, not from another pass."""
    node = _size_node(graph, sampler)
    return node is not None and not any(_is_link(node["inputs"].get(k)) for k in LATENT_KEYS)


def _size_node(graph: Graph, sampler: Node) -> Node | None:
    return _follow(graph, sampler["inputs"].get("latent_image"), _has_size, keys=LATENT_KEYS)


def _guidance(graph: Graph, positive: Any) -> Any:
    """Flux's distilled guidance: a FluxGuidance (or text encoder) on the positive path."""
    node = _follow(
        graph, positive, _has("guidance"), keys=("conditioning", "positive"), any_link=False
    )
    return node["inputs"].get("guidance") if node else None


# --------------------------------------------------------------------------- prompts


def _find_text(graph: Graph, start: Any, polarity: str) -> str | None:
    """Follow a conditioning input back to the text that was encoded.

    Of the texts it leads to, the first that reaches the sampler without passing an area
    or mask node wins: with area prompts, the prompt of the whole image is the prompt.
    A zeroed-out conditioning (Flux and SD3 negatives) encodes no text: "".
    """
    if isinstance(start, str):
        return start
    opposite = "negative" if polarity == "positive" else "positive"
    first_restricted: str | None = None
    for node, restricted in _text_nodes(graph, start, polarity, opposite):
        if node is None:
            if not restricted:
                return ""
            continue
        value = _scalar(graph, _text_input(node), TEXT_KEYS)
        if not isinstance(value, str):
            continue
        if not restricted:
            return value
        if first_restricted is None:
            first_restricted = value
    return first_restricted


def _text_nodes(
    graph: Graph, start: Any, polarity: str, opposite: str
) -> Iterator[tuple[Node | None, bool]]:
    """Text nodes reached from `start`, depth first, each with whether an area or mask node
    was on the way; (None, restricted) for a zero-out node, which ends its path."""
    keys = (polarity, *CONDITIONING_KEYS)
    seen: set[str] = set()
    stack: list[tuple[Any, int, bool]] = [(start, 0, False)]
    while stack and len(seen) < MAX_VISITS:
        link, depth, restricted = stack.pop()
        if not _is_link(link) or depth > MAX_DEPTH or str(link[0]) in seen:
            continue
        seen.add(str(link[0]))
        node = graph.get(str(link[0]))
        if node is None:
            continue
        kind = str(node.get("class_type", ""))
        if "ZeroOut" in kind:
            yield None, restricted
            continue
        if _has_text(node):
            yield node, restricted
            continue
        restricted = restricted or "Area" in kind or "Mask" in kind
        inputs = node["inputs"]
        names = [k for k in keys if k in inputs]
        names += [k for k in inputs if k not in keys and k not in NOT_TEXT_KEYS and k != opposite]
        stack.extend((inputs[name], depth + 1, restricted) for name in reversed(names))


def _text_input(node: Node) -> Any:
    inputs = node["inputs"]
    return next(v for k in TEXT_KEYS if isinstance(v := inputs.get(k), str) or _is_link(v))


def _has_text(node: Node) -> bool:
    inputs = node["inputs"]
    return any(isinstance(inputs.get(k), str) or _is_link(inputs.get(k)) for k in TEXT_KEYS)


# --------------------------------------------------------------------------- walking


def _is_link(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str | int)
        and not isinstance(value[0], bool)
    )


def _linked(graph: Graph, link: Any) -> Node | None:
    return graph.get(str(link[0])) if _is_link(link) else None


def _has(key: str) -> Callable[[Node], bool]:
    return lambda node: key in node["inputs"]


def _has_size(node: Node) -> bool:
    inputs = node["inputs"]
    return "width" in inputs and "height" in inputs


def _has_model_file(node: Node) -> bool:
    return any(isinstance(node["inputs"].get(k), str) for k in MODEL_FILE_KEYS)


def _first(graph: Graph, match: Callable[[Node], bool], kind: str) -> Node | None:
    """The first node of a class named like `kind` that matches, for graphs we can't trace."""
    for _, node in sorted_nodes(graph):
        if kind in str(node.get("class_type", "")) and match(node):
            return node
    return None


def _follow(
    graph: Graph,
    start: Any,
    match: Callable[[Node], bool],
    *,
    keys: tuple[str, ...] = (),
    any_link: bool = False,
) -> Node | None:
    """Depth-first from link `start` to the first node that `match`es, through the inputs
    named `keys` (and with `any_link`, through any other input after them)."""
    seen: set[str] = set()
    stack: list[tuple[Any, int]] = [(start, 0)]
    while stack and len(seen) < MAX_VISITS:
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
            names += [k for k in inputs if k not in keys]
        stack.extend((inputs[name], depth + 1) for name in reversed(names))
    return None


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
