"""What the chosen backend and model offer beside the size boxes: capabilities, the
model's details (family, native size) and the add-ons in the library for it.

Read off the GUI thread (the first read imports the plugin; listing add-ons reads the
model folders) whenever the backend or model changes; the aspect presets, the LoRA
picker and the keep-structure switch follow what is read.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal

from studio.core.app import Core
from studio.core.backend import Capabilities, ModelInfo
from studio.ui.generation_settings import GenerationSettings
from studio.ui.tasks import run_in_background

UNKNOWN_FAMILIES = ("", "unknown")  # an add-on whose family could not be read: offered


@dataclass(frozen=True)
class ModelContext:
    backend_id: str
    capabilities: Capabilities
    model: ModelInfo | None = None
    addons: tuple[ModelInfo, ...] = ()

    @property
    def family(self) -> str:
        return self.model.architecture if self.model is not None else ""

    def addons_of(self, kind: str) -> list[ModelInfo]:
        """The add-ons of `kind` made for this model's family (and those of unknown family)."""
        return [
            a
            for a in self.addons
            if a.kind == kind
            and (a.architecture in UNKNOWN_FAMILIES or a.architecture == self.family)
        ]


class ModelContextWatcher(QObject):
    changed = Signal(object)  # ModelContext

    def __init__(self, core: Core, settings: GenerationSettings) -> None:
        super().__init__(settings)
        self.core = core
        self.settings = settings
        self.context: ModelContext | None = None
        settings.capabilities_changed.connect(lambda _c: self.refresh())
        settings.model.currentIndexChanged.connect(lambda _i: self.refresh())

    def refresh(self) -> None:
        backend_id = self.settings.backend_id()
        model_ref = self.settings.model.currentData() or ""
        if not backend_id:
            return

        def read() -> ModelContext:
            backend = self.core.registry.get(backend_id)
            return ModelContext(
                backend_id,
                backend.capabilities(),
                backend.model_info(model_ref),
                tuple(backend.addons()),
            )

        run_in_background(self.core.engine, self, read, lambda c: self._read(c, model_ref))

    def _read(self, context: ModelContext, model_ref: str) -> None:
        if (context.backend_id, model_ref) != (
            self.settings.backend_id(),
            self.settings.model.currentData() or "",
        ):
            return  # another backend or model was chosen meanwhile: its read follows
        self.context = context
        self.changed.emit(context)
