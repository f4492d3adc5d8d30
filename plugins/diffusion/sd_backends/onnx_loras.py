"""LoRAs on the ONNX backend, without torch: each LoRA set's merged changes are fused
into the weights they touch when the sessions are built, nothing else rewritten.

The export's `lora_map.json` (`onnx_weight_map`) says where each torch weight lies: its
part, initializer, layout (transposed or not) and bytes in the part's external data file.
A weight's new value is read from there, changed by the LoRAs' merged delta (in ONNX's
layout) and handed to ONNX Runtime as an external initializer, which replaces the file's
before the graph is optimised (`add_initializer` would be ignored where the optimiser
reorders Conv weights). Weights the graph lacks because they reach no output (`unused`)
take a LoRA's change to no effect; `refused` ones (shared or not found) refuse the LoRA.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from studio.api import ModelFileError

DATA = "model.onnx.data"
AGAIN = "export it again (`studio sd-export-onnx MODEL OUT`)"


@dataclass(frozen=True)
class WeightMap:
    """What an export's LoRA map says (see the module's docstring)."""

    slots: Mapping[str, Mapping[str, Any]]
    unused: Mapping[str, tuple[int, ...]]
    refused: Mapping[str, tuple[int, ...]]

    def targets(self) -> dict[str, tuple[int, ...]]:
        """Every LoRA-able weight's torch shape, by torch name (`loras.merged_deltas`)."""
        found = {name: tuple(slot["shape"]) for name, slot in self.slots.items()}
        return found | dict(self.unused) | dict(self.refused)


def read_weight_map(folder: Path, index: Mapping[str, Any]) -> WeightMap | None:
    """The folder's LoRA map; None for an export made before LoRAs (it has none)."""
    name = index.get("lora_map")
    if not isinstance(name, str) or not (folder / name).is_file():
        return None
    try:
        data = json.loads((folder / name).read_text(encoding="utf-8"))
        return WeightMap(
            data["weights"],
            {k: tuple(v) for k, v in data.get("unused", {}).items()},
            {k: tuple(v) for k, v in data.get("refused", {}).items()},
        )
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ModelFileError(f"cannot read {folder.name}/{name}: {error}") from error


def changed_initializers(
    folder: Path, weights: WeightMap, deltas: Iterable[tuple[str, np.ndarray]]
) -> dict[str, dict[str, np.ndarray]]:
    """{part: {initializer: new value}} for merged `deltas` (torch name and change in
    torch layout, as `loras.iter_deltas` gives them, one at a time)."""
    changed: dict[str, dict[str, np.ndarray]] = {}
    for name, delta in deltas:
        if name in weights.refused:
            raise ModelFileError(
                f"this ONNX export cannot take a LoRA on {name} (its weight is shared or "
                f"was not found at export): {AGAIN}"
            )
        slot = weights.slots.get(name)
        if slot is None:
            continue  # a weight that reaches no output
        base = _stored(folder / slot["part"] / DATA, slot)
        change = delta.T if slot["transposed"] else delta
        if change.shape != base.shape:
            raise ModelFileError(f"a LoRA's change to {name} is {change.shape}, not {base.shape}")
        base += change  # a fresh array, float32 as the delta
        changed.setdefault(slot["part"], {})[slot["initializer"]] = base
    return changed


def _stored(data: Path, slot: Mapping[str, Any]) -> np.ndarray:
    """An initializer's values, read from the part's external data file."""
    count = int(slot["length"]) // 4
    try:
        values = np.fromfile(data, dtype=np.float32, count=count, offset=int(slot["offset"]))
    except OSError as error:
        raise ModelFileError(f"cannot read {data.parent.name}/{data.name}: {error}") from error
    if values.size != count:
        raise ModelFileError(f"{data.parent.name}/{data.name} is shorter than its graph says")
    return values.reshape(slot["onnx_shape"])
