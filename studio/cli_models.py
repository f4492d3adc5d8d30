"""`studio models`: list the model library, add models and folders, convert pickles."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from studio.api.commands import EXIT_OK, EXIT_USAGE, CliError, emit, open_core

log = logging.getLogger(__name__)
KIND_LABELS = {"lora": "LoRA", "controlnet": "ControlNet"}


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
        entries = library.entries()
        loaders = _loaders(core)
        formats = {e.info.format for e in entries if e.info is not None}
        architectures = _architectures(core, {i for f in formats for i in loaders.get(f, [])})
        rows, lines = [], []
        for entry in entries:
            row = entry.to_json()
            if entry.info is not None:
                architecture, kind = architectures.get(str(entry.info.path), ("", "model"))
                row["architecture"], row["kind"] = architecture, kind
                row["backends"] = loaders.get(entry.info.format, [])
                row["hash"] = library.short_hash(entry.info)
                shown = (
                    row["name"],
                    " ".join(filter(None, (KIND_LABELS.get(kind, ""), architecture))),
                    row["format"],
                    _size(row["size"]),
                    f"[{row['hash']}]",
                    row["path"],
                )
                lines.append("  ".join(field for field in shown if field))
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
            inside = [e for e in core.models().entries() if e.path.parent == folder]
            count = sum(1 for e in inside if e.info is not None)
            refused = len(inside) - count
            text = f"added the folder {folder} ({_plural(count, 'model')} in it"
            text += f"; {refused} refused: see `studio models list`)" if refused else ")"
            emit(args, {"folder": str(folder), "models": count, "refused": refused}, text)
        else:
            backends = _loaders(core).get(found.format, [])
            architecture, kind = _architectures(core, backends).get(str(found.path), ("", "model"))
            row = {**found.to_json(), "architecture": architecture, "kind": kind}
            row["backends"] = backends
            label = " ".join(filter(None, (KIND_LABELS.get(kind, ""), architecture)))
            what = ", ".join(filter(None, (label, found.format)))
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


def _loaders(core: Any) -> dict[str, list[str]]:
    """The ids of the backends that load each format, as their manifests say (no backend
    is imported)."""
    loaders: dict[str, list[str]] = {}
    for record in core.registry.records():
        for format_ in record.formats:
            loaders.setdefault(format_, []).append(record.id)
    return loaders


def _architectures(core: Any, backend_ids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Model path -> (architecture, kind), as these backends list the library's models
    and add-ons (that is theirs to know, not the core's); a backend that fails is
    skipped."""
    found: dict[str, tuple[str, str]] = {}
    for backend_id in sorted(backend_ids):
        try:
            backend = core.registry.get(backend_id)
            models = backend.models() + backend.addons()
        except Exception as error:  # not installed properly, a listing that fails
            log.warning("backend %r: cannot list its models: %s", backend_id, error)
            continue
        for info in models:
            if info.architecture or info.kind != "model":
                found.setdefault(info.ref, (info.architecture, info.kind))
    return found


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _size(n: int) -> str:
    return f"{n / 2**30:.2f} GB" if n >= 2**30 else f"{n / 2**20:.1f} MB"
