"""Work off the GUI thread, with the answer delivered back on it.

Workers never touch a widget, nor emit a signal of one (a widget may be deleted while a
worker runs, and emitting on a deleted object crashes). They hand their answer to one
long-lived dispatcher, which calls back on the GUI thread only if the widget that asked
still exists.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import shiboken6
from PySide6.QtCore import QCoreApplication, QObject, Signal, Slot

from studio.core.engine import Engine

log = logging.getLogger(__name__)
T = TypeVar("T")


class _Dispatcher(QObject):
    deliver = Signal(object)  # a callable to run on the GUI thread

    def __init__(self, parent: QObject) -> None:
        super().__init__(parent)
        self.deliver.connect(self._run)

    @Slot(object)
    def _run(self, callback: Callable[[], None]) -> None:
        callback()


def _dispatcher() -> _Dispatcher:
    app = QCoreApplication.instance()
    if app is None:
        raise RuntimeError("no Qt application")
    found = app.findChild(_Dispatcher)
    return found if found is not None else _Dispatcher(app)  # made on the GUI thread


def run_in_background(
    engine: Engine,
    owner: QObject,
    work: Callable[[], T],
    on_done: Callable[[T], Any],
    on_error: Callable[[Exception], Any] | None = None,
) -> None:
    """Run `work()` on the engine's pool; then `on_done(result)` (or `on_error(error)`)
    on the GUI thread, if `owner` still exists. Nothing happens once the engine has
    shut down (the app is closing)."""
    dispatcher = _dispatcher()

    def job() -> None:
        try:
            result, error = work(), None
        except Exception as caught:  # shown by on_error, or logged
            result, error = None, caught

        def back() -> None:
            if not shiboken6.isValid(owner):
                return
            if error is None:
                on_done(result)  # type: ignore[arg-type]
            elif on_error is not None:
                on_error(error)
            else:
                log.warning("background work failed: %s", error, exc_info=error)

        dispatcher.deliver.emit(back)

    try:
        engine.background(job)
    except RuntimeError:
        log.debug("engine shut down: background work dropped")
