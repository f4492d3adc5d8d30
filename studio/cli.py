"""The headless command line over the same core as the app.

Exit codes: 0 success, 1 the work failed, 2 bad usage or input, 3 not found,
130 interrupted (Ctrl+C). With `--json`, stdout carries one JSON document only.
"""

from __future__ import annotations

import argparse
import logging
import queue
import re
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio import __version__, cli_models, cli_styles
from studio.api.commands import (
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    emit,
    open_core,
)

if TYPE_CHECKING:
    from studio.core.prompt_reading import PromptReading

COMMANDS_GROUP = "studio.commands"
log = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except CliError as error:
        print(f"studio: {error}", file=sys.stderr)
        return error.code
    except KeyboardInterrupt:
        print("studio: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


class _HelpFormatter(argparse.HelpFormatter):
    """Help that shows each option's default, where it has one of its own."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        unset = any(action.default is none for none in (None, False, argparse.SUPPRESS))
        if unset or "default" in text:
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"


class _Parser(argparse.ArgumentParser):
    """The parser of each command and subcommand (argparse makes them of this class)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="studio", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"studio {__version__}")
    common = _Parser(add_help=False)
    common.add_argument("--data-dir", help="keep history and settings here ($STUDIO_HOME)")
    common.add_argument("--json", action="store_true", help="print JSON to stdout")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    gen = commands.add_parser("generate", parents=[common], help="make images from a prompt")
    gen.add_argument("prompt", nargs="?", help="what to draw (optional with --from or --vary)")
    gen.add_argument("--negative", help="negative prompt")
    gen.add_argument(
        "--count",
        type=int,
        help="images to keep and show (default: the app's setting, 4 unless changed)",
    )
    gen.add_argument(
        "--candidates",
        type=int,
        help="images to sample, of which the best --count are kept, for backends that rank "
        "(default: the app's setting, 16 unless changed)",
    )
    gen.add_argument(
        "--seed",
        type=int,
        help="0 to 4294967295: the same seed and settings make the same images "
        "(default: a random one, recorded with the images)",
    )
    gen.add_argument(
        "--size",
        type=_size,
        help="WxH, e.g. 64x64 (default: the app's setting, 64x64 unless changed)",
    )
    gen.add_argument(
        "--steps",
        type=int,
        help="sampling steps, for backends that take them (default: the backend's)",
    )
    gen.add_argument(
        "--guidance",
        type=float,
        metavar="CFG",
        help="how closely to follow the prompt (CFG scale; default: the backend's)",
    )
    gen.add_argument(
        "--sampler",
        metavar="NAME",
        help="one of the backend's samplers, as `studio backends` lists them "
        "(default: the backend's first)",
    )
    gen.add_argument(
        "--option",
        action="append",
        metavar="KEY=VALUE",
        help="a request option of the backend, repeatable; VALUE is read as JSON where it "
        "can be (top_k=16, rank=false), else as text",
    )
    gen.add_argument("--backend", help="backend id (see `studio backends`)")
    gen.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="run on a Ray cluster: its address, or auto (the one `ray start --head` made here)",
    )
    gen.add_argument("--model", help="model name or path")
    pictures = gen.add_argument_group("pictures in")
    pictures.add_argument("--image", type=Path, metavar="FILE", help="a picture to work from")
    pictures.add_argument(
        "--mask", type=Path, metavar="FILE", help="the part of it to repaint: white = repaint"
    )
    pictures.add_argument(
        "--strength",
        type=float,
        metavar="S",
        help="how far results may move from the picture: 0 < S <= 1 (default: the backend's)",
    )
    pictures.add_argument(
        "--mask-blur",
        type=int,
        metavar="PX",
        help="feather the mask inward by PX pixels (backends that blur masks; default 4)",
    )
    pictures.add_argument(
        "--inpaint-area",
        choices=["whole", "masked"],
        help="redraw the whole picture, or only the masked area at the model's resolution",
    )
    starts = pictures.add_mutually_exclusive_group()
    starts.add_argument(
        "--from",
        dest="from_image",
        type=Path,
        metavar="FILE",
        help="every setting from an image's metadata (flags override); makes that image again",
    )
    starts.add_argument(
        "--vary",
        metavar="FILE_OR_ID",
        help="variations: the image (a file or a history id) as input, its prompt, new seeds",
    )
    _add_addon_flags(gen)
    cli_styles.add_style_flag(gen)
    gen.add_argument("--out", type=Path, help="also write the images into this folder")
    gen.add_argument(
        "--format", default="png", choices=["png", "jpg", "webp"], help="of the files in --out"
    )
    gen.set_defaults(run=cmd_generate)

    hist = commands.add_parser("history", help="list, search, show, export, delete")
    verbs = hist.add_subparsers(dest="verb", required=True, metavar="VERB")
    for name, helptext in (("list", "newest first"), ("search", "full-text prompt search")):
        verb = verbs.add_parser(name, parents=[common], help=helptext)
        if name == "search":
            verb.add_argument("query")
        verb.add_argument("--limit", type=_at_least(1), default=50, help="entries to list")
        verb.add_argument(
            "--offset", type=_at_least(0), default=0, help="newest entries to skip first"
        )
        verb.add_argument("--favourites", action="store_true", help="only favourites")
        verb.add_argument("--backend", help="only images of this backend (its id)")
        verb.add_argument("--model", help="only images of this model")
        verb.set_defaults(run=cmd_history_list)
    show = verbs.add_parser("show", parents=[common], help="one entry in full")
    show.add_argument("id", type=int)
    show.set_defaults(run=cmd_history_show)
    export = verbs.add_parser("export", parents=[common], help="write entries to a folder")
    export.add_argument("ids", type=int, nargs="+", metavar="ID")
    export.add_argument("--out", type=Path, required=True, help="the folder to write into")
    export.add_argument(
        "--format", default="png", choices=["png", "jpg", "webp"], help="of the files written"
    )
    export.add_argument(
        "--strip-metadata", action="store_true", help="write no prompt or settings into them"
    )
    export.add_argument(
        "--name",
        default="{date}_{seed}_{prompt}",
        help="file-name template of {date} {time} {seed} {prompt} {index} {model}",
    )
    export.set_defaults(run=cmd_history_export)
    delete = verbs.add_parser("delete", parents=[common], help="delete entries and files")
    delete.add_argument("ids", type=int, nargs="+", metavar="ID")
    delete.add_argument("--keep-files", action="store_true")
    delete.set_defaults(run=cmd_history_delete)

    backends = commands.add_parser("backends", parents=[common], help="installed backends")
    backends.set_defaults(run=cmd_backends)

    report = commands.add_parser(
        "report", parents=[common], help="a zip of the log, versions and backends, to report a bug"
    )
    report.add_argument("--out", type=Path, default=Path("studio-report.zip"))
    report.add_argument(
        "--with-prompts",
        action="store_true",
        help="keep prompts in the log (left out unless you say so)",
    )
    report.set_defaults(run=cmd_report)

    info = commands.add_parser("info", parents=[common], help="the metadata of an image file")
    info.add_argument("file", type=Path)
    info.set_defaults(run=cmd_info)
    cli_models.register(commands, common)
    cli_styles.register(commands, common)
    _add_plugin_commands(commands, common)
    return parser


def _add_plugin_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Commands that plugins declare in the `studio.commands` entry-point group.

    Each entry point is a function `register(commands, common)` that adds subparsers
    whose `run(args) -> int` is set as a default. A plugin that fails is reported and
    skipped; the other commands keep working.
    """
    from importlib.metadata import entry_points

    for point in entry_points(group=COMMANDS_GROUP):
        try:
            point.load()(commands, common)
        except Exception as error:
            message = f"studio: commands of plugin {point.name!r} unavailable: {error}"
            print(message, file=sys.stderr)


def _at_least(least: int) -> Any:
    """An argparse type: a whole number no less than `least`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"must be {least} or more (got {value})")
        return value

    return parse


def _size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*[xX\u00d7]\s*(\d+)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"size must look like 64x64, not {text!r}")
    return int(match[1]), int(match[2])


# -- generate -----------------------------------------------------------------


def _add_addon_flags(gen: argparse.ArgumentParser) -> None:
    """LoRAs and ControlNets. Each --control-* flag is given once (for every ControlNet)
    or once per --control-model, in the same order."""
    addons = gen.add_argument_group("add-on models (LoRA, ControlNet)")
    addons.add_argument(
        "--lora",
        action="append",
        metavar="NAME_OR_PATH[:WEIGHT]",
        help="a LoRA and its weight (default 1), repeatable; or <lora:NAME:W> in the prompt",
    )
    addons.add_argument(
        "--control-model", action="append", metavar="NAME_OR_PATH", help="a ControlNet"
    )
    addons.add_argument(
        "--control-image", action="append", type=Path, metavar="FILE", help="its control image"
    )
    addons.add_argument(
        "--control-preprocess",
        action="append",
        metavar="NAME",
        help="make the control map from the image: canny, invert, none (default: none)",
    )
    addons.add_argument(
        "--control-weight", action="append", type=float, metavar="W", help="default 1"
    )
    addons.add_argument(
        "--control-start",
        action="append",
        type=float,
        metavar="S",
        help="the fraction of the steps it starts at (default 0)",
    )
    addons.add_argument(
        "--control-end",
        action="append",
        type=float,
        metavar="E",
        help="the fraction of the steps it ends at (default 1)",
    )
    addons.add_argument(
        "--canny-thresholds",
        action="append",
        metavar="LOW,HIGH",
        help="canny's edge thresholds, 0-255 (default 100,200)",
    )


def cmd_generate(args: argparse.Namespace) -> int:
    from studio.cli_progress import ProgressLine
    from studio.cli_sources import generate_request
    from studio.core.errors import user_message
    from studio.core.export import export_images
    from studio.core.jobs import Failed, JobState, Progress, StateChanged
    from studio.core.prompt_reading import read_prompt
    from studio.core.registry import BackendUnavailable

    with open_core(args, executor=f"ray:{args.ray}" if args.ray else "thread") as core:
        if args.model:  # the backend that fits the model, or the one named if it can use it
            from studio.core.model_files import ModelFileError

            try:
                args.backend = core.backend_for_model(args.model, args.backend or "")
            except ModelFileError as error:
                raise CliError(str(error), EXIT_USAGE) from None
        request = generate_request(core, args)
        if not request.backend:
            raise CliError("no generation backend is installed (see `studio backends`)")
        if request.backend not in core.registry.ids():
            installed = ", ".join(core.registry.ids())
            message = f"unknown backend {request.backend!r} (installed: {installed})"
            raise CliError(message, EXIT_USAGE)
        try:
            backend = core.registry.get(request.backend)
            problems = backend.capabilities().problems(request)
            reading = read_prompt(backend, request.prompt)
        except BackendUnavailable as error:
            raise CliError(str(error)) from None
        except Exception as error:  # plugin code: a message, not a traceback
            log.error("backend %r failed", request.backend, exc_info=error)
            raise CliError(user_message(error, f"backend {request.backend!r}")) from None
        if problems:
            raise CliError(f"invalid request: {'; '.join(problems)}", EXIT_USAGE)
        _check_reading(reading)

        events: queue.SimpleQueue[Any] = queue.SimpleQueue()
        core.engine.subscribe(events.put)
        job = core.engine.submit(request)
        progress = ProgressLine(quiet=args.json)
        try:
            while not job.state.finished or not events.empty():
                event = events.get()
                if getattr(event, "job_id", None) != job.id:
                    continue
                if isinstance(event, Progress):
                    progress.progress(event)
                elif isinstance(event, StateChanged):
                    progress.state(event.state.value)
                elif isinstance(event, Failed):
                    progress.done()
                    raise CliError(f"generation failed: {event.message}")
        except KeyboardInterrupt:
            core.engine.cancel(job.id)
            job.wait()
            raise
        progress.done()
        if job.state is JobState.CANCELLED:
            raise CliError("generation cancelled", EXIT_INTERRUPTED)
        exported: list[Path] = []
        if args.out:
            try:
                args.out.mkdir(parents=True, exist_ok=True)
                exported = export_images(job.results, args.out, fmt=args.format)
            except OSError as error:
                raise CliError(_not_exported(args.out, error, job.results)) from None
        paths = exported or [entry.path for entry in job.results]
        ran = job.results[0].request.replace(seed=request.seed) if job.results else request
        data = {
            "job": job.id,
            "request": ran.to_dict(),  # as it ran: the backend's defaults filled in
            "unknown_words": list(reading.unknown),
            "ignored_from": reading.cut.at if reading.cut else None,
            "images": [
                {**_entry_summary(entry), "exported": str(out) if exported else None}
                for entry, out in zip(job.results, paths, strict=True)
            ],
        }
        emit(args, data, "\n".join(str(p) for p in paths))
        return EXIT_OK


def _check_reading(reading: PromptReading) -> None:
    """Refuse a prompt the model would read no known word of (before it is loaded);
    note words it ignores: those it does not know, and those past its limit."""
    if reading.nothing_known:
        cut = reading.cut
        read = f"the first {cut.limit} of this prompt (all it reads)" if cut else "this prompt"
        words = ", ".join(reading.words_read())
        raise CliError(f"the model knows none of the words of {read}: {words}", EXIT_USAGE)
    if reading.unknown:
        words = ", ".join(reading.unknown)
        print(f"studio: note: the model does not know (and ignores): {words}", file=sys.stderr)
    if reading.cut:
        print(
            f"studio: note: the model reads only the first {reading.cut.limit} of a prompt; "
            f"it ignores the rest, from character {reading.cut.at}: {reading.ignored()!r}",
            file=sys.stderr,
        )


def _not_exported(out: Path, error: OSError, results: Sequence[Any]) -> str:
    """What failed, and where the images are all the same: they are in the history."""
    cause = error.__cause__ if isinstance(error.__cause__, OSError) else error  # ExportError's
    why = cause.strerror or str(cause)
    if out.exists() and not out.is_dir():
        why = "it is a file, not a folder"
    where = sorted({str(entry.path.parent) for entry in results})
    ids = ", ".join(f"#{entry.id}" for entry in results)
    return (
        f"could not write the images to {out}: {why}; they are kept in the history "
        f"({ids}) in {', '.join(where)}"
    )


# -- history ------------------------------------------------------------------


def _entry_summary(entry: Any) -> dict[str, Any]:
    r = entry.request
    return {
        "id": entry.id,
        "path": str(entry.path),
        "created_at": entry.created_at,
        "prompt": r.prompt,
        "seed": r.seed,
        "width": r.width,
        "height": r.height,
        "backend": r.backend,
        "model": r.model,
        "score": entry.metadata.score,
        "rank": entry.metadata.rank,
        "favourite": entry.favourite,
        "missing": entry.missing,
    }


def cmd_history_list(args: argparse.Namespace) -> int:
    with open_core(args) as core:
        filters = {
            "favourites_only": args.favourites,
            "backend": args.backend,
            "model": args.model,
        }
        page = {"offset": args.offset, "limit": args.limit}
        if args.verb == "search":
            entries = core.history.search(args.query, **page, **filters)
        else:
            entries = core.history.list(**page, **filters)
        lines = [
            f"{e.id:>7}  {datetime.fromtimestamp(e.created_at):%Y-%m-%d %H:%M}  "
            f"{e.request.seed:>10}  {e.request.width}x{e.request.height}  "
            f"{'*' if e.favourite else ' '} {_clip(e.request.prompt, 60)}"
            for e in entries
        ]
        emit(args, [_entry_summary(e) for e in entries], "\n".join(lines) or "(no entries)")
        return EXIT_OK


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _get_entries(core: Any, ids: Sequence[int]) -> list[Any]:
    entries = [core.history.get(i) for i in ids]
    missing = [str(i) for i, e in zip(ids, entries, strict=True) if e is None]
    if missing:
        raise CliError(f"no history entry with id {', '.join(missing)}", EXIT_NOT_FOUND)
    return entries


def cmd_history_show(args: argparse.Namespace) -> int:
    with open_core(args) as core:
        (entry,) = _get_entries(core, [args.id])
        data = {**_entry_summary(entry), "request": entry.request.to_dict(), "tags": entry.tags}
        data |= {"sampler": entry.metadata.sampler, "model_hash": entry.metadata.model_hash}
        data |= _lineage(core, entry)
        text = "\n".join(f"{k}: {v}" for k, v in data.items() if k not in _NOT_SHOWN)
        text += "".join(f"\n{line}" for line in _lineage_lines(data))
        text += "\nparameters:\n" + entry.metadata.parameters_text()
        emit(args, data, text)
        return EXIT_OK


_NOT_SHOWN = ("request", "input", "mask", "controls", "made_from", "children")


def _lineage(core: Any, entry: Any) -> dict[str, Any]:
    """Its input picture and mask and each ControlNet's map (digest, stored file or
    None), the entries that are its input, and those made from it."""

    def stored(picture: Any) -> dict[str, Any] | None:
        if picture is None:
            return None
        kept = core.history.inputs.has(picture.digest)
        where = str(core.history.inputs.path_of(picture.digest)) if kept else None
        return {"digest": picture.digest, "file": where}

    request = entry.request
    return {
        "input": stored(request.image),
        "mask": stored(request.mask),
        "controls": [stored(c.map or c.image) | {"model": c.model} for c in request.controls],
        "made_from": [e.id for e in core.history.made_from(entry)],
        "children": [e.id for e in core.history.made_with(entry)],
    }


def _lineage_lines(data: dict[str, Any]) -> list[str]:
    lines = []
    named = [("input", data["input"]), ("mask", data["mask"])]
    named += [(f"control map ({c['model']})", c) for c in data["controls"]]
    for name, picture in named:
        if picture:
            where = picture["file"] or "no longer stored"
            lines.append(f"{name}: {picture['digest'][:12]}… ({where})")
    if data["made_from"]:
        lines.append("made from: " + ", ".join(f"#{i}" for i in data["made_from"]))
    if data["children"]:
        lines.append("made with it: " + ", ".join(f"#{i}" for i in data["children"]))
    return lines


def cmd_history_export(args: argparse.Namespace) -> int:
    from studio.core.export import check_template, export_images

    try:  # before anything is made
        check_template(args.name)
    except ValueError as error:
        raise CliError(f"--name: {error}", EXIT_USAGE) from None
    with open_core(args) as core:
        entries = _get_entries(core, args.ids)
        try:
            written = export_images(
                entries,
                args.out,
                fmt=args.format,
                strip_metadata=args.strip_metadata,
                name_template=args.name,
            )
        except (OSError, ValueError) as error:
            raise CliError(f"export failed: {error}") from None
        emit(args, [str(p) for p in written], "\n".join(str(p) for p in written))
        return EXIT_OK


def cmd_history_delete(args: argparse.Namespace) -> int:
    with open_core(args) as core:
        _get_entries(core, args.ids)
        deleted = core.history.delete(args.ids, delete_files=not args.keep_files)
        emit(args, {"deleted": deleted}, f"deleted {deleted} entries")
        return EXIT_OK


# -- backends, info -----------------------------------------------------------


def cmd_backends(args: argparse.Namespace) -> int:
    from studio.core.registry import BackendUnavailable

    with open_core(args) as core:
        rows = []
        for record in core.registry.records():
            models: list[dict[str, Any]] = []
            samplers: list[str] = []
            try:
                backend = core.registry.get(record.id)
                models = [vars(m) for m in backend.models()]
                samplers = list(backend.capabilities().samplers)
                device = backend.device()
            except BackendUnavailable:
                device = ""
            except Exception as error:  # listing models is plugin code too
                core.registry.mark_failed(record.id, error)
                device = ""
            rows.append(
                {
                    "id": record.id,
                    "status": record.status.value,
                    "target": record.target,
                    "distribution": record.distribution,
                    "device": device,
                    "models": models,
                    "samplers": samplers,  # what --sampler takes
                    "error": record.error,
                    "traceback": record.traceback,
                }
            )
        lines = []
        for row in rows:
            lines.append(f"{row['id']}  [{row['status']}]  {row['target']}  {row['device']}")
            lines += [f"    model: {m['name']}  {m['ref']}" for m in row["models"]]
            if row["samplers"]:
                lines.append(f"    samplers: {', '.join(row['samplers'])}")
            if row["error"]:
                lines.append(f"    error: {row['error']}")
        emit(args, rows, "\n".join(lines) or "no backends are installed")
        return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from studio.core.problem_report import write_report

    with open_core(args) as core:
        try:
            out = write_report(core, args.out.expanduser().resolve(), args.with_prompts)
        except OSError as error:
            raise CliError(f"cannot write {args.out}: {error.strerror or error}") from None
    note = "" if args.with_prompts else " (prompts left out)"
    emit(args, {"written": str(out)}, f"wrote {out}{note}")
    return EXIT_OK


def cmd_info(args: argparse.Namespace) -> int:
    """The generation settings an image records, whichever tool wrote them. Exits 0, 2 (not
    an image, damaged, unreadable) or 3 (no such file); never with a traceback."""
    from studio.interop import MetadataError, read

    path: Path = args.file
    if path.is_dir():
        raise CliError(f"{path} is a folder, not an image file", EXIT_USAGE)
    if not path.exists():
        raise CliError(f"no such file: {path}", EXIT_NOT_FOUND)
    if not path.is_file():  # a pipe or a device: reading it could block or never end
        raise CliError(f"{path} is not a regular file", EXIT_USAGE)
    try:
        found = read(path)
    except MetadataError as error:
        raise CliError(str(error), EXIT_USAGE) from None
    except OSError as error:
        raise CliError(f"cannot read {path}: {error.strerror or error}", EXIT_USAGE) from None
    except Exception as error:  # a reader's bug: say so, as a message, not a traceback
        raise CliError(f"could not read the metadata of {path}: {error!r}", EXIT_USAGE) from None
    data = found.to_dict()
    lines = [f"{k}: {v}" for k, v in data.items() if v not in (None, "", {}, []) and k != "notes"]
    text = "\n".join(lines + [f"note: {note}" for note in found.notes])
    emit(args, data, text)
    return EXIT_OK
