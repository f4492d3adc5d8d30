"""The built-in model run by ONNX Runtime: no torch imported, CUDA only when a session got it.

Same model, options and capabilities as the PyTorch backend (see `backend.py`); the
graphs come from `python -m shapes_lab.model.export_onnx plugins/shapes/shapes_backend/weights`.
"""

from __future__ import annotations

from pathlib import Path

from shapes_backend.backend import BuiltinShapesBackend, check_model
from shapes_backend.model.bundle import SHIPPED


class ShapesOnnxBackend(BuiltinShapesBackend):
    display_name = "Built-in Shapes model (ONNX Runtime)"

    def __init__(self, folder: Path | None = None, threads: int = 1) -> None:
        # One thread: this small model's ops are too short for a second thread to pay
        # (bench/bench_shapes_backends.py: 0.39 s with one thread, 0.78 s with two).
        super().__init__(folder or SHIPPED, threads)

    def device(self) -> str:
        """'cpu' or 'cuda:0', with the ONNX Runtime provider the sessions really got."""
        if self.pipeline is None:
            return "cpu"
        return f"{self.pipeline.device} ({self.pipeline.provider})"

    def load(self, model: str) -> None:
        check_model(model, self.folder)
        from shapes_backend.model.onnx_pipeline import OnnxShapesPipeline

        self.pipeline = OnnxShapesPipeline(self.folder, threads=self.threads)
