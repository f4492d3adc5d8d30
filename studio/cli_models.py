"""`studio models`: list the model library, add models and folders, convert pickles."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from studio.cli import EXIT_OK, EXIT_USAGE, CliError, emit, open_core


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    models = commands.add_parser("models", help="the model library: list, add, convert")
    verbs = models.add_subparsers(dest="verb", required=True, metavar="VERB")
    listing = verbs.add_parser("list", parents=[common], help="models, formats, hashes")
    listing.set_defaults(run=cmd_models_list)
    add = verbs.add_parser("add", parents=[common], help="add a model, or a folder of models")
    add.add_argument("path", type=Path)
    add.set_defaults(run=cmd_models_add)
    convert = verbs.add_parser(
        "convert", parents=[common], help="pickled checkpoint -> safetensors (tensors only)"
    )
    convert.add_argument("path", type=Path)
    convert.add_argument("--out", type=Path, help="default: beside it, .safetensors")
    convert.set_defaults(run=cmd_models_convert)


def cmd_models_list(args: argparse.Namespace) -> int:
    with open_core(args) as core:
        library = core.models()
        rows, lines = [], []
        for entry in library.entries():
            row = entry.to_json()
            if entry.info is not None:
                row["hash"] = library.short_hash(entry.info)
                lines.append(f"{row['name']}  {row['architecture']}  {row['format']}  "
                             f"{_size(row['size'])}  [{row['hash']}]  {row['path']}")  # fmt: skip
            else:
                lines.append(f"refused: {row['path']}\n    {row['error']}")
            rows.append(row)
        folders = "\n".join(f"  {f}" for f in library.folders)
        emit(args, rows, "\n".join(lines or ["no models found"]) + f"\nfolders:\n{folders}")
        return EXIT_OK


def cmd_models_add(args: argparse.Namespace) -> int:
    from studio.core.model_files import ModelFileError

    with open_core(args) as core:
        try:
            found = core.add_model(args.path)
        except ModelFileError as error:
            raise CliError(str(error), EXIT_USAGE) from None
        if found is None:
            folder = args.path.expanduser().resolve()
            count = sum(1 for e in core.models().entries() if e.path.parent == folder)
            emit(args, {"folder": str(folder), "models": count},
                 f"added the folder {folder} ({count} models in it)")  # fmt: skip
        else:
            emit(args, found.to_json(), f"added {found.name}: {found.architecture}, {found.format}")
        return EXIT_OK


def cmd_models_convert(args: argparse.Namespace) -> int:
    from studio.core.model_convert import convert_pickle
    from studio.core.model_files import ModelFileError

    try:
        out = convert_pickle(args.path.expanduser(), args.out)
    except ModelFileError as error:
        raise CliError(str(error), EXIT_USAGE) from None
    emit(args, {"written": str(out)}, f"wrote {out}")
    return EXIT_OK


def _size(n: int) -> str:
    return f"{n / 2**30:.2f} GB" if n >= 2**30 else f"{n / 2**20:.1f} MB"
