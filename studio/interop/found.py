"""What one reader found, before its values are checked: the common currency of readers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The fields a reader can fill, named as `ParsedMetadata` names them.
TEXT_FIELDS = ("prompt", "negative_prompt", "model", "model_hash", "sampler")
NUMBER_FIELDS = ("seed", "steps", "guidance", "width", "height")
# What "complete" counts: the settings a user needs to make the image again.
SCORED_FIELDS = (
    "prompt",
    "negative_prompt",
    "seed",
    "steps",
    "guidance",
    "width",
    "height",
    "model",
    "sampler",
)
# Texts that writers put where they had nothing (ComfyUI Image Saver's unconnected inputs).
PLACEHOLDER_TEXTS = frozenset({"", "unknown", "undefined", "null", "none"})


@dataclass
class Found:
    """A reader's result: raw values as the file holds them, keyed by field name."""

    source_format: str
    fields: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)  # other settings, as text
    notes: list[str] = field(default_factory=list)

    def put(self, name: str, value: Any) -> None:
        """Keep `value` for field `name` unless it is absent (None)."""
        if value is not None:
            self.fields[name] = value

    def put_extra(self, key: str, value: Any) -> None:
        if isinstance(value, str) and value:
            self.extra[key] = value
        elif isinstance(value, int | float) and not isinstance(value, bool):
            self.extra[key] = str(value)


def is_placeholder(name: str, value: Any) -> bool:
    """True for a value that stands for "not given": missing, "unknown", a seed of 0.

    A seed of 0 is a real seed, but also what writers put when none reached them: it only
    loses to another source's seed (see `reading`), it is never dropped.
    """
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip().lower() in PLACEHOLDER_TEXTS
    return name == "seed" and value == 0


def first_of(data: dict[str, Any], *keys: str) -> Any:
    """The value of the first of `keys` that `data` has (None when it has none)."""
    for key in keys:
        if key in data:
            return data[key]
    return None
