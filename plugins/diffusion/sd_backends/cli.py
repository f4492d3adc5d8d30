"""`studio sd-export-onnx MODEL OUT`: a Stable-Diffusion model, or a ControlNet, as an
ONNX folder."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sd_backends.architecture import CONTROLNET, LORA, architecture, kind
from sd_backends.library import refusal
from studio.api import (
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    ModelFile,
    ModelFileError,
    emit,
    open_core,
    readable_size,
)


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    export = commands.add_parser(
        "sd-export-onnx",
        parents=[common],
        help="export a Stable-Diffusion model or ControlNet (library name or path) to ONNX",
    )
    export.add_argument("model")
    export.add_argument("out", type=Path)
    export.add_argument(
        "--base",
        metavar="MODEL",
        help="for a ControlNet: the model it is used with (its configuration and fit)",
    )
    export.set_defaults(run=cmd_export)


EXPORTED = ("diffusers", "safetensors")


def _exportable(core: Any, name: str) -> ModelFile:
    """The model (or ControlNet) `name` names, if it is one the backends would run: what
    they refuse (an InstructPix2Pix model, a VAE alone, ...) is refused here before
    anything loads, with their reason (`library.refusal`, as `Backend.examine` says it)."""
    found = core.models().find(name)
    if found.format not in EXPORTED:
        raise ModelFileError(
            f"{found.name} is {found.format}: a diffusers folder or a single file exports"
        )
    why = refusal(found, EXPORTED)
    if why:
        raise ModelFileError(why)
    return found


def _say(line: str) -> None:
    """Progress on stderr, a line at a time: it reads the same on a terminal and in a log
    (each part takes seconds to minutes, a line each is not too many)."""
    print(line, file=sys.stderr, flush=True)


def _quiet(_line: str) -> None:
    """--json: stderr stays quiet, as `studio generate --json` keeps it."""


def _quarters(say: Callable[[str], None], name: str) -> Callable[[int, int], None]:
    """Bytes read while loading, said at each quarter (a big model takes a while)."""
    said = [0]

    def report(done: int, total: int) -> None:
        quarter = 4 * done // max(total, 1)
        if quarter > said[0]:
            said[0] = quarter
            say(f"loading {name}: {readable_size(done)} of {readable_size(total)}")

    return report


def cmd_export(args: argparse.Namespace) -> int:
    from sd_backends.backend import load_diffusers_folder, quiet_offline_libraries

    with open_core(args) as core:
        try:
            found = _exportable(core, args.model)
            what = kind(found)
            if what == LORA:
                raise ModelFileError(
                    f"{found.name} is a LoRA: it needs no export (the ONNX backend applies "
                    "LoRA files as they are)"
                )
            if what == CONTROLNET and not args.base:
                raise ModelFileError(
                    f"{found.name} is a ControlNet: name the model it is used with, --base MODEL"
                )
            base = _exportable(core, args.base) if what == CONTROLNET else found
            if args.out.exists():
                raise ModelFileError(f"{args.out} exists: not overwritten")
        except ModelFileError as error:
            raise CliError(str(error), EXIT_USAGE) from None
        say = _quiet if args.json else _say
        say(f"loading {base.name}…")
        quiet_offline_libraries()
        import torch

        from sd_backends.export_onnx import export, export_controlnet
        from sd_backends.single_file import load_single_file
        from sd_backends.weights import WeightReader, weight_files

        total = sum(f.stat().st_size for f in weight_files(base))
        with WeightReader(torch.float32, total, _quarters(say, base.name)).installed():
            if base.format == "diffusers":
                pipeline = load_diffusers_folder(base.path, torch.float32)
            else:
                pipeline = load_single_file(base.path, architecture(base), torch.float32)
        if what == CONTROLNET:
            from sd_backends.controlnets import load_controlnet

            try:
                net = load_controlnet(found, pipeline.unet, torch.float32)
            except ModelFileError as error:
                raise CliError(str(error), EXIT_USAGE) from None
            out = export_controlnet(net, args.out, architecture(found), say)
        else:
            out = export(pipeline, args.out, architecture(found), say)
        emit(args, {"written": str(out)}, f"wrote {out}")
        return EXIT_OK
