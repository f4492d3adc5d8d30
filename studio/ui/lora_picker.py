"""The LoRA picker under the prompt: the library's LoRAs for the chosen model's family,
each with a weight. Ticking one writes `<lora:NAME:WEIGHT>` into the prompt, as A1111
users write it; the prompt stays the one place the choice lives, so editing its text
moves the picker (read with `split_loras`), and a reused prompt brings its LoRAs back."""

from __future__ import annotations

import re

from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QGridLayout,
    QLabel,
    QPlainTextEdit,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from studio.core.addons import WEIGHT_RANGE, split_loras
from studio.ui.model_context import ModelContext

ADD_HINT = "View \u2192 Backends\u2026 \u2192 Add model\u2026"
ROWS_SHOWN = 3  # more scroll


def lora_tag(name: str, weight: float) -> str:
    return f"<lora:{name}:{weight:g}>"


def set_lora(prompt: str, name: str, weight: float | None) -> str:
    """`prompt` with the LoRA `name` at `weight` (None: without it): an existing tag is
    rewritten where it stands, a new one added at the end."""
    tag = re.compile(rf"<lora:\s*{re.escape(name)}\s*(?::[^>]*)?>", re.IGNORECASE)
    if weight is None:
        text = tag.sub("", prompt)
        return re.sub(r"[ \t]{2,}", " ", text).strip(" \t,")
    if tag.search(prompt):
        return tag.sub(lambda _m: lora_tag(name, weight), prompt, count=1)
    return f"{prompt.rstrip()} {lora_tag(name, weight)}".lstrip()


class LoraPicker(QWidget):
    def __init__(self, prompt: QPlainTextEdit, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.prompt = prompt
        self.boxes: dict[str, tuple[QCheckBox, QDoubleSpinBox]] = {}
        self.reason = QLabel(wordWrap=True)
        self.rows = QWidget()
        self.grid = QGridLayout(self.rows)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.scroll = QScrollArea(widgetResizable=True)
        self.scroll.setWidget(self.rows)
        self.scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.reason)
        layout.addWidget(self.scroll)
        self._following = False  # the picker is writing the prompt: no echo back
        prompt.textChanged.connect(self.follow_prompt)
        self.hide()

    def set_context(self, context: ModelContext) -> None:
        """The chosen backend's LoRAs for its model's family (or why there are none)."""
        for box, weight in self.boxes.values():
            box.deleteLater()
            weight.deleteLater()
        self.boxes.clear()
        family = context.family or "this model"
        loras = context.addons_of("lora") if context.capabilities.loras else []
        if not context.capabilities.loras:
            why = "LoRAs: this backend takes none."
        elif not loras:
            why = f"LoRAs: none for {family} in the model library (add one: {ADD_HINT})."
        else:
            why = "LoRAs:"
        self.reason.setText(why)
        for row, info in enumerate(loras):
            box = QCheckBox(info.name)
            box.setToolTip(", ".join(x for x in (info.architecture, info.format, info.hash) if x))
            weight = QDoubleSpinBox(decimals=2, singleStep=0.1, value=1.0)
            weight.setRange(*WEIGHT_RANGE)
            weight.setToolTip("how strongly the LoRA acts (negative: the opposite)")
            box.toggled.connect(lambda _on, n=info.name: self._write(n))
            weight.valueChanged.connect(lambda _v, n=info.name: self._write(n))
            self.grid.addWidget(box, row, 0)
            self.grid.addWidget(weight, row, 1)
            self.boxes[info.name] = (box, weight)
        self.scroll.setVisible(bool(loras))
        row_height = max(24, self.rows.sizeHint().height() // max(1, len(loras)))
        self.scroll.setMaximumHeight(row_height * min(len(loras), ROWS_SHOWN) + 4)
        self.show()
        self.follow_prompt()

    def follow_prompt(self) -> None:
        """Tick the LoRAs the prompt names, at its weights."""
        if self._following:
            return
        named = {lora.model.lower(): lora.weight for lora in split_loras(self.text())[1]}
        for name, (box, weight) in self.boxes.items():
            for widget in (box, weight):
                widget.blockSignals(True)
            box.setChecked(name.lower() in named)
            if name.lower() in named:
                weight.setValue(named[name.lower()])
            for widget in (box, weight):
                widget.blockSignals(False)

    def text(self) -> str:
        return self.prompt.toPlainText()

    def _write(self, name: str) -> None:
        box, weight = self.boxes[name]
        text = set_lora(self.text(), name, weight.value() if box.isChecked() else None)
        if text == self.text():
            return
        self._following = True
        try:  # one edit the prompt's own undo takes back
            cursor = QTextCursor(self.prompt.document())
            cursor.select(QTextCursor.SelectionType.Document)
            cursor.insertText(text)
        finally:
            self._following = False
