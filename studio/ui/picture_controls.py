"""The input picture panel of the Generate tab: the picture large, with its size, a Clear
button, the mask tools and the strength, shown as far as the chosen backend uses them.

Without a picture it is a drop zone (drop or paste an image, or open one). What the
Generate button sends comes from `request_fields`: the stored picture, the mask at the
picture's size (made from the painted one only then) and the strength.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData, Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.core.app import Core
from studio.core.backend import Capabilities
from studio.core.errors import first_line
from studio.ui.canvas import MAX_BRUSH, MIN_BRUSH, PictureCanvas, Tool
from studio.ui.picture_source import (
    PICTURE_SUFFIXES,
    LoadedPicture,
    Source,
    load_picture,
    picture_in,
)
from studio.ui.strength import StrengthSlider
from studio.ui.tasks import run_in_background

TIMES = "\u00d7"  # the multiplication sign: "4000 x 3000" as people write sizes
TOOLS = (
    (Tool.BRUSH, "Brush", "Paint what to repaint (right button: erase). [ and ] size"),
    (Tool.ERASER, "Eraser", "Erase the mask. [ and ] size"),
    (Tool.RECT, "Rect", "Drag a rectangle to repaint (right button: to keep)"),
    (Tool.LASSO, "Lasso", "Draw around what to repaint (right button: to keep)"),
)


class InputPanel(QWidget):
    picture_changed = Signal()  # a picture came, or went
    mask_changed = Signal()  # the mask went from empty to painted or back
    message = Signal(str)  # what went wrong reading a picture

    def __init__(self, core: Core, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.core = core
        self.picture: LoadedPicture | None = None
        self.capabilities = Capabilities()
        self._masked = False
        self._loading = 0  # counts loads: only the newest one is shown

        self.drop_zone = QLabel(
            "No input picture: generating starts from the prompt alone. Drop a picture "
            "here, paste one (Ctrl+V), or “Use as input” on any result to work from it."
        )
        self.drop_zone.setWordWrap(True)
        self.open_button = QPushButton("Open picture…")
        self.title = QLabel()
        self.clear_button = QPushButton("Clear")
        self.clear_button.setToolTip("Remove the picture: generate from text only")
        self.reason = QLabel(wordWrap=True)
        self.canvas = PictureCanvas()
        self.strength = StrengthSlider()
        self.tool_buttons: dict[Tool, QToolButton] = {}
        self.mask_tools = QWidget()
        self._build_mask_tools()

        empty_row = QHBoxLayout()
        empty_row.addWidget(self.drop_zone, 1)
        empty_row.addWidget(self.open_button)
        self.empty = QWidget()
        self.empty.setLayout(empty_row)
        self.empty.setStyleSheet("QWidget { border: 1px dashed palette(mid); } * { border: none; }")
        header = QHBoxLayout()
        header.addWidget(self.title, 1)
        header.addWidget(self.clear_button)
        self.editor = QWidget()
        editor = QVBoxLayout(self.editor)
        editor.setContentsMargins(0, 0, 0, 0)
        editor.addLayout(header)
        editor.addWidget(self.reason)
        editor.addWidget(self.mask_tools)
        editor.addWidget(self.canvas, 1)
        editor.addWidget(self.strength)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.empty)
        layout.addWidget(self.editor, 1)

        self.setAcceptDrops(True)
        self.open_button.clicked.connect(self.open_picture)
        self.clear_button.clicked.connect(self.clear_picture)
        self.canvas.mask_changed.connect(self._on_mask_edit)
        self._show_state()

    def _build_mask_tools(self) -> None:
        tools = QHBoxLayout()
        tools.setContentsMargins(0, 0, 0, 0)
        for tool, text, tip in TOOLS:
            button = QToolButton(text=text, checkable=True, autoExclusive=True, toolTip=tip)
            button.clicked.connect(lambda _=False, t=tool: self.set_tool(t))
            tools.addWidget(button)
            self.tool_buttons[tool] = button
        self.tool_buttons[Tool.BRUSH].setChecked(True)
        self.size_slider = _slider(MIN_BRUSH, MAX_BRUSH, self.canvas.brush_size, "Brush size ([ ])")
        self.hardness = _slider(0, 100, round(self.canvas.hardness * 100), "Brush hardness")
        self.size_slider.valueChanged.connect(self.canvas.set_brush_size)
        self.canvas.brush_changed.connect(self.size_slider.setValue)
        self.hardness.valueChanged.connect(lambda v: setattr(self.canvas, "hardness", v / 100))
        tools.addWidget(QLabel("Size"))
        tools.addWidget(self.size_slider, 1)
        tools.addWidget(QLabel("Hard"))
        tools.addWidget(self.hardness, 1)
        commands = QHBoxLayout()
        commands.setContentsMargins(0, 0, 0, 0)
        self.command_buttons: dict[str, QToolButton] = {}
        for name, text, tip, slot in (
            ("undo", "Undo", "Undo the last mask edit (Ctrl+Z)", self.canvas.undo),
            ("redo", "Redo", "Redo (Ctrl+Shift+Z)", self.canvas.redo),
            (
                "invert",
                "Invert",
                "Repaint what was kept, keep what was to be repainted",
                self.canvas.invert,
            ),
            (
                "clear",
                "Clear mask",
                "Nothing to repaint: the whole picture is worked on",
                self.canvas.clear_mask,
            ),
        ):
            button = QToolButton(text=text, toolTip=tip)
            button.clicked.connect(slot)
            commands.addWidget(button)
            self.command_buttons[name] = button
        self.show_mask = QToolButton(text="Show mask", checkable=True, checked=True)
        self.show_mask.setToolTip("Show or hide the mask over the picture")
        self.show_mask.toggled.connect(self.canvas.set_mask_visible)
        commands.addWidget(self.show_mask)
        commands.addStretch(1)
        rows = QVBoxLayout(self.mask_tools)
        rows.setContentsMargins(0, 0, 0, 0)
        rows.addLayout(tools)
        rows.addLayout(commands)

    # -- the picture -----------------------------------------------------------------

    def load(self, source: Source) -> None:
        """Take `source` (a file or pixels) as the input picture, read off the GUI thread."""
        self._loading += 1
        ticket = self._loading
        name = source.name if isinstance(source, Path) else "the pasted picture"
        self.message.emit(f"Reading {name}…")
        run_in_background(
            self.core.engine,
            self,
            lambda: load_picture(self.core, source),
            lambda loaded: self._loaded(ticket, loaded),
            lambda error: self._failed(ticket, name, error),
        )

    def _loaded(self, ticket: int, loaded: LoadedPicture) -> None:
        if ticket != self._loading:
            return  # a newer picture was given meanwhile
        self.picture = loaded
        self.canvas.set_picture(loaded.shown, loaded.size)
        self.message.emit("")
        self._show_state()
        self.picture_changed.emit()

    def _failed(self, ticket: int, name: str, error: Exception) -> None:
        if ticket == self._loading:
            why = first_line(error)  # an InputError's says why; others their message
            self.message.emit(f"Cannot use {name} as the input picture: {why}")

    def clear_picture(self) -> None:
        self._loading += 1
        self.picture = None
        self.canvas.set_picture(None)
        self._show_state()
        self.picture_changed.emit()

    def open_picture(self) -> None:
        patterns = " ".join(f"*{s}" for s in sorted(PICTURE_SUFFIXES))
        path, _ = QFileDialog.getOpenFileName(self, "Open a picture", "", f"Pictures ({patterns})")
        if path:
            self.load(Path(path))

    def take_mime(self, data: QMimeData) -> bool:
        """Use the picture a paste or drop carries; False when it carries none."""
        source = picture_in(data)
        if source is None:
            return False
        self.load(source)
        return True

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if picture_in(event.mimeData()) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        if self.take_mime(event.mimeData()):
            event.acceptProposedAction()

    # -- what the backend can use ----------------------------------------------------

    def set_capabilities(self, capabilities: Capabilities) -> None:
        self.capabilities = capabilities
        if capabilities.strength:
            self.strength.set_value(capabilities.default_strength or 0.5)
        self._show_state()

    def usable(self) -> bool:
        """A picture the chosen backend takes."""
        return self.picture is not None and self.capabilities.image

    def masked(self) -> bool:
        """A mask painted, and a backend that takes it."""
        return self.usable() and self.capabilities.mask and self._masked

    def _strength_applies(self) -> bool:
        c = self.capabilities
        return c.strength and (not self.masked() or c.strength_under_mask)

    def _show_state(self) -> None:
        c, has = self.capabilities, self.picture is not None
        self.empty.setVisible(not has)
        self.editor.setVisible(has)
        if self.picture is not None:
            size = self.picture.size
            self.title.setText(f"{self.picture.name}   {size.width()} {TIMES} {size.height()}")
        reasons = []
        if has and not c.image:
            reasons.append(
                "This backend makes images from text only: Generate leaves the picture out."
            )
        elif has and not c.mask:
            reasons.append("This backend takes no mask: it works on the whole picture.")
        if has and c.image and not c.strength:
            reasons.append("This backend sets its own strength.")
        elif has and c.strength and self.masked() and not c.strength_under_mask:
            reasons.append("With a mask, this backend repaints the masked part fully.")
        self.reason.setText(" ".join(reasons))
        self.reason.setVisible(bool(reasons))
        self.mask_tools.setVisible(has and c.image and c.mask)
        self.canvas.setEnabled(has and c.image and c.mask)
        self.strength.setVisible(has and self._strength_applies())
        self._show_undo()

    def set_tool(self, tool: Tool) -> None:
        self.canvas.tool = tool
        self.tool_buttons[tool].setChecked(True)
        self.canvas.update()

    def _on_mask_edit(self) -> None:
        mask = self.canvas.mask
        masked = mask is not None and not mask.is_empty()
        self._show_undo()
        if masked != self._masked:
            self._masked = masked
            self._show_state()
            self.mask_changed.emit()

    def _show_undo(self) -> None:
        mask = self.canvas.mask
        self.command_buttons["undo"].setEnabled(mask is not None and mask.can_undo())
        self.command_buttons["redo"].setEnabled(mask is not None and mask.can_redo())

    # -- what Generate sends ---------------------------------------------------------

    def request_fields(self) -> dict[str, object]:
        """The picture, the mask (at the picture's size, made now) and the strength, as
        far as the backend takes them; nothing without a usable picture."""
        if not self.usable() or self.picture is None:
            return {}
        fields: dict[str, object] = {"image": self.picture.stored}
        if self.masked() and self.canvas.mask is not None:
            size = self.picture.size
            mask = self.canvas.mask.full_size(size.width(), size.height())
            fields["mask"] = self.core.add_input(mask, mask=True)
        if self._strength_applies():
            fields["strength"] = self.strength.value()
        return fields


def _slider(low: int, high: int, value: int, tip: str) -> QSlider:
    slider = QSlider(Qt.Orientation.Horizontal, minimum=low, maximum=high, value=value)
    slider.setToolTip(tip)
    slider.setMinimumWidth(48)
    return slider
