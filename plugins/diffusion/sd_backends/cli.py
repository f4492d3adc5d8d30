"""`studio sd-export-onnx MODEL OUT`: a Stable-Diffusion model as an ONNX folder."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sd_backends.architecture import architecture
from studio.api import EXIT_OK, EXIT_USAGE, CliError, ModelFileError, emit, open_core


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    export = commands.add_parser(
        "sd-export-onnx",
        parents=[common],
        help="export a Stable-Diffusion model (library name or path) to an ONNX folder",
    )
    export.add_argument("model")
    export.add_argument("out", type=Path)
    export.set_defaults(run=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from sd_backends.backend import load_diffusers_folder, quiet_offline_libraries

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

        from sd_backends.export_onnx import export
        from sd_backends.single_file import load_single_file

        if found.format == "diffusers":
            pipeline = load_diffusers_folder(found.path, torch.float32)
        else:
            pipeline = load_single_file(found.path, architecture(found), torch.float32)
        out = export(pipeline, args.out, architecture(found))
        emit(args, {"written": str(out)}, f"wrote {out}")
        return EXIT_OK
