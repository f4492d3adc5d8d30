"""The style picker under the prompt: a menu of styles per group (interior, art, room
type, …), the picked ones as chips in the order picked (the order they are applied in),
and the final prompt that will be sent, updated as the prompt or the picks change.

The styles are the user's styles.csv (`studio.core.styles`), read again whenever a menu
opens, so edits made in another program show up without a restart. A prompt taken back
from the history is already styled: `clear()` then drops the picks, so that nothing is
applied twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QObject, QPoint, QRect, QSize, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLayout,
    QLayoutItem,
    QLineEdit,
    QMenu,
    QPlainTextEdit,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.core.styles import Style, StyleError, StyleLibrary, apply_styles

UNGROUPED = "Other"  # the menu of styles the file puts in no group


class StylePicker(QWidget):
    changed = Signal()  # the picks changed
    message = Signal(str)  # something to tell the user (a file that cannot be read)

    def __init__(self, library: StyleLibrary, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.library = library
        self._styles: dict[str, Style] = {}
        self._picked: list[str] = []  # names, in the order picked
        self._prompt: QPlainTextEdit | None = None
        self._negative: QLineEdit | None = None
        self.menus_row = QHBoxLayout()
        self.menus_row.setSpacing(4)
        self.buttons: dict[str, QToolButton] = {}  # group -> its menu button
        self.edit_button = QToolButton(text="Edit styles…")
        self.edit_button.setToolTip(f"Open {library.path.name} (A1111's format) to edit it")
        self.edit_button.clicked.connect(self.edit_styles)
        self.chips = FlowLayout()
        self.final_prompt = _preview("the prompt sent: yours with the styles applied")
        self.final_negative = _preview("the negative prompt sent")
        self.preview = QWidget()
        self.preview_form = QFormLayout(self.preview)
        self.preview_form.setContentsMargins(0, 0, 0, 0)
        self.preview_form.addRow("Final prompt", self.final_prompt)
        self.preview_form.addRow("Final negative", self.final_negative)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(self.menus_row)
        layout.addLayout(self.chips)
        layout.addWidget(self.preview)
        self.reload()
        self._show()

    # -- what the request gets ------------------------------------------------------------

    def picked(self) -> list[Style]:
        return [self._styles[name] for name in self._picked if name in self._styles]

    def styled(self, prompt: str, fields: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The final prompt and the request fields with the picked styles applied: the
        negative prompt (where the backend takes one) and `options["styles"]`."""
        styles = self.picked()
        if not styles:
            return prompt, fields
        negative = str(fields.get("negative_prompt", ""))
        prompt, styled_negative = apply_styles(styles, prompt, negative)
        fields = dict(fields)
        if self._negative is None or self._negative.isEnabled():
            fields["negative_prompt"] = styled_negative
        fields["options"] = {
            **dict(fields.get("options") or {}),
            "styles": [s.name for s in styles],
        }
        return prompt, fields

    # -- picking ----------------------------------------------------------------------

    def pick(self, names: Iterable[str]) -> None:
        """Pick these styles (after those picked already); unknown names are left out."""
        for name in names:
            if name in self._styles and name not in self._picked:
                self._picked.append(name)
        self._show()

    def unpick(self, name: str) -> None:
        if name in self._picked:
            self._picked.remove(name)
            self._show()

    def clear(self) -> None:
        if self._picked:
            self._picked.clear()
            self._show()

    def follow(self, prompt: QPlainTextEdit, negative: QLineEdit) -> None:
        """Show the final prompt made from these boxes, as they change."""
        self._prompt, self._negative = prompt, negative
        prompt.textChanged.connect(self._show_final)
        negative.textChanged.connect(self._show_final)
        negative.installEventFilter(self)  # a backend without negative prompts disables it
        self._show_final()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self._negative and event.type() == QEvent.Type.EnabledChange:
            self._show_final()
        return super().eventFilter(watched, event)

    # -- the styles file -----------------------------------------------------------------

    def reload(self) -> None:
        """Read the styles file again (a bad file: said, and the last styles kept)."""
        try:
            styles = self.library.styles()
        except StyleError as error:
            self.message.emit(f"Cannot read the styles: {error}")
            return
        self._styles = {s.name: s for s in styles}
        groups: dict[str, None] = {}
        for style in styles:
            groups[style.group or UNGROUPED] = None
        if list(groups) != list(self.buttons):
            self._build_buttons(list(groups))
        if any(name not in self._styles for name in self._picked):
            self._picked = [name for name in self._picked if name in self._styles]
            self._show()

    def edit_styles(self) -> None:
        """Open the styles file in the program the system uses for .csv files."""
        try:
            path = self.library.ensure()
        except StyleError as error:
            self.message.emit(str(error))
            return
        if not QDesktopServices.openUrl(QUrl.fromLocalFile(str(path))):
            self.message.emit(f"Edit your styles in {path}; they are read again when used.")

    def import_styles(self) -> None:
        source, _ = QFileDialog.getOpenFileName(
            self, "Import styles", str(Path.home()), "Styles (*.csv)"
        )
        if not source:
            return
        try:
            added, replaced = self.library.import_file(Path(source))
        except StyleError as error:
            self.message.emit(f"Cannot import styles: {error}")
            return
        self.reload()
        self.message.emit(f"Styles imported: {len(added)} added, {len(replaced)} replaced.")

    def export_styles(self) -> None:
        out, _ = QFileDialog.getSaveFileName(
            self, "Export styles", str(Path.home() / "styles.csv"), "Styles (*.csv)"
        )
        if not out:
            return
        try:
            count = self.library.export(Path(out))
        except StyleError as error:
            self.message.emit(f"Cannot export styles: {error}")
            return
        self.message.emit(f"{count} styles exported to {out}.")

    def add_file_actions(self, menu: QMenu) -> None:
        """Import and Export in the window's File menu."""
        menu.addAction("&Import styles…").triggered.connect(self.import_styles)
        menu.addAction("E&xport styles…").triggered.connect(self.export_styles)
        menu.addSeparator()

    # -- showing -----------------------------------------------------------------------

    def _build_buttons(self, groups: list[str]) -> None:
        while self.menus_row.count():
            item = self.menus_row.takeAt(0)
            if item.widget() is not None:
                item.widget().setParent(None)
        self.buttons = {}
        for group in groups:
            button = QToolButton(text=group)
            button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
            button.setToolTip(f"{group} styles: pick one or several")
            menu = QMenu(button)
            menu.aboutToShow.connect(lambda g=group, m=menu: self._fill_menu(g, m))
            button.setMenu(menu)
            self.buttons[group] = button
            self.menus_row.addWidget(button)
        self.menus_row.addStretch(1)
        self.menus_row.addWidget(self.edit_button)

    def _fill_menu(self, group: str, menu: QMenu) -> None:
        self.reload()  # the file may have been edited meanwhile
        menu.clear()
        for style in self._styles.values():
            if (style.group or UNGROUPED) != group:
                continue
            action = menu.addAction(style.name)
            action.setCheckable(True)
            action.setChecked(style.name in self._picked)
            action.setToolTip(style.prompt)
            action.toggled.connect(
                lambda on, n=style.name: self.pick([n]) if on else self.unpick(n)
            )
        menu.setToolTipsVisible(True)

    def _show(self) -> None:
        while self.chips.count():
            item = self.chips.takeAt(0)
            if item is not None and item.widget() is not None:
                item.widget().hide()
                item.widget().deleteLater()
        for style in self.picked():
            chip = QToolButton(text=f"{style.name}  ✕")
            chip.setToolTip(f"{style.prompt}\nNegative: {style.negative_prompt or '-'}\n(remove)")
            chip.clicked.connect(lambda _=False, n=style.name: self.unpick(n))
            self.chips.addWidget(chip)
        for group, button in self.buttons.items():
            count = sum((s.group or UNGROUPED) == group for s in self.picked())
            button.setText(f"{group} ({count})" if count else group)
        self._show_final()
        self.changed.emit()

    def _show_final(self) -> None:
        styles = self.picked()
        self.preview.setVisible(bool(styles))
        if not styles or self._prompt is None:
            return
        takes_negative = self._negative is None or self._negative.isEnabled()
        negative = self._negative.text() if self._negative is not None else ""
        prompt, negative = apply_styles(styles, self._prompt.toPlainText(), negative)
        self.final_prompt.setText(prompt)
        self.final_negative.setText(negative if takes_negative else "")
        self.preview_form.setRowVisible(self.final_negative, takes_negative and bool(negative))


def _preview(tip: str) -> QLabel:
    """Read-only, wrapped (the whole prompt is seen), selectable to copy."""
    label = QLabel(wordWrap=True)
    label.setToolTip(tip)
    label.setTextFormat(Qt.TextFormat.PlainText)  # a prompt is never markup
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class FlowLayout(QLayout):
    """Widgets left to right, wrapping onto new lines (the chips)."""

    def __init__(self, parent: QWidget | None = None, spacing: int = 4) -> None:
        super().__init__(parent)
        self._items: list[QLayoutItem] = []
        self._gap = spacing
        self.setContentsMargins(0, 0, 0, 0)

    def addItem(self, item: QLayoutItem) -> None:
        self._items.append(item)

    def count(self) -> int:
        return len(self._items)

    def itemAt(self, index: int) -> QLayoutItem | None:
        return self._items[index] if 0 <= index < len(self._items) else None

    def takeAt(self, index: int) -> QLayoutItem | None:
        return self._items.pop(index) if 0 <= index < len(self._items) else None

    def expandingDirections(self) -> Qt.Orientation:
        return Qt.Orientation(0)

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        return self._place(QRect(0, 0, width, 0), move=False)

    def setGeometry(self, rect: QRect) -> None:
        super().setGeometry(rect)
        self._place(rect, move=True)

    def sizeHint(self) -> QSize:
        return self.minimumSize()

    def minimumSize(self) -> QSize:
        size = QSize()
        for item in self._items:
            size = size.expandedTo(item.minimumSize())
        return size

    def _place(self, rect: QRect, move: bool) -> int:
        """Lay the items out in `rect` (or only measure); returns the height used."""
        x, y, line = rect.x(), rect.y(), 0
        for item in self._items:
            hint = item.sizeHint()
            if x > rect.x() and x + hint.width() > rect.right() + 1:
                x, y, line = rect.x(), y + line + self._gap, 0
            if move:
                item.setGeometry(QRect(QPoint(x, y), hint))
            x += hint.width() + self._gap
            line = max(line, hint.height())
        return y + line - rect.y()
