"""`studio models`: list the model library, add models and folders, convert pickles."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from studio.api.commands import EXIT_OK, EXIT_USAGE, CliError, emit, open_core

KIND_LABELS = {"lora": "LoRA", "controlnet": "ControlNet"}


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    models = commands.add_parser("models", help="the model library: list, add, convert")
    verbs = models.add_subparsers(dest="verb", required=True, metavar="VERB")
    listing = verbs.add_parser("list", parents=[common], help="models, formats, hashes")
    listing.add_argument(
        "--no-hash",
        action="store_true",
        help="compute no hash (each reads its whole file); show those computed before",
    )
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
    from studio.cli_hashing import ListedHashes
    from studio.core.model_backends import loaders

    with open_core(args) as core:
        library = core.models()
        hashes = ListedHashes(library, compute=not args.no_hash, quiet=args.json)
        formats = loaders(core.registry)
        rows, lines = [], []
        for entry in library.entries():
            row = entry.to_json()
            if entry.info is not None:
                row |= _described(core, entry.info, formats)
            if row.get("error"):  # a pickle, a broken file, or one no backend can use
                lines.append(f"refused: {row['path']}\n    {row['error']}")
            else:
                row["hash"] = hashes.of(entry.info)
                lines.append(_line(row))
            rows.append(row)
        folders = "\n".join(f"  {f}" for f in library.folders)
        emit(args, rows, "\n".join(lines or ["no models found"]) + f"\nfolders:\n{folders}")
        return EXIT_OK


def cmd_models_add(args: argparse.Namespace) -> int:
    from studio.core.model_backends import loaders
    from studio.core.model_files import ModelFileError

    with open_core(args) as core:
        try:
            found = core.add_model(args.path)
        except ModelFileError as error:
            raise CliError(str(error), EXIT_USAGE) from None
        if found is None:
            folder = args.path.expanduser().resolve()
            formats = loaders(core.registry)
            inside = [e for e in core.models().entries() if e.path.parent == folder]
            count = sum(
                1
                for e in inside
                if e.info is not None and not _described(core, e.info, formats).get("error")
            )
            refused = len(inside) - count
            text = f"added the folder {folder} ({_plural(count, 'model')} in it"
            text += f"; {refused} refused: see `studio models list`)" if refused else ")"
            emit(args, {"folder": str(folder), "models": count, "refused": refused}, text)
        else:
            row = found.to_json() | _described(core, found, loaders(core.registry))
            what = ", ".join(filter(None, (_label(row), found.format)))
            emit(args, row, f"added {found.name}: {what}")
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


def _described(core: Any, found: Any, formats: dict[str, list[str]]) -> dict[str, Any]:
    """What the backends that load its format make of it (that is theirs to know, not the
    core's): architecture, variant, kind, those backends, and `error` if they refuse it."""
    from studio.core.model_backends import examine

    backends = formats.get(found.format, [])
    verdict = examine(core.registry, found, backends)
    info = verdict[1] if verdict is not None else None
    row: dict[str, Any] = {
        "architecture": info.architecture if info else "",
        "variant": info.variant if info else "",
        "kind": info.kind if info else "model",
        "backends": backends,
    }
    return row | ({"error": info.refused} if info and info.refused else {})


def _label(row: dict[str, Any]) -> str:
    """Its kind (an add-on's), architecture and variant, as the listing shows them."""
    parts = (KIND_LABELS.get(row["kind"], ""), row["architecture"], row["variant"])
    return " ".join(part for part in parts if part)


def _line(row: dict[str, Any]) -> str:
    from studio.core.sizes import readable_size

    shown = (
        row["name"],
        _label(row),
        row["format"],
        readable_size(row["size"]),
        f"[{row['hash'] or 'not hashed'}]",
        row["path"],
    )
    return "  ".join(field for field in shown if field)


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
