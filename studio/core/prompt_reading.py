"""What a backend's model will make of a prompt, known before it is loaded: the words it
does not know, and where a prompt too long for it is cut. The CLI and the app say so, and
refuse a prompt the model would read nothing of that it knows."""

from __future__ import annotations

import re
from dataclasses import dataclass

from studio.core.backend import Backend, PromptCut

_WORD = re.compile(r"[^\W_]+")  # letters and digits of any script
IGNORED_SHOWN = 40  # characters of the ignored rest quoted in a note


@dataclass(frozen=True)
class PromptReading:
    prompt: str
    unknown: tuple[str, ...]  # as the backend names them
    cut: PromptCut | None

    @property
    def read(self) -> str:
        """The part of the prompt the model reads."""
        return self.prompt if self.cut is None else self.prompt[: self.cut.at]

    @property
    def nothing_known(self) -> bool:
        """Every word the model reads is one it does not know (it would draw noise).
        Only a backend that names unknown words can tell: one that names none reads all."""
        if not self.unknown:
            return False
        unknown = {w for word in self.unknown for w in _WORD.findall(word.lower())}
        return all(word in unknown for word in _WORD.findall(self.read.lower()))

    def words_read(self) -> list[str]:
        """The words the model reads, each once, as the prompt writes them."""
        return list(dict.fromkeys(_WORD.findall(self.read)))

    def ignored(self) -> str:
        """The start of the part past the cut, for a note ('' when nothing is cut)."""
        if self.cut is None:
            return ""
        rest = " ".join(self.prompt[self.cut.at :].split())
        return rest if len(rest) <= IGNORED_SHOWN else rest[: IGNORED_SHOWN - 1] + "…"


def read_prompt(backend: Backend, prompt: str) -> PromptReading:
    """How `backend` reads `prompt` (plugin code: callers handle what it raises)."""
    unknown = tuple(dict.fromkeys(backend.unknown_words(prompt)))
    return PromptReading(prompt, unknown, backend.prompt_cut(prompt))
