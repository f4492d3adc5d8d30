"""The prompt editor: multi-line, marks the words the chosen model does not know and the
text past the most it reads, keeps recent prompts (Ctrl+Up / Ctrl+Down), and takes a
dropped text file as the prompt; pasted pixels (no text) go to `take_picture`."""

from __future__ import annotations

import re
from collections.abc import Callable

from PySide6.QtCore import QMimeData, Qt
from PySide6.QtGui import QKeyEvent, QSyntaxHighlighter, QTextCharFormat, QTextDocument
from PySide6.QtWidgets import QPlainTextEdit, QWidget

from studio.ui.drops import dropped_file

MAX_RECENT = 50
TEXT_SUFFIXES = (".txt", ".prompt")
MAX_DROPPED_TEXT = 100_000  # characters read from a dropped file
WORD = re.compile(r"[\w'-]+")


def utf16_length(text: str) -> int:
    """`text`'s length as Qt counts positions (UTF-16 code units: an emoji is two)."""
    return len(text.encode("utf-16-le")) // 2


class UnknownWords(QSyntaxHighlighter):
    """A wavy underline under each word of `words` (compared case-insensitively), and a
    dotted one under all text from `cut` on (a document position: what the model does
    not read)."""

    def __init__(self, document: QTextDocument) -> None:
        super().__init__(document)
        self.words: set[str] = set()
        self.cut: int | None = None
        self.format = QTextCharFormat()
        self.format.setUnderlineStyle(QTextCharFormat.UnderlineStyle.WaveUnderline)
        self.format.setUnderlineColor(Qt.GlobalColor.red)
        self.format.setToolTip("not known to this model: it is ignored")
        self.past_cut = QTextCharFormat()
        self.past_cut.setUnderlineStyle(QTextCharFormat.UnderlineStyle.DotLine)
        self.past_cut.setUnderlineColor(Qt.GlobalColor.red)
        self.past_cut.setToolTip("past the most this model reads: it is ignored")

    def set_words(self, words: set[str]) -> None:
        if words != self.words:
            self.words = words
            self.rehighlight()

    def set_cut(self, prompt: str, at: int | None) -> None:
        """Mark `prompt` (the document's text) from its character `at` on; None: none."""
        cut = None if at is None else utf16_length(prompt[:at])
        if cut != self.cut:
            self.cut = cut
            self.rehighlight()

    def highlightBlock(self, text: str) -> None:
        units = [0]  # the Qt position of each character of the block, and of its end
        for char in text:
            units.append(units[-1] + utf16_length(char))
        for match in WORD.finditer(text):
            if match.group().lower() in self.words:
                start, end = units[match.start()], units[match.end()]
                self.setFormat(start, end - start, self.format)
        if self.cut is not None:
            start = max(0, self.cut - self.currentBlock().position())
            if start < units[-1]:
                self.setFormat(start, units[-1] - start, self.past_cut)


class PromptEditor(QPlainTextEdit):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.unknown = UnknownWords(self.document())
        # Given pixels without text (a copied image), who takes them as the input picture.
        self.take_picture: Callable[[QMimeData], bool] | None = None
        self.recent: list[str] = []
        self._recent_at = -1  # -1: editing a new prompt, not browsing the recent ones

    def remember(self, prompt: str) -> None:
        """Keep `prompt` first among the recent prompts."""
        prompt = prompt.strip()
        if prompt:
            self.recent = [prompt, *[p for p in self.recent if p != prompt]][:MAX_RECENT]
        self._recent_at = -1

    def keyPressEvent(self, event: QKeyEvent) -> None:
        step = {Qt.Key.Key_Up: 1, Qt.Key.Key_Down: -1}.get(Qt.Key(event.key()))
        if step and event.modifiers() == Qt.KeyboardModifier.ControlModifier and self.recent:
            self._recent_at = max(-1, min(len(self.recent) - 1, self._recent_at + step))
            self.setPlainText(self.recent[self._recent_at] if self._recent_at >= 0 else "")
            self.moveCursor(self.textCursor().MoveOperation.End)
            return
        super().keyPressEvent(event)

    def canInsertFromMimeData(self, source: QMimeData) -> bool:
        return dropped_file(source, TEXT_SUFFIXES) is not None or super().canInsertFromMimeData(
            source
        )

    def insertFromMimeData(self, source: QMimeData) -> None:
        pixels = source.hasImage() and not source.hasText()
        if pixels and self.take_picture is not None and self.take_picture(source):
            return
        path = dropped_file(source, TEXT_SUFFIXES)
        if path is None:
            super().insertFromMimeData(source)
            return
        try:
            with path.open(encoding="utf-8", errors="replace") as handle:
                text = handle.read(MAX_DROPPED_TEXT)
        except OSError:
            return  # unreadable: nothing changes
        self.setPlainText(text.strip())
