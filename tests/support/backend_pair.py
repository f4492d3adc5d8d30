"""Both SD backends on one model: PyTorch on its folder, ONNX Runtime on its export."""

from __future__ import annotations

from pathlib import Path

from sd_backends.backend import DiffusionBackend
from sd_backends.onnx_backend import DiffusionOnnxBackend
from studio.api import ModelLibrary


def torch_and_onnx(root: Path, name: str) -> tuple[DiffusionBackend, DiffusionOnnxBackend]:
    """`name` (a diffusers folder in `root`) loaded by PyTorch, and `name-onnx` by ONNX
    Runtime on one thread, both over the library of `root`."""
    torch_backend, onnx_backend = DiffusionBackend(), DiffusionOnnxBackend(threads=1)
    for backend, model in ((torch_backend, name), (onnx_backend, f"{name}-onnx")):
        backend.model_library = lambda: ModelLibrary([root], [], root / "hashes.json")
        backend.load(model)
    return torch_backend, onnx_backend
