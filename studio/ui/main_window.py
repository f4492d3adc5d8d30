"""The main window (a minimal one until the desktop app lands)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QMainWindow, QVBoxLayout, QWidget

from studio.core.app import Core


class MainWindow(QMainWindow):
    def __init__(self, core: Core) -> None:
        super().__init__()
        self.core = core
        self.setWindowTitle("Studio")
        self.resize(960, 640)
        records = core.registry.records()
        backends = ", ".join(r.id for r in records) or "none installed yet"
        summary = QLabel(
            f"<h2>Studio</h2>"
            f"<p>Backends: {backends}</p>"
            f"<p>Images in history: {core.history.count():,}</p>"
            f"<p>Data folder: {core.paths.data}</p>"
        )
        summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        summary.setAlignment(Qt.AlignmentFlag.AlignCenter)
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.addWidget(summary)
        self.setCentralWidget(body)
