"""Exceptions nobody caught, on any thread: logged with their traceback, shown in the
window, and the app lives on (a worker's exception never ends it)."""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from types import TracebackType

from PySide6.QtCore import QObject, Signal

log = logging.getLogger("studio.uncaught")


class UncaughtErrors(QObject):
    """Installs the hooks; `caught` (where, one-line message) arrives on the GUI thread."""

    caught = Signal(str, str)

    def install(self) -> None:
        self._previous = sys.excepthook, threading.excepthook
        sys.excepthook = self._on_gui_error
        threading.excepthook = self._on_thread_error

    def uninstall(self) -> None:
        sys.excepthook, threading.excepthook = self._previous

    def _on_gui_error(
        self, kind: type[BaseException], error: BaseException, trace: TracebackType | None
    ) -> None:
        self._report("the window", kind, error, trace)

    def _on_thread_error(self, args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        where = f"thread {args.thread.name}" if args.thread else "a thread"
        self._report(where, args.exc_type, args.exc_value, args.exc_traceback)

    def _report(
        self,
        where: str,
        kind: type[BaseException],
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        details = "".join(traceback.format_exception(kind, error, trace))
        log.error("uncaught exception in %s:\n%s", where, details)
        self.caught.emit(where, f"{kind.__name__}: {error}")  # queued to the GUI thread
