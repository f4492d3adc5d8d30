"""`studio styles`: list, import and export the user's prompt styles (A1111's styles.csv),
and `studio generate --style NAME`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from studio.api.commands import EXIT_OK, EXIT_USAGE, CliError, emit
from studio.core.paths import StudioPaths
from studio.core.styles import StyleError, StyleLibrary, apply_styles


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    styles = commands.add_parser(
        "styles", help="prompt styles (A1111's styles.csv): list, import, export"
    )
    verbs = styles.add_subparsers(dest="verb", required=True, metavar="VERB")
    listing = verbs.add_parser("list", parents=[common], help="each style, its group and text")
    listing.set_defaults(run=cmd_styles_list)
    into = verbs.add_parser(
        "import",
        parents=[common],
        help="merge a styles.csv in (a style of the same name is replaced)",
    )
    into.add_argument("file", type=Path)
    into.set_defaults(run=cmd_styles_import)
    out = verbs.add_parser("export", parents=[common], help="write every style to a styles.csv")
    out.add_argument("file", type=Path)
    out.set_defaults(run=cmd_styles_export)


def add_style_flag(gen: argparse.ArgumentParser) -> None:
    gen.add_argument(
        "--style",
        action="append",
        metavar="NAME",
        help="apply a style of `studio styles list` to the prompt, repeatable (in order)",
    )


def styled(args: argparse.Namespace, fields: dict[str, Any]) -> dict[str, Any]:
    """The request fields `--style` changes: the final prompt and negative prompt, and the
    style names in `options["styles"]` (after those of a request read back by --from)."""
    names = getattr(args, "style", None)
    if not names:
        return {}
    library = _library(args)
    try:
        styles = library.find(names)
    except StyleError as error:
        raise CliError(str(error), EXIT_USAGE) from None
    prompt, negative = apply_styles(
        styles, str(fields.get("prompt", "")), str(fields.get("negative_prompt", ""))
    )
    options = dict(fields.get("options") or {})
    earlier = options.get("styles")
    earlier = earlier if isinstance(earlier, list) else []
    options["styles"] = [*earlier, *(s.name for s in styles)]
    return {"prompt": prompt, "negative_prompt": negative, "options": options}


def cmd_styles_list(args: argparse.Namespace) -> int:
    library = _library(args)
    styles = _or_fail(library.styles)
    rows = [
        {"name": s.name, "group": s.group, "prompt": s.prompt, "negative_prompt": s.negative_prompt}
        for s in styles
    ]
    lines, group = [], None
    for style in styles:
        if style.group != group:
            group = style.group
            lines.append(f"{group or 'Ungrouped'}:")
        lines.append(f"  {style.name}: {style.prompt}")
    lines.append(f"({len(styles)} styles in {library.path})")
    emit(args, {"file": str(library.path), "styles": rows}, "\n".join(lines))
    return EXIT_OK


def cmd_styles_import(args: argparse.Namespace) -> int:
    library = _library(args)
    added, replaced = _or_fail(lambda: library.import_file(args.file))
    text = f"{len(added)} styles added, {len(replaced)} replaced, in {library.path}"
    emit(args, {"file": str(library.path), "added": added, "replaced": replaced}, text)
    return EXIT_OK


def cmd_styles_export(args: argparse.Namespace) -> int:
    library = _library(args)
    count = _or_fail(lambda: library.export(args.file))
    emit(args, {"file": str(args.file), "count": count}, f"{count} styles written to {args.file}")
    return EXIT_OK


def _library(args: argparse.Namespace) -> StyleLibrary:
    try:
        paths = StudioPaths.resolve(getattr(args, "data_dir", None)).ensure()
    except ValueError as error:
        raise CliError(str(error), EXIT_USAGE) from None
    return StyleLibrary.in_folder(paths.data)


def _or_fail(action: Any) -> Any:
    try:
        return action()
    except StyleError as error:
        raise CliError(str(error)) from None
