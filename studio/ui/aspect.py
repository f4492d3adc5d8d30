"""The aspect preset box beside the size fields: 1:1, 4:3, … or the input's shape, each
at the chosen model's native area, with the pixel size it gives (see studio.core.aspect)."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QWidget

from studio.core.aspect import AS_INPUT, DEFAULT_NATIVE, PRESETS, preset_size, ratio_of
from studio.core.backend import Capabilities, ModelInfo

TIMES = "\u00d7"


class AspectPresets(QComboBox):
    size_chosen = Signal(int, int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.capabilities = Capabilities(min_size=8, max_size=8192, size_multiple=8)
        self.native = DEFAULT_NATIVE
        self.input_size: tuple[int, int] | None = None
        self.setToolTip("Shape of the results, at the size the model was made for")
        self.activated.connect(self._chosen)
        self._fill()

    def set_model(self, capabilities: Capabilities, model: ModelInfo | None) -> None:
        self.capabilities = capabilities
        self.native = (model.native_size if model is not None else 0) or DEFAULT_NATIVE
        self._fill()

    def set_input(self, size: tuple[int, int] | None) -> None:
        """The input picture's size (None: no picture): its shape is a preset."""
        self.input_size = size if size and min(size) > 0 else None
        self._fill()

    def sizes(self) -> dict[str, tuple[int, int]]:
        """Each preset's size for the chosen model and backend."""
        c = self.capabilities
        shapes = list(PRESETS)
        if self.input_size is not None:
            shapes.append((AS_INPUT, ratio_of(self.input_size)))
        native = min(self.native, c.max_size)
        return {
            name: preset_size(ratio, native, c.size_multiple, c.min_size, c.max_size)
            for name, ratio in shapes
        }

    def _fill(self) -> None:
        self.clear()
        self.addItem("Aspect", None)
        if self.capabilities.fixed_sizes:  # e.g. the built-in model: only its own sizes
            self.setEnabled(False)
            self.setToolTip("This backend makes only its own sizes")
            return
        self.setEnabled(True)
        self.setToolTip(f"Shape of the results, at about {self.native} {TIMES} {self.native}")
        for name, (width, height) in self.sizes().items():
            self.addItem(f"{name}   {width} {TIMES} {height}", (width, height))

    def choose(self, name: str) -> None:
        """Pick the preset `name` (as a user does)."""
        for index in range(self.count()):
            if self.itemText(index).split("   ")[0] == name:
                self.setCurrentIndex(index)
                self._chosen(index)
                return
        raise KeyError(name)

    def _chosen(self, index: int) -> None:
        size = self.itemData(index)
        if size is not None:
            self.size_chosen.emit(*size)
        self.setCurrentIndex(0)  # a preset is an action: the boxes hold the size
