"""The main window: the prompt canvas, and the history gallery beside it.

Type a prompt, Ctrl+Enter (or Generate), watch the previews, Esc cancels; the best
candidates are shown, best first, and saved to the history. Activating an image in the
gallery brings back its prompt and settings. An input picture (dropped, pasted, or a
result's "Use as input") sits on the canvas with its mask and strength.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from PySide6.QtCore import QByteArray, QMimeData, Qt, QTimer
from PySide6.QtGui import (
    QActionGroup,
    QCloseEvent,
    QColor,
    QDragEnterEvent,
    QDropEvent,
    QGuiApplication,
    QImage,
    QKeySequence,
    QPalette,
    QShortcut,
)
from PySide6.QtWidgets import (
    QApplication,
    QBoxLayout,
    QDockWidget,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from studio.core.app import LOG_FILE, Core
from studio.core.history import HistoryEntry
from studio.core.inputs import InputError
from studio.core.problem_report import write_report
from studio.core.prompt_reading import PromptReading, read_prompt
from studio.core.request import RequestError
from studio.core.styles import StyleLibrary
from studio.interop import ParsedMetadata
from studio.interop import read as read_metadata
from studio.ui.backends_panel import BackendsDialog
from studio.ui.bridge import EngineBridge
from studio.ui.candidate_tile import CandidateTile
from studio.ui.compare_view import original_of
from studio.ui.drops import dropped_file
from studio.ui.export_dialog import ExportDialog
from studio.ui.gallery import GalleryPanel
from studio.ui.generation_settings import GenerationSettings
from studio.ui.job_progress import JobProgress
from studio.ui.lora_picker import LoraPicker
from studio.ui.model_context import ModelContext, ModelContextWatcher
from studio.ui.picture_controls import InputPanel
from studio.ui.prompt_editor import PromptEditor
from studio.ui.queue_panel import QueuePanel
from studio.ui.redesign import RedesignBar
from studio.ui.structure_controls import StructureControls
from studio.ui.style_picker import StylePicker
from studio.ui.tasks import run_in_background
from studio.ui.undo_delete import UndoBar
from studio.ui.viewer import Viewer

TILE = 192
SMALL_TILE = 144  # beside an input picture, two by two
WORD_CHECK_DELAY_MS = 300  # after a pause in typing
COLUMNS = 4
PROMPT_LINES = 8  # beside a picture the prompt grows with its text up to this, then scrolls


class StatusLine(QLabel):
    """A wrapped line of status that takes no height while it is empty."""

    def __init__(self) -> None:
        super().__init__()
        self.setWordWrap(True)
        self.hide()

    def setText(self, text: str) -> None:
        super().setText(text)
        self.setVisible(bool(text))


class MainWindow(QMainWindow):
    def __init__(self, core: Core) -> None:
        super().__init__()
        self.core = core
        self.job_id: int | None = None
        self.closed = False
        self.bridge = EngineBridge(core.engine, self)
        self.setWindowTitle("Studio")
        self.resize(1280, 760)

        self.prompt = PromptEditor()
        self.prompt.setPlaceholderText("three yellow hearts on a black background")
        self.generate_button = QPushButton("Generate")
        self.generate_button.setToolTip("Ctrl+Enter")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Esc")
        self.cancel_button.setEnabled(False)
        self.progress = JobProgress()
        self.message = StatusLine()
        self.unknown_label = StatusLine()
        self.tiles = [CandidateTile(TILE) for _ in range(COLUMNS)]

        self.buttons = QBoxLayout(QBoxLayout.Direction.TopToBottom)
        self.buttons.addWidget(self.generate_button)
        self.buttons.addWidget(self.cancel_button)
        self.buttons.addStretch(1)
        self.settings_panel = GenerationSettings(core)
        top = QHBoxLayout()
        self.lora_picker = LoraPicker(self.prompt)
        self.prompt_column = QVBoxLayout()
        self.prompt_column.addWidget(self.prompt, 1)
        self.prompt_column.addWidget(self.lora_picker)
        self.style_picker = StylePicker(StyleLibrary.in_folder(core.paths.data))
        self.style_picker.follow(self.prompt, self.settings_panel.negative)
        self.prompt_column.addWidget(self.style_picker)  # its styles and the final prompt
        self.settings_row = QBoxLayout(QBoxLayout.Direction.LeftToRight)
        self.settings_row.addWidget(self.settings_panel)
        self.settings_row.addLayout(self.buttons)
        self.side = QVBoxLayout()
        self.side.addLayout(self.settings_row)
        self.side.addStretch(1)
        top.addLayout(self.prompt_column, 1)
        top.addLayout(self.side)
        self.tile_box = QWidget()
        self.tile_grid = QGridLayout(self.tile_box)
        self.tile_grid.setContentsMargins(0, 0, 0, 0)
        self.tile_grid.setRowStretch(2, 1)  # beside a picture: the tiles stay at its top
        self.input_panel = InputPanel(core)
        self.prompt.take_picture = self.input_panel.take_mime  # pasted pixels
        self.structure = StructureControls(core)  # under the picture: keep its lines
        self.input_panel.editor.layout().addWidget(self.structure)
        self.redesign = RedesignBar(
            self.input_panel, self.structure, self.settings_panel, self.style_picker
        )
        self.input_panel.editor.layout().insertWidget(1, self.redesign)  # under its title
        # Without a picture: its drop zone above a row of tiles (see _arrange_canvas).
        self.work = QVBoxLayout()
        self.work.addWidget(self.input_panel)
        self.work.addWidget(self.tile_box)
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.addLayout(top)
        layout.addWidget(self.progress)
        layout.addWidget(self.unknown_label)
        layout.addWidget(self.message)
        layout.addLayout(self.work)
        layout.addStretch(1)
        self.body_layout = layout
        self.prompt.document().documentLayout().documentSizeChanged.connect(self._fit_prompt)
        self._arrange_canvas()
        self.viewer = Viewer()
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(body, "Generate")
        self.tabs.addTab(self.viewer, "Viewer")
        self.setCentralWidget(self.tabs)
        self.viewer.reuse_settings.connect(self.reuse_settings)
        self.viewer.reuse_prompt.connect(self.reuse_prompt)
        self.viewer.vary.connect(self.vary)
        self.viewer.use_as_input.connect(self.use_as_input)
        store = core.history
        self.viewer.lineage = lambda entry: (store.made_from(entry), store.made_with(entry))
        self.viewer.original = lambda entry: original_of(store.inputs, entry)
        self.viewer.delete.connect(self.delete_entry)
        for tile in self.tiles:
            tile.opened.connect(self.open_in_viewer)
            tile.use_as_input.connect(self.use_as_input)
            tile.vary.connect(self.vary)
        self.viewer.export.connect(lambda entry: ExportDialog(self.core, [entry], self).open())
        self.gallery = GalleryPanel(core)
        self.gallery.entry_activated.connect(self.open_in_viewer)
        self.gallery.use_as_input.connect(self.use_as_input)
        self.gallery.vary.connect(self.vary)
        history = QDockWidget("History", self)
        history.setObjectName("history")
        history.setWidget(self.gallery)
        history.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
        )
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, history)
        self.queue = QueuePanel(core.engine, self.bridge)
        queue = QDockWidget("Queue", self)
        queue.setObjectName("queue")
        queue.setWidget(self.queue)
        queue.setFeatures(history.features())
        self.splitDockWidget(history, queue, Qt.Orientation.Vertical)
        self.resizeDocks([history], [3 * 140 + 40], Qt.Orientation.Horizontal)  # 3 columns
        self.resizeDocks([history, queue], [560, 140], Qt.Orientation.Vertical)

        # not connected directly: clicked(bool) would arrive as `image`
        self.generate_button.clicked.connect(lambda: self.generate())
        self.cancel_button.clicked.connect(self.cancel)
        QShortcut(QKeySequence("Ctrl+Return"), self, activated=self.generate)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, activated=self.cancel)
        QShortcut(QKeySequence.StandardKey.Paste, self, activated=self.paste_picture)
        self.input_panel.message.connect(self.message.setText)
        self.style_picker.message.connect(self.message.setText)
        self.input_panel.picture_changed.connect(self._arrange_canvas)
        self.input_panel.picture_changed.connect(self._follow_picture)
        self.input_panel.mask_changed.connect(self._follow_picture)
        self.settings_panel.capabilities_changed.connect(self._on_capabilities)
        self.model_context = ModelContextWatcher(core, self.settings_panel)
        self.model_context.changed.connect(self._on_model_context)
        self.bridge.progress.connect(self._on_progress)
        self.bridge.preview.connect(self._on_preview)
        self.bridge.results.connect(self._on_results)
        self.bridge.failed.connect(self._on_failed)
        self.bridge.state_changed.connect(self._on_state)
        self._word_check = QTimer(self, singleShot=True, interval=WORD_CHECK_DELAY_MS)
        self._word_check.timeout.connect(self._check_words)
        self.prompt.textChanged.connect(self._word_check.start)
        self.settings_panel.backend.currentIndexChanged.connect(self._word_check.start)
        self._build_menus(history, queue)
        self.setAcceptDrops(True)
        self.device = ""
        self.summary = QLabel()
        self.statusBar().addPermanentWidget(self.summary, 1)
        self.undo_bar = UndoBar(self.gallery.pending)
        self.statusBar().addPermanentWidget(self.undo_bar)
        self.gallery.pending.changed.connect(self._show_summary)
        self.bridge.queue_changed.connect(lambda *_: self._show_summary())
        self._restore_layout()
        self._show_summary()
        if core.recovery is not None:  # said once the window is up, without blocking it
            self.message.setText(core.recovery.message())
            QTimer.singleShot(0, self._tell_recovery)

    def report_problem(self) -> None:
        """Save the log, versions and backends in a zip; prompts only if the user says so."""
        suggested = str(Path.home() / "studio-report.zip")
        out, _ = QFileDialog.getSaveFileName(
            self, "Save a problem report", suggested, "Zip (*.zip)"
        )
        if not out:
            return
        answer = QMessageBox.question(
            self,
            "Include prompts?",
            "The log may mention your prompts. Keep them in the report? (No replaces them "
            "with [prompt].)",
            defaultButton=QMessageBox.StandardButton.No,
        )
        with_prompts = answer == QMessageBox.StandardButton.Yes
        run_in_background(
            self.core.engine,
            self,
            lambda: write_report(self.core, Path(out), with_prompts),
            lambda path: self.message.setText(f"Problem report saved: {path}"),
            lambda error: self.message.setText(f"Cannot save the report: {error}"),
        )

    def show_uncaught(self, where: str, message: str) -> None:
        """An exception nobody caught (see crash_hooks): said, and the window goes on."""
        log_file = self.core.paths.logs / LOG_FILE
        self.message.setText(
            f"Something went wrong in {where}: {message}. Studio carries "
            f"on; the details are in {log_file}."
        )

    def _tell_recovery(self) -> None:
        box = QMessageBox(
            QMessageBox.Icon.Warning, "History recovered", self.core.recovery.message(), parent=self
        )
        box.open()
        self.recovery_box = box

    # -- images dropped in: read their settings -----------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if _dropped_image(event.mimeData()) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        path = _dropped_image(event.mimeData())
        if path is not None:
            event.acceptProposedAction()
            self.read_settings_from(path)

    def read_settings_from(self, path: Path) -> None:
        """Take the prompt and settings an image file carries (ours, A1111's `parameters`,
        ComfyUI, InvokeAI); read off the GUI thread, the file may be anything."""
        self.message.setText(f"Reading {path.name}…")
        run_in_background(
            self.core.engine,
            self,
            lambda: read_metadata(path),
            lambda found: self._apply_found(path, found),
            lambda error: self.message.setText(f"Cannot read {path.name}: {error}"),
        )

    def _apply_found(self, path: Path, found: ParsedMetadata) -> None:
        try:
            request = found.to_request(backend=self.settings_panel.backend_id())
        except RequestError:
            self.message.setText(f"No generation settings found in {path.name}.")
            return
        if found.source_format != "studio":
            request = request.replace(backend=self.settings_panel.backend_id())
        self.settings_panel.apply_request(request)
        self.reuse_prompt(request.prompt)
        self.message.setText(f"Settings read from {path.name} ({found.source_format}).")

    def _show_summary(self) -> None:
        if self.core.history.closed:  # a last queued engine signal, after the app closed
            return
        backend = self.settings_panel.backend_id() or "no backend installed"
        device = f" on {self.device}" if self.device else ""
        waiting = len(self.core.engine.queued())
        parts = [
            f"{backend}{device}",
            f"queue: {waiting} waiting",
            f"history: {self.core.history.count():,} images",
        ]
        memory = process_memory_mb()
        worker = self.core.engine.executor.pid  # a worker process holds the model
        worker_memory = process_memory_mb(worker) if worker else 0.0
        if memory and worker_memory:
            parts.append(f"memory: {memory:,.0f} MB + {worker_memory:,.0f} MB (generation)")
        elif memory:
            parts.append(f"memory: {memory:,.0f} MB")
        self.summary.setText("   ·   ".join(parts))
        self.summary.setToolTip(f"Data folder: {self.core.paths.data}")

    def _build_menus(self, *docks: QDockWidget) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self.style_picker.add_file_actions(file_menu)
        quit_action = file_menu.addAction("&Quit")
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        view = self.menuBar().addMenu("&View")
        for index, name in enumerate(("&Generate", "&Viewer")):
            action = view.addAction(name)
            action.setShortcut(QKeySequence(f"Alt+{index + 1}"))
            action.triggered.connect(lambda _=False, i=index: self.tabs.setCurrentIndex(i))
        view.addSeparator()
        for dock in docks:  # a closed dock comes back from here
            view.addAction(dock.toggleViewAction())
        themes = view.addMenu("&Theme")
        group = QActionGroup(self)
        for name in THEMES:
            action = themes.addAction(name.capitalize())
            action.setCheckable(True)
            action.setChecked(name == self.core.settings.theme)
            action.triggered.connect(lambda _=False, n=name: self.set_theme(n))
            group.addAction(action)
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction("&Report a problem…").triggered.connect(self.report_problem)
        backends = view.addAction("&Backends…")
        backends.triggered.connect(lambda: BackendsDialog(self.core, self).open())
        find = view.addAction("&Search history")
        find.setShortcut(QKeySequence.StandardKey.Find)
        find.triggered.connect(lambda: self.gallery.search.setFocus())

    def set_theme(self, name: str) -> None:
        """Light, dark, or whatever the system uses (and follows it when it changes)."""
        self.core.settings.theme = name if name in THEMES else "system"
        apply_theme(self.core.settings.theme)

    # -- the window's layout, kept between sessions --------------------------------------

    def _restore_layout(self) -> None:
        s = self.core.settings
        if s.window_geometry:
            self.restoreGeometry(QByteArray.fromBase64(s.window_geometry.encode("ascii")))
        if s.window_state:
            self.restoreState(QByteArray.fromBase64(s.window_state.encode("ascii")))

    def closeEvent(self, event: QCloseEvent) -> None:
        self.closed = True  # results already queued to this window go nowhere now
        self.gallery.pending.commit()  # deletes waiting for an undo happen now
        s = self.core.settings
        s.window_geometry = bytes(self.saveGeometry().toBase64().data()).decode("ascii")
        s.window_state = bytes(self.saveState().toBase64().data()).decode("ascii")
        with contextlib.suppress(OSError):  # a read-only folder must not keep the window open
            s.save(self.core.paths.settings_file)
        super().closeEvent(event)

    def generate(self, image: Path | None = None) -> None:
        """Generate from the prompt and settings; `image`: a picture to work from."""
        try:
            fields = self.settings_panel.request_fields()
            if image is not None:
                fields["image"] = self.core.add_input(image)
            else:  # the canvas's picture, mask and strength, as far as the backend takes them
                fields |= self.input_panel.request_fields()
                fields |= self.structure.request_fields()
            prompt, fields = self.style_picker.styled(self.prompt.toPlainText(), fields)
            request = self.core.request(prompt, **fields)
        except (RequestError, InputError) as error:
            self.message.setText(f"Cannot generate: {error}")
            return
        if not request.backend:
            self.message.setText("No generation backend is installed.")
            return
        self.message.setText("")
        self.progress.clear()
        job = self.core.engine.submit(request)
        self.prompt.remember(self.prompt.toPlainText())  # as typed, before its styles
        shown = self.core.engine.job(self.job_id) if self.job_id is not None else None
        if shown is None or shown.state.finished:  # else it waits its turn in the queue
            self.job_id = job.id
            self.cancel_button.setEnabled(True)
        self.settings_panel.remember()

    def _check_words(self) -> None:
        backend_id, prompt = self.settings_panel.backend_id(), self.prompt.toPlainText()
        if not backend_id:
            return

        run_in_background(  # the first call may import the plugin
            self.core.engine,
            self,
            lambda: read_prompt(self.core.registry.get(backend_id), prompt),
            lambda reading: self._on_prompt_read(backend_id, reading),
            lambda _error: None,  # a broken backend: generating will say what is wrong
        )

    def _on_prompt_read(self, backend_id: str, reading: PromptReading) -> None:
        """Mark and name the words the model ignores: unknown, or past its limit."""
        if (backend_id, reading.prompt) != (
            self.settings_panel.backend_id(),
            self.prompt.toPlainText(),
        ):
            return  # the prompt or backend changed meanwhile: a newer check is coming
        self.prompt.unknown.set_words({w.lower() for w in reading.unknown})
        self.prompt.unknown.set_cut(reading.prompt, reading.cut.at if reading.cut else None)
        notes = []
        if reading.unknown:
            notes.append(f"Not known to this model (ignored): {', '.join(reading.unknown)}")
        if reading.cut:
            notes.append(
                f"This model reads only the first {reading.cut.limit}; "
                f"the rest is ignored, from “{reading.ignored()}”"
            )
        self.unknown_label.setText("\n".join(notes))

    def cancel(self) -> None:
        if self.job_id is not None:
            self.core.engine.cancel(self.job_id)

    def _on_state(self, job_id: int, state: str) -> None:
        if state in ("loading", "running") and job_id != self.job_id:
            self.job_id = job_id  # a queued job's turn: the canvas follows it
            self.progress.clear()
            self.cancel_button.setEnabled(True)
        if job_id != self.job_id:
            return
        self.progress.show_state(state)
        if state in ("done", "cancelled", "failed"):
            self.cancel_button.setEnabled(False)
            if state == "cancelled":
                self.message.setText("Cancelled.")

    def _on_progress(self, job_id: int, step: int, total: int, phase: str) -> None:
        if job_id == self.job_id:
            self.progress.show_progress(phase, step, total)

    def _on_preview(self, job_id: int, image: QImage) -> None:
        if job_id != self.job_id:
            return
        side = image.height()  # previews are candidates side by side, each square
        self._show_tiles(image.width() // side)
        for column, tile in enumerate(self.tiles):
            if (column + 1) * side <= image.width():
                tile.show_image(image.copy(column * side, 0, side, side))

    def _show_tiles(self, count: int) -> None:
        """As many tiles as the job has images (up to the row's width)."""
        for column, tile in enumerate(self.tiles):
            tile.setVisible(column < max(1, count))

    def _on_results(self, job_id: int, entries: tuple) -> None:
        if job_id != self.job_id or self.closed:  # the history may be closed after the window
            return
        self._show_tiles(len(entries))
        for tile, entry in zip(self.tiles, entries, strict=False):
            tile.show_image(QImage(str(entry.path)), entry)
            tile.setToolTip(f"seed {entry.request.seed} · score {entry.metadata.score or 0:.3f}")
        self.gallery.model.refresh()
        job = self.core.engine.job(job_id)
        if job is not None:
            self.settings_panel.set_last_seed(job.request.seed)
            self.device = self.core.engine.device(job.request.backend) or self.device
        self._show_summary()
        if not self.isActiveWindow():  # the user is elsewhere: flash the taskbar entry
            QApplication.alert(self)
            self.statusBar().showMessage(f"Done: {len(entries)} images", 10_000)

    # -- the input picture ---------------------------------------------------------

    def use_as_input(self, entry: HistoryEntry) -> None:
        """A result (tile, gallery, viewer) becomes the canvas's input picture."""
        self.input_panel.load(Path(entry.path))
        self.tabs.setCurrentIndex(0)

    def paste_picture(self) -> None:
        """Ctrl+V outside a text box: the clipboard's image, or image file, as input."""
        if self.input_panel.take_mime(QGuiApplication.clipboard().mimeData()):
            self.tabs.setCurrentIndex(0)
        else:
            self.message.setText("The clipboard holds no picture to work from.")

    def _on_capabilities(self, capabilities) -> None:
        self.input_panel.set_capabilities(capabilities)
        self._follow_picture()

    def _follow_picture(self) -> None:
        """Keep the size boxes on the picture's size (see GenerationSettings)."""
        panel = self.input_panel
        picture = panel.picture if panel.usable() else None
        size = (picture.size.width(), picture.size.height()) if picture else None
        self.settings_panel.follow_picture(size, panel.masked())
        self.settings_panel.aspect.set_input(size)
        self.structure.set_picture(picture.stored if picture else None)

    def _on_model_context(self, context: ModelContext) -> None:
        """The model's native size, family and add-ons: presets and pickers follow."""
        self.settings_panel.aspect.set_model(context.capabilities, context.model)
        self.lora_picker.set_context(context)
        self.structure.set_context(context)

    def _arrange_canvas(self) -> None:
        """Without a picture: the prompt as tall as the settings beside it, the drop zone
        and a row of tiles below. With one, the picture takes the room (at 1280 x 760 it
        was drawn 188 x 141 under the top row): it goes under a prompt of a few lines, the
        settings, buttons and tiles (two by two) make a column beside it."""
        has_picture = self.input_panel.picture is not None
        columns = 2 if has_picture else COLUMNS
        for index, tile in enumerate(self.tiles):
            self.tile_grid.removeWidget(tile)
            self.tile_grid.addWidget(tile, index // columns, index % columns)
            tile.set_side(SMALL_TILE if has_picture else TILE)
        moved = (self.progress, self.unknown_label, self.message, self.input_panel)
        if has_picture:  # addWidget takes a widget out of the layout it was in
            for widget in moved:
                self.prompt_column.addWidget(widget)
            self.side.insertWidget(1, self.tile_box)
        else:
            for index, widget in enumerate(moved[:3]):
                self.body_layout.insertWidget(1 + index, widget)
            self.work.insertWidget(0, self.input_panel)
            self.work.addWidget(self.tile_box)
        self.prompt_column.setStretch(0, 0 if has_picture else 1)
        self.prompt_column.setStretch(self.prompt_column.indexOf(self.input_panel), 1)
        self.settings_row.setDirection(
            QBoxLayout.Direction.TopToBottom if has_picture else QBoxLayout.Direction.LeftToRight
        )
        self.buttons.setDirection(
            QBoxLayout.Direction.LeftToRight if has_picture else QBoxLayout.Direction.TopToBottom
        )
        self.body_layout.setStretch(0, 1 if has_picture else 0)
        self.body_layout.setStretch(self.body_layout.count() - 1, 0 if has_picture else 1)
        self._fit_prompt()

    def _fit_prompt(self) -> None:
        """Beside a picture the prompt is as tall as its text, from 3 to 8 lines (then it
        scrolls); without one it stretches to the settings' height."""
        if self.input_panel.picture is None:
            self.prompt.setMinimumHeight(72)
            self.prompt.setMaximumHeight(16_777_215)
            return
        lines = max(3, min(PROMPT_LINES, round(self.prompt.document().size().height())))
        margins = self.prompt.contentsMargins()
        frame = margins.top() + margins.bottom() + 2 * self.prompt.document().documentMargin()
        height = round(lines * self.prompt.fontMetrics().lineSpacing() + frame)
        self.prompt.setMinimumHeight(height)
        self.prompt.setMaximumHeight(height)

    def open_in_viewer(self, entry: HistoryEntry) -> None:
        self.viewer.show_entry(entry)
        self.tabs.setCurrentWidget(self.viewer)

    def reuse_settings(self, entry: HistoryEntry) -> None:
        """An earlier image's prompt and every setting, ready to generate again."""
        self.settings_panel.apply_request(entry.request)
        self.reuse_prompt(entry.request.prompt)

    def reuse_prompt(self, prompt: str) -> None:
        self.style_picker.clear()  # a prompt from the history has its styles in it
        self.prompt.setPlainText(prompt)
        self.tabs.setCurrentIndex(0)
        self.prompt.setFocus()

    def vary(self, entry: HistoryEntry) -> None:
        """Variations, generated now: the image as the input picture, its prompt and
        settings, new seeds (with a backend that takes no picture: a new seed only)."""
        self.reuse_settings(entry)
        self.settings_panel.seed_lock.setChecked(False)
        self.generate(entry.path if self.settings_panel.capabilities.image else None)

    def delete_entry(self, entry: HistoryEntry) -> None:
        """Delete the viewer's image; the status bar's Undo brings it back for a while."""
        self.gallery.pending.delete([entry])
        self.viewer.show_entry(None)
        self._show_summary()

    def _on_failed(self, job_id: int, message: str, details: str) -> None:
        if job_id == self.job_id:
            self.message.setText(f"Generation failed: {message}")


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}
THEMES = ("system", "light", "dark")


def apply_theme(name: str) -> None:
    """Ask the platform for a light or dark scheme ("system": its own, followed live);
    where the platform cannot switch, Fusion with a palette of our own does it."""
    app = QApplication.instance()
    wanted = {"light": Qt.ColorScheme.Light, "dark": Qt.ColorScheme.Dark}.get(name)
    hints = QGuiApplication.styleHints()
    hints.setColorScheme(wanted or Qt.ColorScheme.Unknown)
    if not isinstance(app, QApplication):
        return
    if wanted is None:
        app.setPalette(app.style().standardPalette())
    elif hints.colorScheme() != wanted:
        app.setStyle("Fusion")
        app.setPalette(
            _dark_palette() if wanted == Qt.ColorScheme.Dark else app.style().standardPalette()
        )


def _dark_palette() -> QPalette:
    palette = QPalette()
    role, group = QPalette.ColorRole, QPalette.ColorGroup
    for r, rgb in (
        (role.Window, (45, 45, 48)),
        (role.WindowText, (230, 230, 230)),
        (role.Base, (30, 30, 32)),
        (role.AlternateBase, (45, 45, 48)),
        (role.ToolTipBase, (30, 30, 32)),
        (role.ToolTipText, (230, 230, 230)),
        (role.Text, (230, 230, 230)),
        (role.Button, (55, 55, 58)),
        (role.ButtonText, (230, 230, 230)),
        (role.BrightText, (255, 90, 90)),
        (role.Highlight, (60, 130, 220)),
        (role.HighlightedText, (255, 255, 255)),
        (role.PlaceholderText, (140, 140, 140)),
    ):
        palette.setColor(r, QColor(*rgb))
    for r in (role.WindowText, role.Text, role.ButtonText):
        palette.setColor(group.Disabled, r, QColor(120, 120, 120))
    return palette


def _dropped_image(data: QMimeData) -> Path | None:
    return dropped_file(data, IMAGE_SUFFIXES)


def process_memory_mb(pid: int | None = None) -> float:
    """A process's resident memory (this one's by default; Linux), or 0 where it cannot be
    read cheaply."""
    if not sys.platform.startswith("linux"):
        return 0.0
    try:
        with open(f"/proc/{pid or 'self'}/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6
