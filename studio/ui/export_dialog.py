"""Export chosen images to a folder: format, metadata kept or stripped, file names from a
template (previewed as you type), and optionally a contact sheet. The work runs off the
GUI thread; a failure (read-only folder, disk full) is reported and leaves no files."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QWidget,
)

from studio.core.app import Core
from studio.core.contact_sheet import contact_sheet
from studio.core.export import (
    SUFFIXES,
    TEMPLATE_FIELDS,
    check_template,
    export_images,
    render_name,
)
from studio.core.history import HistoryEntry
from studio.ui.tasks import run_in_background

FORMATS = {"PNG": "png", "JPEG": "jpeg", "WebP": "webp"}


class ExportDialog(QDialog):
    def __init__(self, core: Core, entries: Sequence[HistoryEntry], parent: QWidget | None = None):
        super().__init__(parent)
        self.core, self.entries = core, list(entries)
        self.written: list[Path] = []
        s = core.settings
        self.setWindowTitle(f"Export {len(self.entries)} image{'s' * (len(self.entries) != 1)}")
        self.folder = QLineEdit(s.export_folder or str(Path.home() / "Pictures" / "Studio"))
        browse = QPushButton("Browse…")
        self.format = QComboBox()
        self.format.addItems(list(FORMATS))
        self.format.setCurrentIndex(
            max(
                0,
                list(FORMATS.values()).index(s.export_format)
                if s.export_format in FORMATS.values()
                else 0,
            )
        )
        self.strip = QCheckBox("Strip metadata (prompt and settings)")
        self.template = QLineEdit(s.export_name_template)
        self.template.setToolTip("Fields: " + " ".join(f"{{{f}}}" for f in TEMPLATE_FIELDS))
        self.preview = QLabel()
        self.sheet = QCheckBox("Also a contact sheet")
        self.sheet_format = QComboBox()
        self.sheet_format.addItems(["PNG", "PDF"])
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Export")

        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(browse)
        sheet_row = QHBoxLayout()
        sheet_row.addWidget(self.sheet)
        sheet_row.addWidget(self.sheet_format)
        form = QFormLayout(self)
        form.addRow("Folder", folder_row)
        form.addRow("Format", self.format)
        form.addRow("", self.strip)
        form.addRow("File names", self.template)
        form.addRow("", self.preview)
        form.addRow("", sheet_row)
        form.addRow(self.status)
        form.addRow(self.buttons)

        browse.clicked.connect(self._browse)
        self.template.textChanged.connect(self._show_preview)
        self.format.currentIndexChanged.connect(self._show_preview)
        self.buttons.accepted.connect(self.export)
        self.buttons.rejected.connect(self.reject)
        self._show_preview()

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export to", self.folder.text())
        if folder:
            self.folder.setText(folder)

    def _show_preview(self) -> None:
        try:
            check_template(self.template.text())
        except ValueError as error:
            self.preview.setText(f"<i>{html.escape(str(error))}</i>")
            self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(False)
            return
        first = self.entries[0] if self.entries else None
        name = render_name(
            self.template.text(), first.metadata if first else None, index=1, fallback="image"
        )
        suffix = SUFFIXES[FORMATS[self.format.currentText()]]
        self.preview.setText(f"e.g. {html.escape(name + suffix)}")
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(bool(self.entries))

    def export(self) -> None:
        folder = Path(self.folder.text()).expanduser()
        fmt, template = FORMATS[self.format.currentText()], self.template.text()
        strip = self.strip.isChecked()
        sheet = self.sheet_format.currentText().lower() if self.sheet.isChecked() else ""
        s = self.core.settings
        s.export_folder, s.export_format, s.export_name_template = str(folder), fmt, template
        self.buttons.setEnabled(False)
        self.status.setText("Exporting…")

        def work() -> list[Path]:  # on a worker
            written = export_images(
                self.entries, folder, fmt=fmt, strip_metadata=strip, name_template=template
            )
            if sheet:
                name, n = folder / f"contact-sheet.{sheet}", 1
                while name.exists():  # never replace a file
                    name, n = folder / f"contact-sheet-{n}.{sheet}", n + 1
                try:
                    written.append(contact_sheet(self.entries, name))
                except Exception:
                    for path in written:  # all or nothing, as the images alone are
                        path.unlink(missing_ok=True)
                    raise
            return written

        run_in_background(self.core.engine, self, work, self._done, self._failed)

    def _done(self, written: list[Path]) -> None:
        self.written = written
        self.core.settings.save(self.core.paths.settings_file)
        self.accept()

    def _failed(self, error: Exception) -> None:
        self.status.setText(f"Nothing was exported: {html.escape(str(error))}")
        self.buttons.setEnabled(True)
