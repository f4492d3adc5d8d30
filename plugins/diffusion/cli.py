"""`studio sd-export-onnx MODEL OUT`: a Stable-Diffusion model as an ONNX folder."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    export = commands.add_parser(
        "sd-export-onnx", parents=[common],
        help="export a Stable-Diffusion model (library name or path) to an ONNX folder",
    )  # fmt: skip
    export.add_argument("model")
    export.add_argument("out", type=Path)
    export.set_defaults(run=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from plugins.diffusion.backend import load_diffusers_folder, quiet_offline_libraries
    from studio.cli import EXIT_OK, EXIT_USAGE, CliError, emit, open_core
    from studio.core.model_files import ModelFileError

    with open_core(args) as core:
        try:
            found = core.models().find(args.model)
            if found.format not in ("diffusers", "safetensors"):
                raise ModelFileError(
                    f"{found.name} is {found.format}: a diffusers folder or a single file exports"
                )
            if args.out.exists():
                raise ModelFileError(f"{args.out} exists: not overwritten")
        except ModelFileError as error:
            raise CliError(str(error), EXIT_USAGE) from None
        quiet_offline_libraries()
        import torch

        from plugins.diffusion.export_onnx import export
        from plugins.diffusion.single_file import load_single_file

        if found.format == "diffusers":
            pipeline = load_diffusers_folder(found.path, torch.float32)
        else:
            pipeline = load_single_file(found.path, found.architecture, torch.float32)
        out = export(pipeline, args.out, found.architecture)
        emit(args, {"written": str(out)}, f"wrote {out}")
        return EXIT_OK
