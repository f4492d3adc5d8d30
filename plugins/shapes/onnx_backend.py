"""The built-in model run by ONNX Runtime: no torch imported, CUDA only when a session got it.

Same model, options and capabilities as the PyTorch backend (see `backend.py`); the
graphs come from `python -m plugins.shapes.model.export_onnx resources/shapes/model`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from plugins.shapes.backend import (
    capabilities,
    check_model,
    generate_candidates,
    model_info,
    sampler_label,
    unknown_words,
)
from plugins.shapes.model.bundle import SHIPPED
from studio.api import (
    Backend,
    Candidate,
    Capabilities,
    GenerationContext,
    GenerationRequest,
    ModelInfo,
)


class ShapesOnnxBackend(Backend):
    display_name = "Built-in Shapes model (ONNX Runtime)"

    def __init__(self, folder: Path = SHIPPED, threads: int = 0) -> None:
        self.folder = folder
        self.threads = threads  # 0: one per physical core
        self.pipeline: Any = None

    def capabilities(self) -> Capabilities:
        return capabilities(("cpu", "cuda"))

    def models(self) -> list[ModelInfo]:
        return [model_info(self.folder)]

    def device(self) -> str:
        """'cpu' or 'cuda:0', with the ONNX Runtime provider the sessions really got."""
        if self.pipeline is None:
            return "cpu"
        return f"{self.pipeline.device} ({self.pipeline.provider})"

    def sampler_name(self, request: GenerationRequest) -> str:
        return sampler_label(request)

    def unknown_words(self, prompt: str) -> list[str]:
        return unknown_words(prompt)

    def load(self, model: str) -> None:
        check_model(model, self.folder)
        from plugins.shapes.model.onnx_pipeline import OnnxShapesPipeline

        self.pipeline = OnnxShapesPipeline(self.folder, threads=self.threads)

    def unload(self) -> None:
        self.pipeline = None

    def generate(self, request: GenerationRequest, ctx: GenerationContext) -> list[Candidate]:
        return generate_candidates(self.pipeline, request, ctx)
