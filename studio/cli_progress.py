"""A job's progress on the CLI's stderr: on a terminal one self-overwriting line with a
bar; piped (a log, CI), plain lines that read well one after another."""

from __future__ import annotations

import sys
from typing import TextIO

from studio.core.backend import DECODING, LOADING, SAVING, STEPS
from studio.core.jobs import Progress
from studio.core.load_progress import bytes_read

BAR = 30  # characters of the bar on a terminal
LOADING_LINES = 10  # piped: a loading line each 10 % at most


def describe(event: Progress) -> str:
    """What a job is doing, in a few words: "step 3/25", "decoding tile 3/12"…"""
    if event.phase == LOADING:
        return f"loading {bytes_read(event.step, event.total)}"
    if event.phase == DECODING:
        tiled = event.total > 1 and event.step > 0
        return f"decoding tile {event.step}/{event.total}" if tiled else "decoding"
    if event.phase == SAVING:
        return "saving"
    return f"step {event.step}/{event.total}"


class ProgressLine:
    """Job states and progress. On a terminal: one line rewritten in place. Piped: one
    line per state and phase change and per step or tile, loading at most each 10 %."""

    def __init__(self, quiet: bool, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.quiet = quiet
        self.last = ""
        self.phase = ""
        self.loaded_tenth = -1  # the last loading tenth printed when piped

    def state(self, name: str) -> None:
        self.phase = ""
        self._show(name, None)

    def progress(self, event: Progress) -> None:
        fraction = event.step / event.total if event.total else None
        if event.phase == LOADING and not self.tty:
            tenth = int(LOADING_LINES * (fraction or 0))
            if self.phase == LOADING and tenth == self.loaded_tenth:
                return
            self.loaded_tenth = tenth
        self.phase = event.phase
        counted = event.phase in (STEPS, LOADING) or (event.phase == DECODING and event.total > 1)
        self._show(describe(event), fraction if counted else None)

    def _show(self, text: str, fraction: float | None) -> None:
        if self.quiet or text == self.last:
            return
        self.last = text
        if self.tty:
            bar = "" if fraction is None else "#" * int(fraction * BAR)
            print(f"\r{bar:<{BAR}} {text:<28}", end="", file=self.stream, flush=True)
        else:
            print(text, file=self.stream, flush=True)

    def done(self) -> None:
        if self.tty and self.last and not self.quiet:
            print(file=self.stream)
