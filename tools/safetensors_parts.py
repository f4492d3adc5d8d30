"""Split a safetensors file into halves, or join them again, keeping its metadata.

    python tools/safetensors_parts.py split FILE FOLDER   # FOLDER/part-0.safetensors, part-1...
    python tools/safetensors_parts.py join FOLDER FILE

For moving weights through a channel that limits a file's size (the GPU machine's 16 MiB).
"""

from __future__ import annotations

import sys
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file

PARTS = 2


def split(file: Path, folder: Path) -> None:
    with safe_open(str(file), framework="pt") as handle:
        metadata = handle.metadata()
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    parts: list[dict] = [{} for _ in range(PARTS)]
    sizes = [0] * PARTS
    for key, tensor in sorted(tensors.items(), key=lambda item: -item[1].nbytes):
        smallest = sizes.index(min(sizes))  # largest first, each into the lightest part
        parts[smallest][key] = tensor
        sizes[smallest] += tensor.nbytes
    for i, part in enumerate(parts):
        save_file(part, str(folder / f"part-{i}.safetensors"), metadata=metadata)


def join(folder: Path, file: Path) -> None:
    tensors, metadata = {}, None
    for i in range(PARTS):
        with safe_open(str(folder / f"part-{i}.safetensors"), framework="pt") as handle:
            metadata = handle.metadata()
            tensors.update({key: handle.get_tensor(key) for key in handle.keys()})  # noqa: SIM118
    save_file(dict(sorted(tensors.items())), str(file), metadata=metadata)


if __name__ == "__main__":
    command, source, target = sys.argv[1:4]
    {"split": split, "join": join}[command](Path(source), Path(target))
