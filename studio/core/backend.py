"""The interface between the engine and a generation backend (a plugin)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from studio.core.model_files import ModelFile
from studio.core.request import GenerationRequest

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from studio.core.models import ModelLibrary

    ImageLike = Image.Image | np.ndarray


# The phases a job's progress goes through, as `GenerationContext.progress` names them.
# LOADING counts bytes of weights read; STEPS the denoising steps of the whole request;
# DECODING latents turned into pixels (0 of 1 when it starts; tiles when tiled); SAVING
# images written to the history.
LOADING, STEPS, DECODING, SAVING = "loading", "steps", "decoding", "saving"


class Cancelled(Exception):
    """Raised by `GenerationContext.check_cancelled` to stop a job at a safe point."""


@dataclass(frozen=True)
class ModelInfo:
    """A model a backend can load."""

    ref: str  # what a request names in `model`: a path or a short name
    name: str
    architecture: str = ""
    format: str = ""
    size_bytes: int = 0
    hash: str = ""  # first 10 hex digits of the file's SHA-256, as other tools show it
    description: str = ""
    kind: str = "model"  # or an add-on a request names beside its model: "lora", "controlnet"
    native_size: int = 0  # the side it was trained at, squared (512 for many); 0: not known
    variant: str = ""  # of its architecture, as the backend names it ("inpainting"); "": plain
    # Why the backend cannot use it, for the user ("" when it can): only `examine` says
    # so; `models` and `addons` list only what it can use.
    refused: str = ""

    @property
    def label(self) -> str:
        """Its architecture and variant, as shown: "<architecture> inpainting", say."""
        return " ".join(part for part in (self.architecture, self.variant) if part)


@dataclass(frozen=True)
class PromptCut:
    """Where a model stops reading a prompt too long for it: the rest is ignored."""

    at: int  # index in the prompt (a str) of the first character the model ignores
    limit: str  # the model's limit as people count it, e.g. "32 words", "75 tokens"


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do; requests are validated against it before queueing."""

    min_size: int = 64
    max_size: int = 64
    size_multiple: int = 1
    fixed_sizes: tuple[tuple[int, int], ...] = ()  # if set, only these sizes
    max_count: int = 64
    max_candidates: int = 256
    default_steps: int = 0
    max_steps: int = 0  # 0: the backend has no notion of steps
    default_guidance: float = 0.0
    max_guidance: float = 0.0  # 0: no classifier-free guidance
    negative_prompt: bool = False
    samplers: tuple[str, ...] = ()
    devices: tuple[str, ...] = ("cpu",)
    ranks: bool = False  # samples `candidates` and keeps the best `count`
    image: bool = False  # takes an input picture (`request.image`)
    mask: bool = False  # takes a mask of the part of it to repaint
    strength: bool = False  # takes `strength` (how far results move from the picture)
    default_strength: float = 0.0  # used for a picture without a mask
    strength_under_mask: bool = False  # strength also applies with a mask (and its default)
    # The largest result of a request with a picture (0: max_size), which may be larger
    # than the model generates when the backend scales its output back to the picture.
    max_picture_size: int = 0
    loras: bool = False  # applies LoRAs (`request.loras`, `<lora:NAME:W>` in the prompt)
    controls: int = 0  # ControlNets a request may name (`request.controls`)

    def with_defaults(self, request: GenerationRequest) -> GenerationRequest:
        """`request` with 0 steps or guidance replaced by this backend's defaults, so that
        what is recorded is what ran."""
        changes: dict[str, float] = {}
        if request.steps == 0 and self.default_steps:
            changes["steps"] = self.default_steps
        elif request.steps and not self.max_steps:
            changes["steps"] = 0  # 1, read back from its image's text: it has none to set
        if request.guidance == 0 and self.default_guidance:
            changes["guidance"] = self.default_guidance
        takes_strength = request.mask is None or self.strength_under_mask
        unset = request.image is not None and takes_strength and request.strength == 0
        if unset and self.default_strength:
            changes["strength"] = self.default_strength
        if not self.ranks and request.candidates != request.count:
            changes["candidates"] = request.count  # it makes what it shows, no more
        return request.replace(**changes) if changes else request

    def problems(self, request: GenerationRequest) -> list[str]:
        """Why this backend cannot run `request` (empty when it can)."""
        problems: list[str] = []
        size = (request.width, request.height)
        if self.fixed_sizes:
            if size not in self.fixed_sizes:
                allowed = ", ".join(f"{w}x{h}" for w, h in self.fixed_sizes)
                problems.append(f"size {size[0]}x{size[1]} is not supported (use {allowed})")
        else:
            picture = request.image is not None and self.max_picture_size > 0
            largest = self.max_picture_size if picture else self.max_size
            for side, value in zip(("width", "height"), size, strict=True):
                if not self.min_size <= value <= largest:
                    problems.append(
                        f"{side} {value} is out of range ({self.min_size} to {largest})"
                    )
                elif value % self.size_multiple and not picture:  # a result is scaled to it
                    problems.append(f"{side} {value} must be a multiple of {self.size_multiple}")
        if request.count > self.max_count:
            problems.append(f"at most {self.max_count} images per request")
        if request.candidates > self.max_candidates:
            problems.append(f"at most {self.max_candidates} candidates per request")
        if not self.max_steps:
            # Steps 1 is what the image text of a backend without steps says (it runs
            # once): a request read back from it is not refused for saying so.
            if request.steps > 1:
                problems.append("this backend has no steps to set")
        elif request.steps > self.max_steps:
            problems.append(f"steps must be at most {self.max_steps}")
        if request.guidance > self.max_guidance and self.max_guidance > 0:
            problems.append(f"guidance must be at most {self.max_guidance:g}")
        if request.negative_prompt.strip() and not self.negative_prompt:
            problems.append("this backend does not use a negative prompt")
        if request.image is not None and not self.image:
            problems.append("this backend makes images from text only: it takes no input picture")
        elif request.mask is not None and not self.mask:
            problems.append("this backend takes no mask")
        elif request.strength and not self.strength:
            problems.append("this backend takes no strength")
        if request.split_loras()[1] and not self.loras:
            problems.append("this backend takes no LoRA (<lora:…> in the prompt, or --lora)")
        if request.controls and not self.controls:
            problems.append("this backend takes no ControlNet")
        elif len(request.controls) > self.controls:
            problems.append(f"at most {self.controls} ControlNets per request with this backend")
        return problems


@dataclass
class Candidate:
    """One generated image, as a backend returns it (best first in a list)."""

    image: ImageLike  # PIL image, or HxWx3 uint8 / float in [0, 1] array
    score: float | None = None  # ranking score, higher is better
    seed: int | None = None  # per-image seed when it differs from the request's
    extra: dict[str, Any] = field(default_factory=dict)


class GenerationContext(Protocol):
    """How a backend talks back while it works."""

    def progress(self, step: int, total: int, phase: str = STEPS) -> None:
        """Report progress in `phase` (STEPS, DECODING: see the phases above); also
        raises `Cancelled` if the job was cancelled."""

    def preview(self, image: ImageLike) -> None:
        """Offer a cheap preview; the engine throttles and downsizes it."""

    def check_cancelled(self) -> None:
        """Raise `Cancelled` if the job was cancelled. Call it at every step."""

    @property
    def cancelled(self) -> bool: ...

    @property
    def device(self) -> str:
        """The device the loaded model runs on, e.g. 'cpu' or 'cuda:0'."""


class Backend(ABC):
    """A generation backend. Instances are made by the registry on first use.

    The engine calls `load`, `generate` and `unload` from its one generation
    thread, never at the same time.
    """

    #: Shown in the app and the CLI.
    display_name: str = ""
    #: The user's model library (their model folders and added models), set by Studio
    #: when it makes the backend; a callable, as the library follows the settings.
    model_library: Callable[[], ModelLibrary] | None = None
    #: Set by Studio's executor while `load` runs; see `report_loading`.
    loading_progress: Callable[[int, int], None] | None = None

    @abstractmethod
    def capabilities(self) -> Capabilities: ...

    @abstractmethod
    def models(self) -> list[ModelInfo]:
        """The models this backend can load now (cheap: no weights read)."""

    @abstractmethod
    def load(self, model: str) -> None:
        """Load a model by its `ModelInfo.ref`; '' means the default model."""

    @abstractmethod
    def unload(self) -> None: ...

    @abstractmethod
    def generate(self, request: GenerationRequest, ctx: GenerationContext) -> list[Candidate]:
        """Return at least `request.count` candidates, best first."""

    def device(self) -> str:
        return "cpu"

    def report_loading(self, done: int, total: int) -> None:
        """Call while `load` reads weights: `done` of `total` bytes (the app and the CLI
        show it). Does nothing when nobody listens."""
        if self.loading_progress is not None:
            self.loading_progress(done, total)

    def sampler_name(self, request: GenerationRequest) -> str:
        """The sampler recorded in image metadata."""
        return str(request.options.get("sampler", ""))

    def addons(self) -> list[ModelInfo]:
        """The add-on models it applies beside a model (LoRAs, ControlNets: `kind` says
        which; `architecture` the family they were made for), cheap as `models`."""
        return []

    def examine(self, found: ModelFile) -> ModelInfo:
        """What this backend makes of a model file of a format it declares, listed or not
        yet (`studio models add` asks before saving): cheap as `models`, headers and
        configurations only. `refused` says why it cannot use it (a variant it does not
        run, say), in a sentence for the user. By default, as `models` or `addons` list
        it, else only what the core knows."""
        listed = next((m for m in self.models() + self.addons() if m.ref == str(found.path)), None)
        return listed or ModelInfo(
            ref=str(found.path), name=found.name, format=found.format, size_bytes=found.size
        )

    def model_info(self, model: str) -> ModelInfo | None:
        """Details of a model ('' = the default: the first listed), for metadata."""
        models = self.models()
        if not model:
            return models[0] if models else None
        return next((m for m in models if model in (m.ref, m.name)), None)

    def unknown_words(self, prompt: str) -> list[str]:
        """Words of `prompt` the backend's model does not know (for the UI)."""
        return []

    def prompt_cut(self, prompt: str) -> PromptCut | None:
        """Where the model stops reading `prompt` when it is longer than the model reads
        (the app marks the rest, the CLI names it); None when all of it is read. Cheap
        as `unknown_words`: called as the user types, before any model is loaded."""
        return None
