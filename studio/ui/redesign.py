"""Redesign a room, as one flow: drop a photo of the room, press "Redesign room", pick a
room type and a style, Generate.

The button sets what a redesign needs on the controls that already exist, so the user
sees (and can change) every setting it made: Keep structure on where a ControlNet fits
the model (its lines hold walls and furniture, so the strength can be high enough to
restyle), else a strength low enough to keep the layout; four variants. The bar then
says what is left to pick, and when all is set, that Generate is next.
"""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

from studio.ui.generation_settings import GenerationSettings
from studio.ui.picture_controls import InputPanel
from studio.ui.structure_controls import StructureControls
from studio.ui.style_picker import StylePicker

VARIANTS = 4
STRENGTH_WITH_STRUCTURE = 0.75  # the ControlNet holds the lines: restyle freely
STRENGTH_KEEPING_LAYOUT = 0.55  # no ControlNet: the picture itself must hold the layout
ROOM_GROUP, STYLE_GROUP = "Room", "Interior"  # the starter styles' groups


class RedesignBar(QWidget):
    """The "Redesign room" button and what to do next, under the input picture's title."""

    def __init__(
        self,
        picture: InputPanel,
        structure: StructureControls,
        settings: GenerationSettings,
        styles: StylePicker,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.picture, self.structure = picture, structure
        self.settings, self.styles = settings, styles
        self.active = False  # pressed for this picture
        self.button = QPushButton("Redesign room")
        self.button.setToolTip(
            "Restyle this room photo: keeps its layout, makes four variants; then pick a "
            "room type and a style under the prompt, and Generate"
        )
        self.hint = QLabel(wordWrap=True)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.button)
        row.addWidget(self.hint, 1)
        self.button.clicked.connect(self.start)
        picture.picture_changed.connect(self._on_new_picture)
        styles.changed.connect(self._show)
        structure.switch.toggled.connect(lambda _on: self._show())
        settings.count.valueChanged.connect(lambda _n: self._show())
        settings.capabilities_changed.connect(lambda _c: self._show())
        self._show()

    def start(self) -> None:
        """Set the controls for a redesign of the picture on the canvas."""
        self.active = True
        if self.structure.switch.isEnabled():  # a ControlNet for this model's family
            self.structure.switch.setChecked(True)
            self._set_strength(STRENGTH_WITH_STRUCTURE)
        else:
            self._set_strength(STRENGTH_KEEPING_LAYOUT)
        self.settings.count.setValue(min(VARIANTS, self.settings.count.maximum()))
        self._show()
        next_group = STYLE_GROUP if self._picked(ROOM_GROUP) else ROOM_GROUP
        button = self.styles.buttons.get(next_group)
        if button is not None:
            button.setFocus()  # the next step, a keypress away (Space opens its menu)

    def _set_strength(self, value: float) -> None:
        if self.settings.capabilities.strength:
            self.picture.strength.set_value(value)

    def _picked(self, group: str) -> list[str]:
        return [s.name for s in self.styles.picked() if s.group == group]

    def _on_new_picture(self) -> None:
        self.active = False
        self._show()

    def _show(self) -> None:
        capabilities = self.settings.capabilities  # the window's panels follow it too
        takes = capabilities.image
        self.button.setEnabled(takes)
        if not takes:
            self.hint.setText("This backend makes images from text only.")
            return
        if not self.active:
            self.hint.setText("Restyle this room, keeping its layout.")
            return
        if self.structure.active():
            how = "Keep structure is on: the ControlNet holds the walls and furniture."
        elif capabilities.strength:
            how = (
                f"No ControlNet for this model: strength {STRENGTH_KEEPING_LAYOUT:g} keeps "
                "the layout (add a ControlNet to hold it firmly)."
            )
        else:
            how = "This backend sets its own strength."
        missing = [
            f"{what} ({group})"
            for group, what in ((ROOM_GROUP, "a room type"), (STYLE_GROUP, "a style"))
            if group in self.styles.buttons and not self._picked(group)
        ]
        if missing:
            step = f"Now pick {' and '.join(missing)} under the prompt, then Generate."
        else:
            step = f"{self.settings.count.value()} variants: press Generate (Ctrl+Enter)."
        self.hint.setText(f"{how} {step}")
