"""The built-in model run by ONNX Runtime: no torch imported, CUDA only when a session got it.

Same model, options and capabilities as the PyTorch backend (see `backend.py`); the
graphs come from `python -m plugins.shapes.model.export_onnx resources/shapes/model`.
"""

from __future__ import annotations

from plugins.shapes.backend import BuiltinShapesBackend, check_model


class ShapesOnnxBackend(BuiltinShapesBackend):
    display_name = "Built-in Shapes model (ONNX Runtime)"

    def device(self) -> str:
        """'cpu' or 'cuda:0', with the ONNX Runtime provider the sessions really got."""
        if self.pipeline is None:
            return "cpu"
        return f"{self.pipeline.device} ({self.pipeline.provider})"

    def load(self, model: str) -> None:
        check_model(model, self.folder)
        from plugins.shapes.model.onnx_pipeline import OnnxShapesPipeline

        self.pipeline = OnnxShapesPipeline(self.folder, threads=self.threads)
