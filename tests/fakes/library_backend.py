"""The fake backend over the model library: it loads a library model by name or path and
names it in metadata with its short hash, as the Stable-Diffusion backends do. Never
shipped."""

from __future__ import annotations

import threading

from fake_backend import FakeBackend

from studio.api import ModelFile, ModelInfo

LOAD_GATE: threading.Event | None = None  # when set by a test, loading waits for it


class FakeLibraryBackend(FakeBackend):
    display_name = "Fake over the model library (tests only)"
    _found: ModelFile | None = None

    def models(self) -> list[ModelInfo]:
        library = self.model_library()
        return [ModelInfo(str(e.info.path), e.info.name) for e in library.entries() if e.info]

    def load(self, model: str) -> None:
        library = self.model_library()
        found = library.find(model) if model else library.entries()[0].info
        if LOAD_GATE is not None:
            LOAD_GATE.wait(10)
        self._found = found

    def model_info(self, model: str) -> ModelInfo | None:
        if self._found is None:
            return super().model_info(model)
        digest = self.model_library().short_hash(self._found)
        return ModelInfo(str(self._found.path), self._found.name, hash=digest)
