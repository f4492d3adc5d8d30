"""Where each LoRA-able torch weight of an export lives among its ONNX initializers.

The ONNX exporter renames and transposes Linear weights (constant folding turns
`W` of `x @ W.T` into an initializer `onnx::MatMul_123` holding `W.T`), so names alone
cannot say which initializer a LoRA changes. Values can: each exported initializer is
hashed, and each torch weight of a Linear or Conv2d is looked up as it is and transposed.
The map records, per torch name (`unet.<module>.weight`, `text_encoder.<module>.weight`,
...), the part, initializer, layout, torch shape and where its bytes lie in the part's
external data file, so the torch-free backend can fuse a LoRA without `onnx` or `torch`.
A weight the graph lacks is `unused` when every initializer the graph multiplies by
(MatMul, Gemm and Conv weights) was matched: the exporter dropped it as it reaches no
output (SDXL's first text encoder's last layer), so a LoRA's change to it changes nothing.
Otherwise, and for an initializer that several torch weights share (the exporter
deduplicates equal values; changing it would change them all), it is `refused`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

DATA = "model.onnx.data"  # the one external data file of each part (export_onnx._export)


def _digest(values: np.ndarray) -> tuple[tuple[int, ...], bytes]:
    data = np.ascontiguousarray(values, np.float32)
    return data.shape, hashlib.blake2b(memoryview(data).cast("B"), digest_size=16).digest()


def _initializers(
    folder: Path,
) -> tuple[dict[tuple[tuple[int, ...], bytes], dict[str, Any]], set[str]]:
    """The part's float32 initializers of two or more dimensions, by (shape, digest), and
    the names of those the graph multiplies by (directly or through an Identity)."""
    import onnx

    graph = onnx.load(str(folder / "model.onnx"), load_external_data=False).graph
    aliases = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Identity"}
    multiplied = {
        aliases.get(n.input[1], n.input[1])
        for n in graph.node
        if n.op_type in ("MatMul", "Gemm", "Conv") and len(n.input) > 1
    }
    data = np.memmap(folder / DATA, dtype=np.uint8, mode="r")
    found: dict[tuple[tuple[int, ...], bytes], dict[str, Any]] = {}
    for tensor in graph.initializer:
        where = {entry.key: entry.value for entry in tensor.external_data}
        if tensor.data_type != onnx.TensorProto.FLOAT or len(tensor.dims) < 2 or not where:
            continue
        if where.get("location") != DATA:
            continue
        offset, length = int(where.get("offset", 0)), int(where["length"])
        shape = tuple(int(d) for d in tensor.dims)
        values = np.frombuffer(data[offset : offset + length], np.float32).reshape(shape)
        found[_digest(values)] = {
            "initializer": tensor.name,
            "offset": offset,
            "length": length,
            "onnx_shape": list(shape),
        }
    return found, multiplied


def weight_map(part: str, folder: Path, weights: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Where a part's `weights` (torch name -> values in torch layout), exported to
    `folder`, lie: {"weights": {torch name: slot}, "unused": {torch name: shape},
    "refused": {torch name: shape}}."""
    stored, multiplied = _initializers(folder)
    slots: dict[str, dict[str, Any]] = {}
    users: dict[str, int] = {}
    for name, values in weights.items():
        layouts = [(False, values)] + ([(True, values.T)] if values.ndim == 2 else [])
        for transposed, candidate in layouts:
            slot = stored.get(_digest(candidate))
            if slot is not None:
                slots[name] = {"part": part, **slot, "transposed": transposed}
                slots[name]["shape"] = list(values.shape)
                users[slot["initializer"]] = users.get(slot["initializer"], 0) + 1
                break
    stray = {v["initializer"] for v in stored.values()} & multiplied - users.keys()
    absent = {k: list(v.shape) for k, v in weights.items() if k not in slots}
    shared = {k: v["shape"] for k, v in slots.items() if users[v["initializer"]] > 1}
    return {
        "weights": {k: v for k, v in slots.items() if k not in shared},
        "unused": {} if stray else absent,
        "refused": shared | (absent if stray else {}),
    }


def lora_weights(module: Any, prefix: str) -> dict[str, np.ndarray]:
    """The weights a LoRA may change: each Linear's and Conv2d's, by torch name."""
    import torch

    kinds = (torch.nn.Linear, torch.nn.Conv2d)
    return {
        f"{prefix}.{name}.weight": layer.weight.detach().float().cpu().numpy()
        for name, layer in module.named_modules()
        if isinstance(layer, kinds)
    }
