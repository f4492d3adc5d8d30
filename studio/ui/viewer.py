"""The viewer: one image large (fit, 100 %, zoom, pan), its full metadata, and what to
do with it (reuse settings or prompt, vary, use as input, copy, show the file, delete).
An image made from a picture can be compared with it (Compare, C: a divider to drag)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QAction, QDesktopServices, QGuiApplication, QImage, QKeySequence, QPixmap
from PySide6.QtWidgets import (
    QGraphicsPixmapItem,
    QGraphicsScene,
    QGraphicsView,
    QLabel,
    QPlainTextEdit,
    QSplitter,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from studio.core.history import HistoryEntry
from studio.ui.compare_view import CompareItem

ZOOM_STEP = 1.25
MAX_ZOOM = 64.0
MAX_METADATA_CHARS = 20_000  # shown as inert text, capped


class ImageView(QGraphicsView):
    """Fit to the window, or a fixed zoom; drag to pan, Ctrl+wheel to zoom. Zoomed in,
    pixels stay sharp squares (the built-in model's images are pixel art)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.item = QGraphicsPixmapItem()
        self.scene().addItem(self.item)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.fitting = True

    def set_pixmap(self, pixmap: QPixmap) -> None:
        self.item.setPixmap(pixmap)
        self.scene().setSceneRect(self.item.boundingRect())
        self.fit()

    def zoom(self) -> float:
        return self.transform().m11()

    def fit(self) -> None:
        self.fitting = True
        if not self.item.pixmap().isNull():
            self.fitInView(self.item, Qt.AspectRatioMode.KeepAspectRatio)
            self._sharpen()

    def actual_size(self) -> None:
        self.set_zoom(1.0)

    def set_zoom(self, zoom: float) -> None:
        self.fitting = False
        zoom = max(1 / MAX_ZOOM, min(MAX_ZOOM, zoom))
        self.resetTransform()
        self.scale(zoom, zoom)
        self._sharpen()

    def zoom_by(self, factor: float) -> None:
        self.set_zoom(self.zoom() * factor)

    def _sharpen(self) -> None:
        smooth = self.zoom() < 1.0  # shrinking: smooth; enlarging: crisp pixels
        mode = (
            Qt.TransformationMode.SmoothTransformation
            if smooth
            else Qt.TransformationMode.FastTransformation
        )
        self.item.setTransformationMode(mode)

    def wheelEvent(self, event) -> None:
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.zoom_by(ZOOM_STEP if event.angleDelta().y() > 0 else 1 / ZOOM_STEP)
            event.accept()
        else:
            super().wheelEvent(event)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self.fitting:
            self.fit()


class Viewer(QWidget):
    reuse_settings = Signal(object)  # HistoryEntry
    reuse_prompt = Signal(str)
    vary = Signal(object)  # HistoryEntry: same prompt and settings, a new seed
    use_as_input = Signal(object)  # HistoryEntry: the canvas's input picture
    delete = Signal(object)  # HistoryEntry
    export = Signal(object)  # HistoryEntry

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.entry: HistoryEntry | None = None
        # (entries it was made from, entries made from it), from the history when set
        self.lineage: Callable[[HistoryEntry], tuple[list, list]] | None = None
        # the input picture an entry was made from (None: none), for Compare
        self.original: Callable[[HistoryEntry], QImage | None] | None = None
        self.compare_item: CompareItem | None = None
        self.view = ImageView()
        self.details = QPlainTextEdit(readOnly=True)  # plain text: metadata is never markup
        self.details.setMinimumWidth(220)
        self.empty = QLabel("Pick an image in the history (double-click) or a candidate.")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.toolbar = QToolBar()
        self.actions_by_name: dict[str, QAction] = {}
        for name, text, keys, slot in (
            ("fit", "Fit", "Ctrl+0", self.view.fit),
            ("actual", "100 %", "Ctrl+1", self.view.actual_size),
            (
                "zoom_in",
                "Zoom in",
                QKeySequence.StandardKey.ZoomIn,
                lambda: self.view.zoom_by(ZOOM_STEP),
            ),
            (
                "zoom_out",
                "Zoom out",
                QKeySequence.StandardKey.ZoomOut,
                lambda: self.view.zoom_by(1 / ZOOM_STEP),
            ),
            ("reuse", "Reuse settings", "Ctrl+R", lambda: self._emit(self.reuse_settings)),
            ("reuse_prompt", "Reuse prompt", "Ctrl+Shift+R", self._reuse_prompt),
            ("vary", "Vary", "Ctrl+Shift+V", lambda: self._emit(self.vary)),
            ("use_input", "Use as input", "Ctrl+I", lambda: self._emit(self.use_as_input)),
            ("copy", "Copy image", QKeySequence.StandardKey.Copy, self.copy_image),
            ("copy_prompt", "Copy prompt", "Ctrl+Shift+C", self.copy_prompt),
            ("show_file", "Show file", "Ctrl+Shift+O", self.show_file),
            ("export", "Export…", "Ctrl+E", lambda: self._emit(self.export)),
            ("delete", "Delete…", QKeySequence.StandardKey.Delete, lambda: self._emit(self.delete)),
        ):
            action = QAction(text, self)
            action.setShortcut(QKeySequence(keys))
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            action.triggered.connect(slot)
            self.toolbar.addAction(action)
            self.actions_by_name[name] = action
        compare = QAction("Compare", self, checkable=True, shortcut=QKeySequence("C"))
        compare.setToolTip("Before and after: the original picture left of a divider (C)")
        compare.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        compare.toggled.connect(lambda _on: self._show_compare())
        self.toolbar.insertAction(self.actions_by_name["reuse"], compare)
        self.addAction(compare)  # C works over the image, not only on the toolbar
        self.actions_by_name["compare"] = compare
        splitter = QSplitter()
        splitter.addWidget(self.view)
        splitter.addWidget(self.details)
        splitter.setStretchFactor(0, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.toolbar)
        layout.addWidget(self.empty)
        layout.addWidget(splitter, 1)
        self.splitter = splitter
        self.show_entry(None)

    def show_entry(self, entry: HistoryEntry | None) -> None:
        self.entry = entry
        self.empty.setVisible(entry is None)
        self.splitter.setVisible(entry is not None)
        for action in self.actions_by_name.values():
            action.setEnabled(entry is not None)
        if entry is None:
            return
        pixmap = QPixmap(str(entry.path))
        self.view.set_pixmap(pixmap)
        self._show_compare()
        made_from, children = self.lineage(entry) if self.lineage else ([], [])
        self.details.setPlainText(describe(entry, pixmap.isNull(), made_from, children))

    def _show_compare(self) -> None:
        """The original over the result while Compare is on (kept on from image to image,
        for flipping through variants); the action only for images made from a picture."""
        if self.compare_item is not None:
            self.view.scene().removeItem(self.compare_item)
            self.compare_item = None
        entry, action = self.entry, self.actions_by_name["compare"]
        original = self.original(entry) if entry is not None and self.original else None
        action.setEnabled(original is not None)
        if original is None or not action.isChecked() or self.view.item.pixmap().isNull():
            return
        self.compare_item = CompareItem(original, self.view.item.boundingRect())
        self.view.scene().addItem(self.compare_item)

    def copy_image(self) -> None:
        # The pixels only: a QMimeData handed to the clipboard from Python (PySide6 6.11)
        # was freed twice at exit.
        if self.entry is not None:
            QGuiApplication.clipboard().setImage(QImage(str(self.entry.path)))

    def copy_prompt(self) -> None:
        if self.entry is not None:
            QGuiApplication.clipboard().setText(self.entry.request.prompt)

    def show_file(self) -> None:
        if self.entry is not None:  # the folder: no file manager selects a file portably
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.entry.path.parent)))

    def _reuse_prompt(self) -> None:
        if self.entry is not None:
            self.reuse_prompt.emit(self.entry.request.prompt)

    def _emit(self, signal) -> None:
        if self.entry is not None:
            signal.emit(self.entry)


def describe(
    entry: HistoryEntry,
    unreadable: bool = False,
    made_from: Sequence[HistoryEntry] = (),
    children: Sequence[HistoryEntry] = (),
) -> str:
    """Everything known of an image, as plain text: with its lineage when given."""
    m, r = entry.metadata, entry.request
    created = dt.datetime.fromtimestamp(entry.created_at).strftime("%Y-%m-%d %H:%M:%S")
    lines = [
        r.prompt,
        "",
        *([f"Negative prompt: {r.negative_prompt}", ""] if r.negative_prompt else []),
        f"Seed: {r.seed}",
        f"Size: {r.width}x{r.height}",
        f"Steps: {r.steps or 'default'}",
        f"Guidance: {r.guidance or 'default'}",
        f"Sampler: {m.sampler or '—'}",
        f"Backend: {r.backend}",
        f"Model: {m.model_name or r.model or 'default'}"
        + (f" [{m.model_hash}]" if m.model_hash else ""),
        f"Rank in its job: {m.rank + 1}"
        + (f" (score {m.score:.3f})" if m.score is not None else ""),
        f"Created: {created}",
        f"File: {Path(entry.path)}" + (" (missing or unreadable)" if unreadable else ""),
    ]
    if r.image is not None:
        source = ", ".join(f"#{e.id}" for e in made_from) or f"a picture ({r.image.digest[:10]})"
        lines.append(f"Made from: {source}")
        lines.append("Mask: " + (r.mask.digest[:10] if r.mask else "none"))
        if r.strength:
            lines.append(f"Strength: {r.strength:g}")
    for lora in r.split_loras()[1]:
        name = m.addons.get(lora.model, (lora.model, ""))[0]
        lines.append(f"LoRA: {name} at {lora.weight:g}")
    for control in r.controls:
        name = m.addons.get(control.model, (control.model, ""))[0]
        where = control.map.digest[:10] if control.map else "not made"
        lines.append(
            f"ControlNet: {name}, {control.preprocess} map {where}, weight "
            f"{control.weight:g}, steps {control.start:g} to {control.end:g}"
        )
    if children:
        lines.append("Made from it: " + ", ".join(f"#{e.id}" for e in children))
    return "\n".join(lines)[:MAX_METADATA_CHARS]
