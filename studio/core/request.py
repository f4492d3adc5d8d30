"""The one immutable request type that carries everything a generation needs."""

from __future__ import annotations

import dataclasses
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from studio.core.addons import Control, Lora, control_problems, lora_problems, split_loras
from studio.core.errors import UserFacingError
from studio.core.inputs import InputPicture

MAX_PROMPT_CHARS = 20_000
MAX_COUNT = 64
MAX_CANDIDATES = 256
MAX_SIDE = 8192
MAX_STEPS = 1000
MAX_GUIDANCE = 100.0
SEED_RANGE = 2**32


class RequestError(ValueError, UserFacingError):
    """A request that cannot be run; the message says what to change."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def random_seed() -> int:
    return secrets.randbelow(SEED_RANGE)


@dataclass(frozen=True)
class GenerationRequest:
    """Everything a generation needs; jobs are replayable from it.

    `count` images are shown, chosen (best first) from `candidates` samples.
    The seed is drawn at random when not given and is always recorded. `image` is a
    picture to work from and `mask` (white = repaint, black = keep, any size) the part of
    it to redraw; both are recorded by digest, their pixels travel with the request.
    `strength` (0 < s <= 1; 0 means the backend's default) is how far a result may move
    from `image` where no mask says otherwise. `loras` and `controls` are add-on models
    (`studio.core.addons`); LoRAs may also be written in the prompt, `<lora:NAME:W>`.
    """

    prompt: str
    negative_prompt: str = ""
    seed: int | None = None
    count: int = 4
    candidates: int = 0  # 0 means "same as count": no ranking.
    width: int = 64
    height: int = 64
    steps: int = 0  # 0 means "the backend's default".
    guidance: float = 0.0  # 0 means "the backend's default".
    backend: str = ""
    model: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)
    image: InputPicture | None = None
    mask: InputPicture | None = None
    strength: float = 0.0
    loras: tuple[Lora, ...] = ()
    controls: tuple[Control, ...] = ()

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise once, here
        set_(self, "prompt", str(self.prompt))
        set_(self, "negative_prompt", str(self.negative_prompt))
        if self.seed is None:
            set_(self, "seed", random_seed())
        if self.candidates == 0:
            set_(self, "candidates", self.count)
        set_(self, "guidance", float(self.guidance))
        set_(self, "strength", float(self.strength))
        for name in ("image", "mask"):  # a digest read back from JSON names a picture
            value = getattr(self, name)
            if isinstance(value, str):
                set_(self, name, InputPicture(value) if value else None)
        set_(self, "options", MappingProxyType(dict(self.options)))
        # from JSON: lists of dicts
        set_(self, "loras", tuple(Lora(**x) if isinstance(x, dict) else x for x in self.loras))
        set_(
            self,
            "controls",
            tuple(Control.from_dict(x) if isinstance(x, dict) else x for x in self.controls),
        )
        problems = _problems(self)
        if problems:
            raise RequestError(problems)

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def replace(self, **changes: Any) -> GenerationRequest:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["options"] = dict(self.options)
        for name in ("image", "mask"):  # recorded by digest; the pixels are stored apart
            picture = data[name]
            data[name] = picture.digest if picture is not None else ""
        data["loras"] = [lora.to_dict() for lora in self.loras]
        data["controls"] = [control.to_dict() for control in self.controls]
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled (to a worker process) as its fields, input pixels included: the options'
        read-only view cannot be pickled."""
        fields = {**self.to_dict(), "image": self.image, "mask": self.mask}
        fields["controls"] = self.controls
        return (GenerationRequest.from_dict, (fields,))

    @property
    def inputs(self) -> tuple[InputPicture, ...]:
        """The input pictures the request names: its picture and mask, and each
        ControlNet's image and map."""
        controls = tuple(p for control in self.controls for p in control.inputs)
        return tuple(p for p in (self.image, self.mask) if p is not None) + controls

    def split_loras(self) -> tuple[str, tuple[Lora, ...]]:
        """The prompt as the model's text encoder sees it (without `<lora:…>` tags) and
        every LoRA of the request: the prompt's, then `loras`."""
        text, tagged = split_loras(self.prompt)
        return text, tagged + self.loras

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GenerationRequest:
        """Build from a dict, ignoring keys this version does not know."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _problems(r: GenerationRequest) -> list[str]:
    problems: list[str] = []
    if not r.prompt.strip():
        problems.append("the prompt is empty")
    elif not split_loras(r.prompt)[0].strip():
        problems.append("the prompt is empty besides its <lora:…> tags: say what to draw")
    for name in ("prompt", "negative_prompt"):
        text = getattr(r, name)
        if len(text) > MAX_PROMPT_CHARS:
            problems.append(
                f"the {name.replace('_', ' ')} is {len(text):,} characters long "
                f"(at most {MAX_PROMPT_CHARS:,})"
            )
        if "\x00" in text:
            problems.append(f"the {name.replace('_', ' ')} contains a NUL character")
    if not isinstance(r.seed, int) or not 0 <= r.seed < SEED_RANGE:
        problems.append(f"seed must be a whole number from 0 to {SEED_RANGE - 1}")
    if not 1 <= r.count <= MAX_COUNT:
        problems.append(f"images to show must be from 1 to {MAX_COUNT} (got {r.count})")
    elif not r.count <= r.candidates <= MAX_CANDIDATES:  # said against a valid count only
        problems.append(
            f"candidates must be from the number of images shown ({r.count}) "
            f"to {MAX_CANDIDATES} (got {r.candidates})"
        )
    for side in ("width", "height"):
        value = getattr(r, side)
        if not isinstance(value, int) or not 1 <= value <= MAX_SIDE:
            problems.append(f"{side} must be from 1 to {MAX_SIDE} pixels (got {value})")
    if not 0 <= r.steps <= MAX_STEPS:
        problems.append(f"steps must be from 0 (backend default) to {MAX_STEPS}")
    if not 0.0 <= r.guidance <= MAX_GUIDANCE:  # also rejects NaN
        problems.append(f"guidance must be from 0 to {MAX_GUIDANCE:g} (got {r.guidance})")
    for name in ("image", "mask"):
        picture = getattr(r, name)
        if picture is not None and not (
            isinstance(picture, InputPicture) and _is_digest(picture.digest)
        ):
            problems.append(f"{name} must be an input picture (a SHA-256 digest)")
    if r.mask is not None and r.image is None:
        problems.append("a mask needs an image to apply to")
    if not 0.0 <= r.strength <= 1.0:  # also rejects NaN
        problems.append(f"strength must be more than 0 and at most 1 (got {r.strength:g})")
    elif r.strength and r.image is None:
        problems.append("strength needs an image to work from")
    if any(not isinstance(x, Lora) for x in r.loras):
        problems.append("loras must be LoRA entries (a model and a weight)")
    else:
        problems += lora_problems(r.split_loras()[1])
    if any(not isinstance(x, Control) for x in r.controls):
        problems.append("controls must be ControlNet entries")
    else:
        problems += control_problems(r.controls)
    try:
        json.dumps(dict(r.options))
    except (TypeError, ValueError):
        problems.append("backend options must be plain JSON values")
    return problems


def _is_digest(text: object) -> bool:
    return isinstance(text, str) and len(text) == 64 and all(c in "0123456789abcdef" for c in text)
