"""The models of the user's library that a backend of this plugin loads, by format, and
what the two backends (PyTorch, ONNX Runtime) share."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

from sd_backends.architecture import (
    CONTROLNET,
    INSTRUCT_PIX2PIX,
    LORA,
    MODEL,
    REFINER,
    UNKNOWN,
    architecture,
    kind,
    variant,
)
from sd_backends.other_files import not_a_model
from studio.api import (
    Backend,
    Capabilities,
    ModelFile,
    ModelFileError,
    ModelInfo,
    ModelLibrary,
)

Library = Callable[[], ModelLibrary] | None
DEFAULT_STRENGTH = 0.75  # A1111's default, img2img and inpainting: the composition stays
MAX_PICTURE_SIDE = 8192  # a photo stays its size: the model runs at its own, scaled back


def listed(
    library: Library,
    formats: tuple[str, ...],
    loads: Callable[[ModelFile], bool] = lambda _: True,
    kinds: tuple[str, ...] = (MODEL,),
) -> list[ModelInfo]:
    """The library's models of these formats and kinds that `loads` accepts."""
    if library is None:
        return []
    return [
        describe(e.info)
        for e in library().entries()
        if e.info is not None
        and e.info.format in formats
        and listed_kind(e.info) in kinds
        and loads(e.info)
        and not refusal(e.info, formats)
    ]


def listed_kind(found: ModelFile) -> str:
    """Its kind, or '' where its configuration can't be read."""
    try:
        return kind(found)
    except ModelFileError:
        return ""


def listed_variant(found: ModelFile) -> str:
    """Its variant, or '' where its configuration can't be read."""
    try:
        return variant(found)
    except ModelFileError:
        return ""


def listed_other(found: ModelFile) -> str:
    """What a file that is no Stable-Diffusion model is (`other_files.not_a_model`), or ''
    (as well where its header can't be read: loading it says what is wrong)."""
    try:
        return not_a_model(found)
    except ModelFileError:
        return ""


# The variants no backend of this plugin runs, and why, for the user
_NOT_RUN = {
    INSTRUCT_PIX2PIX: "an InstructPix2Pix model: it edits a picture as a sentence says, "
    "which Studio does not run; add an ordinary or an inpainting model instead",
    REFINER: "an SDXL refiner: it refines another model's images, which Studio does not "
    "run; add the base model instead",
}
FORMAT_NAMES = {
    "onnx": "an ONNX export",
    "diffusers": "a diffusers folder",
    "safetensors": "a safetensors file",
}
EXPORT = "export it with `studio sd-export-onnx {name} OUT`, then use OUT"


def refusal(found: ModelFile, formats: tuple[str, ...]) -> str:
    """Why a backend of these formats cannot use `found` ('' when it can): a file that
    is no Stable-Diffusion model (a VAE alone, a Flux model: what it is), another format
    (for the ONNX backend: how to export it), or a variant nothing here runs."""
    name = found.path.name
    if listed_kind(found) != MODEL:
        return ""  # an add-on: `find_addon` says where it fits
    other = listed_other(found)
    if other:
        return other  # before the format: exporting it would not help
    if found.format not in formats:
        onnx = formats == ("onnx",) and found.format in ("safetensors", "diffusers")
        fix = EXPORT.format(name=found.name) if onnx else "run it with another backend"
        what = FORMAT_NAMES.get(found.format, found.format)
        return f"{name} is {what}, and this backend runs {' and '.join(formats)} models: {fix}"
    why = _NOT_RUN.get(listed_variant(found))
    return f"{name} is {why}" if why else ""


ADDON_NAMES = {LORA: "a LoRA", CONTROLNET: "a ControlNet"}
ADDON_USE = {LORA: "--lora NAME or <lora:NAME:1> in the prompt", CONTROLNET: "--control-model"}


def find_addon(library: Library, name: str, wanted: str, formats: tuple[str, ...]) -> ModelFile:
    """The LoRA or ControlNet (`wanted`) that a request names (a name, short hash or
    path); ModelFileError saying what it is instead."""
    if library is None:
        raise ModelFileError("no model library: Studio did not start this backend")
    found = library().find(name)
    what = listed_kind(found)
    if what != wanted:
        it = ADDON_NAMES.get(what, "a model")
        raise ModelFileError(f"{found.name} is {it}, not {ADDON_NAMES[wanted]}")
    if found.format not in formats:
        raise ModelFileError(
            f"{found.name} is {found.format}; this backend takes {ADDON_NAMES[wanted]} "
            f"as {' or '.join(formats)}"
        )
    return found


def find(library: Library, model: str, formats: tuple[str, ...]) -> ModelFile:
    """`model` (a path, name or short hash), or with '' the first usable one."""
    if library is None:
        raise ModelFileError("no model library: Studio did not start this backend")
    models = library()
    if model:
        found = models.find(model)
        what = listed_kind(found)
        if what in ADDON_NAMES:
            raise ModelFileError(
                f"{found.name} is {ADDON_NAMES[what]}, used beside a model: {ADDON_USE[what]}"
            )
    else:
        usable = [
            e.info
            for e in models.entries()
            if e.info
            and e.info.format in formats
            and listed_kind(e.info) == MODEL
            and not refusal(e.info, formats)
        ]
        if not usable:
            folders = ", ".join(str(f) for f in models.folders)
            raise ModelFileError(f"no {' or '.join(formats)} model found in {folders}")
        found = usable[0]
    why = refusal(found, formats)
    if why:
        raise ModelFileError(why)
    return found


def describe(found: ModelFile, library: Library = None) -> ModelInfo:
    """As the app shows it; with the library, with its short hash (computed once)."""
    digest = library().short_hash(found) if library is not None else ""
    return ModelInfo(
        ref=str(found.path),
        name=found.name,
        architecture=listed_architecture(found),
        format=found.format,
        size_bytes=found.size,
        hash=digest,
        description=hints(found),
        kind=listed_kind(found) or MODEL,
        native_size=NATIVE_SIZES.get(listed_architecture(found), 0),
        variant=listed_variant(found),
    )


def listed_architecture(found: ModelFile) -> str:
    """Its architecture, or unknown where its configuration can't be read: a damaged
    model stays listed, and loading it says what is wrong."""
    try:
        return architecture(found)
    except ModelFileError:
        return UNKNOWN


NATIVE_SIZES = {"SD 1.x": 512, "SD 2.x": 768, "SDXL": 1024}  # what each was trained at


def hints(found: ModelFile) -> str:
    """What the app's tip says of a model: the size it was made for, and how few steps
    a distilled one wants."""
    native = NATIVE_SIZES.get(listed_architecture(found))
    size = f"made for {native} x {native}" if native else ""
    return "; ".join(hint for hint in (size, few_step_hint(found)) if hint)


LCM_HINT = "LCM-distilled: 4-8 steps, guidance 1-2, sampler LCM"
FEW_STEP_HINT = "few-step distilled: 1-8 steps, guidance 1 (none) to 2"


def few_step_hint(found: ModelFile) -> str:
    """Distilled models (LCM, Turbo, Lightning, Hyper) want a few steps and little
    guidance, not the usual 25 and 7. Their weights rarely say so: an LCM folder's UNet
    or scheduler does, otherwise only the name that their makers give them."""
    name = found.name.lower()
    if "lcm" in name or _lcm_folder(found):
        return LCM_HINT
    if any(word in name for word in ("turbo", "lightning", "hyper")):
        return FEW_STEP_HINT
    return ""


def _lcm_folder(found: ModelFile) -> bool:
    if not found.path.is_dir():
        return False
    try:
        unet = json.loads((found.path / "unet" / "config.json").read_text(encoding="utf-8"))
        scheduler = json.loads(
            (found.path / "scheduler" / "scheduler_config.json").read_text(encoding="utf-8")
        )
    except (OSError, ValueError):
        return False
    return bool(unet.get("time_cond_proj_dim")) or scheduler.get("_class_name") == "LCMScheduler"


class LibraryBackend(Backend):
    """A backend of the user's models of some `formats`, run with some `samplers`."""

    formats: tuple[str, ...] = ()
    samplers: tuple[str, ...] = ()
    lora_formats: tuple[str, ...] = ("safetensors",)
    control_formats: tuple[str, ...] = ()
    max_controls = 4
    _model: ModelFile | None = None  # the loaded one

    def capabilities(self) -> Capabilities:
        return Capabilities(
            min_size=64,
            max_size=2048,
            size_multiple=8,
            max_count=16,
            max_candidates=16,
            default_steps=25,
            max_steps=150,
            default_guidance=7.0,
            max_guidance=30.0,
            negative_prompt=True,
            samplers=self.samplers,
            devices=("cpu", "cuda"),
            image=True,
            mask=True,
            strength=True,
            default_strength=DEFAULT_STRENGTH,
            strength_under_mask=True,
            max_picture_size=MAX_PICTURE_SIDE,
            loras=True,
            controls=self.max_controls,
        )

    def models(self) -> list[ModelInfo]:
        return listed(self.model_library, self.formats, self.loads)

    def addons(self) -> list[ModelInfo]:
        return listed(self.model_library, self.lora_formats, kinds=(LORA,)) + listed(
            self.model_library, self.control_formats, kinds=(CONTROLNET,)
        )

    def examine(self, found: ModelFile) -> ModelInfo:
        """As `models` would list it, with the reason it is refused, if it is."""
        return replace(describe(found), refused=refusal(found, self.formats))

    def loads(self, found: ModelFile) -> bool:
        """Whether this backend can load a model of its formats (some architectures of a
        format may not be supported yet)."""
        return True

    def model_info(self, model: str) -> ModelInfo | None:
        """With the short hash, for metadata: computed once per file, then cached."""
        if self._model is None:
            return super().model_info(model)
        return describe(self._model, self.model_library)

    def sampler_name(self, request) -> str:
        return str(request.options.get("sampler", self.samplers[0]))
