"""`studio generate`'s request: its flags, over the settings of an image it starts from.

`--from FILE` takes every setting recorded in an image's metadata (ours, or another
tool's) and, without `--count`, makes exactly that image again. `--vary FILE_OR_ID` takes
an image as the input picture, with its prompt and settings but new seeds. Flags given
on the command line override whatever was taken.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from studio.api.commands import EXIT_NOT_FOUND, EXIT_USAGE, CliError
from studio.cli_styles import styled
from studio.core.addons import Control, Lora
from studio.core.app import Core
from studio.core.history import HistoryEntry
from studio.core.inputs import InputError, InputPicture
from studio.core.request import GenerationRequest, RequestError
from studio.interop import MetadataError, ParsedMetadata
from studio.interop import read as read_metadata

# Fields `--vary` keeps from the image it varies: how it was made, not which draw it was.
_VARIED_KEEPS = ("prompt", "negative_prompt", "width", "height", "steps", "guidance")
_VARIED_KEEPS += ("backend", "model", "options", "loras", "controls")
CANNY_THRESHOLDS = (100.0, 200.0)  # A1111's ControlNet defaults


def generate_request(core: Core, args: argparse.Namespace) -> GenerationRequest:
    """The request `studio generate` runs; raises CliError saying what is wrong."""
    if args.strength is not None and not 0 < args.strength <= 1:
        raise CliError(f"--strength must be more than 0 and at most 1 (got {args.strength:g})")
    if args.mask and not (args.image or args.vary or args.from_image):
        raise CliError("--mask needs a picture to apply to: give --image FILE", EXIT_USAGE)
    try:
        flags = _flags(core, args)
        if args.from_image:
            fields = _recorded(core, args.from_image, exact=args.count is None, given=flags)
        elif args.vary:
            fields = _varied(core, args.vary)
        else:
            fields = {}
        fields |= flags
        fields |= _picture_size(core, args, fields)
        options = _picture_options(args) | _given_options(args) | _sampler(core, args, fields)
        if options:
            fields["options"] = {**dict(fields.get("options") or {}), **options}
        if not fields.get("prompt"):
            raise CliError("give a PROMPT (or --from FILE / --vary FILE_OR_ID)", EXIT_USAGE)
        fields |= styled(args, fields)  # the final prompt: what runs and is recorded
        return core.request(**fields)
    except RequestError as error:
        raise CliError(f"invalid request: {error}", EXIT_USAGE) from None
    except InputError as error:
        raise CliError(str(error), EXIT_USAGE) from None


def _flags(core: Core, args: argparse.Namespace) -> dict[str, Any]:
    """What the command line says, only where it says something."""
    width, height = args.size or (None, None)
    given = {
        "prompt": args.prompt,
        "negative_prompt": args.negative,
        "count": args.count,
        "candidates": args.candidates,
        "seed": args.seed,
        "width": width,
        "height": height,
        "steps": args.steps,
        "guidance": args.guidance,
        "backend": args.backend,
        "model": args.model,
        "strength": args.strength,
        "image": core.add_input(_existing(args.image)) if args.image else None,
        "mask": core.add_input(_existing(args.mask), mask=True) if args.mask else None,
        "loras": tuple(Lora.parse(text) for text in args.lora) if args.lora else None,
        "controls": _controls(core, args),
    }
    return {key: value for key, value in given.items() if value is not None}


def _controls(core: Core, args: argparse.Namespace) -> tuple[Control, ...] | None:
    """The --control-* flags as ControlNets: one per --control-model, with its image."""
    from studio.core import controls

    models, images = args.control_model or [], args.control_image or []
    if not models and not images:
        return None
    if len(images) != len(models):
        raise CliError("give one --control-image for each --control-model", EXIT_USAGE)
    count = len(models)

    def each(flag: str, values: list[Any] | None, default: Any) -> list[Any]:
        if not values:
            return [default] * count
        if len(values) in (1, count):
            return values * (count // len(values))
        raise CliError(
            f"--{flag} is given {len(values)} times for {count} ControlNets: "
            "give it once (for all) or once for each",
            EXIT_USAGE,
        )

    preprocess = each("control-preprocess", args.control_preprocess, "none")
    for name in set(preprocess) - set(controls.names()):
        raise CliError(
            f"no control preprocessor {name!r} (there are: {', '.join(controls.names())})",
            EXIT_USAGE,
        )
    thresholds = [_thresholds(text) for text in args.canny_thresholds or []]
    return tuple(
        Control(
            model=model,
            image=core.add_input(_existing(image)),
            preprocess=method,
            weight=weight,
            start=start,
            end=end,
            settings=dict(zip(("low", "high"), low_high, strict=True)) if method == "canny" else {},
        )
        for model, image, method, weight, start, end, low_high in zip(
            models,
            images,
            preprocess,
            each("control-weight", args.control_weight, 1.0),
            each("control-start", args.control_start, 0.0),
            each("control-end", args.control_end, 1.0),
            each("canny-thresholds", thresholds, CANNY_THRESHOLDS),
            strict=True,
        )
    )


def _thresholds(text: str) -> tuple[float, float]:
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise CliError(f"--canny-thresholds takes LOW,HIGH (got {text!r})", EXIT_USAGE) from None
    if not 0 <= low <= high <= 255:
        raise CliError(f"canny thresholds must be 0 <= LOW <= HIGH <= 255 (got {text})", EXIT_USAGE)
    return low, high


def _picture_size(core: Core, args: argparse.Namespace, fields: dict[str, Any]) -> dict[str, int]:
    """Without --size, a picture's result has the picture's size: exactly, when a mask
    says what to repaint (a photo stays its size), else snapped to the backend's size
    multiple. Backends of fixed sizes keep theirs."""
    picture = fields.get("image")
    if args.size or picture is None or args.from_image:  # --from keeps the recorded size
        return {}
    backend = fields.get("backend") or core.default_backend()
    try:
        capabilities = core.registry.get(backend).capabilities()
    except Exception:  # an unknown or broken backend says so when it runs
        return {}
    if capabilities.fixed_sizes:
        return {}
    width, height = picture.open().size if isinstance(picture, InputPicture) else (0, 0)
    if fields.get("mask") is None:
        step = max(1, capabilities.size_multiple)
        width, height = (max(step, round(side / step) * step) for side in (width, height))
    return {"width": width, "height": height}


def _picture_options(args: argparse.Namespace) -> dict[str, Any]:
    """The backend options the picture flags set."""
    options: dict[str, Any] = {}
    if args.mask_blur is not None:
        if args.mask_blur < 0:
            raise CliError(f"--mask-blur must be 0 or more pixels (got {args.mask_blur})")
        options["mask_blur"] = args.mask_blur
    if args.inpaint_area:
        options["inpaint_area"] = args.inpaint_area
    return options


def _given_options(args: argparse.Namespace) -> dict[str, Any]:
    """--option KEY=VALUE flags: a VALUE that reads as JSON (3, 0.5, true, "x") is that
    value, any other text is a string."""
    options: dict[str, Any] = {}
    for text in args.option or []:
        key, equals, value = text.partition("=")
        if not equals or not key.strip():
            raise CliError(f"--option takes KEY=VALUE (got {text!r})", EXIT_USAGE)
        try:
            options[key.strip()] = json.loads(value)
        except ValueError:
            options[key.strip()] = value
    return options


def _sampler(core: Core, args: argparse.Namespace, fields: dict[str, Any]) -> dict[str, str]:
    """--sampler NAME, one of the backend's samplers (any case; stored as it names it)."""
    if args.sampler is None:
        return {}
    backend = fields.get("backend") or core.default_backend()
    try:
        samplers = core.registry.get(backend).capabilities().samplers
    except Exception:  # an unknown or broken backend says so when it runs
        return {"sampler": args.sampler}
    by_name = {name.casefold(): name for name in samplers}
    if args.sampler.casefold() not in by_name:
        offered = ", ".join(samplers) or "none: it has no sampler to choose"
        raise CliError(
            f"backend {backend!r} has no sampler {args.sampler!r} (its samplers: {offered})",
            EXIT_USAGE,
        )
    return {"sampler": by_name[args.sampler.casefold()]}


def _recorded(core: Core, path: Path, *, exact: bool, given: dict[str, Any]) -> dict[str, Any]:
    """Every setting an image's metadata records; with `exact`, one image, that one.
    Input pictures must still be stored, unless the flags `given` replace them."""
    found = _metadata(path)
    if found.studio is not None:
        request = found.studio.request
        for name in ("image", "mask"):
            picture = getattr(request, name)
            if picture is not None and name not in given:
                _check_stored(core, picture)
        if "controls" not in given:
            for control in request.controls:
                _check_stored(core, control.map or control.image)
        fields = {**request.to_dict(), "image": request.image, "mask": request.mask}
        if exact:  # its own seed, alone: the same draw again
            fields |= {"count": 1, "candidates": 1}
        else:
            del fields["count"], fields["candidates"]
        return fields
    if found.source_format == "none":
        raise CliError(f"{path} carries no generation settings to start from", EXIT_USAGE)
    return _foreign(found) | ({"count": 1, "candidates": 1} if exact else {})


def _varied(core: Core, source: str) -> dict[str, Any]:
    """The image as the input picture, with its prompt and settings, new seeds."""
    entry = _entry(core, source) if source.isdigit() else None
    path: Path = entry.path if entry is not None else _existing(Path(source))
    if entry is not None:
        recorded = entry.request.to_dict()
        fields = {key: recorded[key] for key in _VARIED_KEEPS}
    else:
        found = _metadata(path, required=False)
        fields = found.studio.request.to_dict() if found and found.studio else {}
        fields = {k: v for k, v in fields.items() if k in _VARIED_KEEPS}
        if found is not None and found.studio is None and found.source_format != "none":
            fields = _foreign(found)
            fields.pop("seed", None)
    return fields | {"image": core.add_input(path)}


def _foreign(found: ParsedMetadata) -> dict[str, Any]:
    """The settings another tool recorded, where they fit a request."""
    fields = found.to_request(prompt="-").to_dict()  # "-": no prompt recorded is no error here
    for name in ("image", "mask", "strength", "count", "candidates"):
        del fields[name]  # what to show is the user's choice; pictures are not in the text
    fields["prompt"] = found.prompt
    return fields


def _entry(core: Core, source: str) -> HistoryEntry:
    entry = core.history.get(int(source))
    if entry is None:
        raise CliError(f"no history entry with id {source}", EXIT_NOT_FOUND)
    if not entry.path.is_file():
        raise CliError(f"the image of history entry {source} is missing: {entry.path}")
    return entry


def _metadata(path: Path, *, required: bool = True) -> ParsedMetadata | None:
    try:
        return read_metadata(_existing(path))
    except (MetadataError, OSError) as error:
        if not required:
            return None
        raise CliError(f"cannot read {path}: {error}", EXIT_USAGE) from None


def _check_stored(core: Core, picture: InputPicture) -> None:
    if not core.history.inputs.has(picture.digest):
        raise CliError(
            f"the input picture this image was made from ({picture.digest[:12]}…) is no "
            "longer stored: give it again with --image FILE (and --mask FILE)",
            EXIT_NOT_FOUND,
        )


def _existing(path: Path) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise CliError(f"no such file: {path}", EXIT_NOT_FOUND)
    return path
