"""Add-on models a request can name beside its model: LoRAs and ControlNets.

A LoRA is given as `Lora(model, weight)` in `GenerationRequest.loras`, or written in the
prompt as A1111 users write it, `<lora:NAME:WEIGHT>` (the weight defaults to 1): the tag
stays in the recorded prompt, as A1111 keeps it, and is removed from the text the model's
encoder sees (`split_loras`). A ControlNet is given as `Control`: its model, the control
image as the user gave it, the preprocessor that makes the control map from it, and the
control's weight and the fraction of the steps it acts over. The engine makes the map
before the job runs (`controls.prepare`), so it is stored with the result's inputs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from studio.core.inputs import InputPicture

if TYPE_CHECKING:
    from collections.abc import Callable

    from studio.core.models import ModelLibrary
    from studio.core.request import GenerationRequest

# <lora:NAME:WEIGHT>, and A1111's <lora:NAME> (weight 1) and <lora:NAME:TE:UNET> (the
# first weight is taken); NAME may hold anything but ':' and '>'
_LORA_TAG = re.compile(r"<lora:([^:>]+)(?::([^:>]*))?(?::[^>]*)?>", re.IGNORECASE)
MAX_LORAS = 16
MAX_CONTROLS = 4
WEIGHT_RANGE = (-10.0, 10.0)  # LoRA weights: A1111 accepts negative ones (the opposite style)
CONTROL_WEIGHT_RANGE = (0.0, 2.0)


@dataclass(frozen=True)
class Lora:
    """A LoRA file (a model-library name, short hash or path) at a weight."""

    model: str
    weight: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", str(self.model))
        object.__setattr__(self, "weight", float(self.weight))  # a ValueError if no number

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "weight": self.weight}

    @classmethod
    def parse(cls, text: str) -> Lora:
        """NAME_OR_PATH[:WEIGHT], as `--lora` takes it (a Windows drive's colon is kept)."""
        name, sep, weight = text.rpartition(":")
        if sep and name and not ("\\" in weight or "/" in weight):
            try:
                return cls(name.strip(), float(weight))
            except ValueError:
                pass
        return cls(text.strip())


@dataclass(frozen=True)
class Control:
    """A ControlNet over a control image. `preprocess` makes the control map from the image
    ("none" uses it as given: a line drawing, a depth map made elsewhere); `map` is that
    map, filled in by the engine before the job runs. `start` and `end` are the fractions
    of the steps it acts over; `settings` are the preprocessor's (canny's thresholds)."""

    model: str
    image: InputPicture
    preprocess: str = "none"
    weight: float = 1.0
    start: float = 0.0
    end: float = 1.0
    map: InputPicture | None = None
    settings: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise once, here
        for name in ("image", "map"):  # a digest read back from JSON names a picture
            value = getattr(self, name)
            if isinstance(value, str):
                set_(self, name, InputPicture(value) if value else None)
        set_(self, "weight", float(self.weight))
        set_(self, "start", float(self.start))
        set_(self, "end", float(self.end))
        set_(self, "settings", MappingProxyType(dict(self.settings)))

    @property
    def inputs(self) -> tuple[InputPicture, ...]:
        return tuple(p for p in (self.image, self.map) if p is not None)

    def to_dict(self) -> dict[str, Any]:
        """Recorded by digest: the pixels are stored apart."""
        return {
            "model": self.model,
            "image": self.image.digest if self.image is not None else "",
            "preprocess": self.preprocess,
            "weight": self.weight,
            "start": self.start,
            "end": self.end,
            "map": self.map.digest if self.map is not None else "",
            "settings": dict(self.settings),
        }

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled (to a worker process) with its pictures' pixels: the settings'
        read-only view cannot be pickled."""
        return (Control.from_dict, ({**self.to_dict(), "image": self.image, "map": self.map},))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Control:
        known = ("model", "image", "preprocess", "weight", "start", "end", "map", "settings")
        return cls(**{k: data[k] for k in known if k in data})


def split_loras(prompt: str) -> tuple[str, tuple[Lora, ...]]:
    """The prompt without its `<lora:NAME:WEIGHT>` tags (spaces tidied) and those LoRAs,
    in the order written. A weight that is not a number is taken as 1."""
    found: list[Lora] = []

    def take(match: re.Match[str]) -> str:
        weight = _number(match.group(2))
        found.append(Lora(match.group(1).strip(), 1.0 if weight is None else weight))
        return " "

    text = _LORA_TAG.sub(take, prompt)
    if not found:
        return prompt, ()
    text = re.sub(r"[ \t]{2,}", " ", text)
    text = re.sub(r"\s*,(\s*,)+", ",", text)  # "a, <lora:x>, b" -> "a, b"
    return text.strip(" \t,"), tuple(found)


def lora_problems(loras: tuple[Lora, ...]) -> list[str]:
    problems = []
    if len(loras) > MAX_LORAS:
        problems.append(f"at most {MAX_LORAS} LoRAs per request (got {len(loras)})")
    low, high = WEIGHT_RANGE
    for lora in loras:
        if not isinstance(lora, Lora) or not str(lora.model).strip():
            problems.append("a LoRA needs a name or path")
        elif not (math.isfinite(lora.weight) and low <= lora.weight <= high):
            problems.append(f"LoRA {lora.model}: weight must be from {low:g} to {high:g}")
    return problems


def control_problems(controls: tuple[Control, ...]) -> list[str]:
    problems = []
    if len(controls) > MAX_CONTROLS:
        problems.append(f"at most {MAX_CONTROLS} ControlNets per request (got {len(controls)})")
    low, high = CONTROL_WEIGHT_RANGE
    for control in controls:
        if not isinstance(control, Control) or not str(control.model).strip():
            problems.append("a ControlNet needs a model name or path")
            continue
        name = control.model
        if control.image is None:
            problems.append(f"ControlNet {name}: give it a control image")
        if not low <= control.weight <= high:  # also rejects NaN
            problems.append(f"ControlNet {name}: weight must be from {low:g} to {high:g}")
        if not 0.0 <= control.start < control.end <= 1.0:
            problems.append(
                f"ControlNet {name}: start and end must be fractions of the steps with "
                f"start < end (got {control.start:g} to {control.end:g})"
            )
    return problems


def addon_names(
    library: Callable[[], ModelLibrary] | None, request: GenerationRequest
) -> dict[str, tuple[str, str]]:
    """What the request names each add-on model by -> (its name, its hash), as metadata
    records them: a LoRA's hash as A1111 writes it, a ControlNet's short hash. A model
    not found (the job failed on it, or it went) is left out."""
    from studio.core.model_files import ModelFileError

    if library is None:
        return {}
    models = library()
    found: dict[str, tuple[str, str]] = {}
    named = [(lora.model, True) for lora in request.split_loras()[1]]
    named += [(control.model, False) for control in request.controls]
    for ref, lora in named:
        try:
            info = models.find(ref)
            found[ref] = (info.name, models.lora_hash(info) if lora else models.short_hash(info))
        except (ModelFileError, OSError):
            continue
    return found


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None
