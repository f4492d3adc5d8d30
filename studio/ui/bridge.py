"""Core events -> Qt signals. The engine calls listeners on its worker thread; signals
emitted there reach GUI-thread slots queued, so widgets are only touched on the GUI thread."""

from __future__ import annotations

from PIL import Image
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from studio.core.engine import Engine
from studio.core.jobs import Event, Failed, Preview, Progress, QueueChanged, Results, StateChanged


def to_qimage(image: Image.Image) -> QImage:
    """A QImage that owns its pixels (safe to make off the GUI thread; QPixmap is not).

    The pixels are copied into a buffer Qt allocates: a QImage wrapping a Python bytes
    object releases that object from whichever thread drops the image, without the GIL,
    which corrupted reference counts (a crash seen with thumbnails made on workers)."""
    rgba = image.convert("RGBA")
    qimage = QImage(rgba.width, rgba.height, QImage.Format.Format_RGBA8888)
    qimage.bits()[:] = rgba.tobytes()  # 4 bytes a pixel: rows need no padding
    return qimage


class EngineBridge(QObject):
    state_changed = Signal(int, str)  # job id, JobState value
    # job id, step, total (objects: bytes loaded pass 2**31), phase (core.backend's)
    progress = Signal(int, object, object, str)
    preview = Signal(int, QImage)
    results = Signal(int, object)  # job id, tuple of HistoryEntry (best first)
    failed = Signal(int, str, str)  # job id, message, details
    queue_changed = Signal(object, object)  # queued job ids, running job id or None

    def __init__(self, engine: Engine, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._unsubscribe = engine.subscribe(self._on_event)

    def close(self) -> None:
        self._unsubscribe()

    def _on_event(self, event: Event) -> None:  # on the engine's worker thread
        match event:
            case StateChanged(job_id, state):
                self.state_changed.emit(job_id, state.value)
            case Progress(job_id, step, total, phase):
                self.progress.emit(job_id, step, total, phase)
            case Preview(job_id, image):
                self.preview.emit(job_id, to_qimage(image))
            case Results(job_id, entries):
                self.results.emit(job_id, entries)
            case Failed(job_id, message, details):
                self.failed.emit(job_id, message, details)
            case QueueChanged(queued, running):
                self.queue_changed.emit(queued, running)
