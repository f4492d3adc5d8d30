"""Strength: how far results may move from the input picture, with its meaning in words."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSlider, QWidget

LOWEST, HIGHEST = 0.05, 1.0
STEPS = 100  # the slider counts hundredths
MEANINGS = (  # (up to this strength, what it means), in order
    (0.25, "keep the composition: only colours and fine detail change"),
    (0.45, "keep the composition, redraw the details"),
    (0.65, "keep the layout, redraw what is in it"),
    (0.85, "loosely: the colours and rough shapes stay"),
    (HIGHEST, "only the idea: the picture is a faint hint"),
)


def meaning(strength: float) -> str:
    """What a strength does to the picture, in words."""
    return next(text for upto, text in MEANINGS if strength <= upto + 1e-9)


class StrengthSlider(QWidget):
    changed = Signal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(round(LOWEST * STEPS), round(HIGHEST * STEPS))
        self.slider.setToolTip(
            "Strength: how far the results may move from the picture (where no mask says)"
        )
        self.number = QLabel()
        self.number.setMinimumWidth(32)
        self.words = QLabel()
        self.words.setWordWrap(True)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("Strength"))
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.number)
        layout.addWidget(self.words, 2)
        self.slider.valueChanged.connect(self._show)
        self.set_value(0.5)

    def value(self) -> float:
        return self.slider.value() / STEPS

    def set_value(self, strength: float) -> None:
        clamped = max(LOWEST, min(HIGHEST, strength))
        self.slider.setValue(round(clamped * STEPS))
        self._show()

    def _show(self) -> None:
        self.number.setText(f"{self.value():.2f}")
        self.words.setText(meaning(self.value()))
        self.changed.emit(self.value())
