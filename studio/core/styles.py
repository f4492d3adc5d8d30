"""Prompt styles: a name, a prompt template and a negative prompt, kept in AUTOMATIC1111's
`styles.csv` format so the same file works in both tools.

The format, as A1111 reads and writes it: UTF-8 (written with a byte-order mark), the
header `name,prompt,negative_prompt`, csv quoting where a field needs it, CRLF line ends.
A style's prompt either holds `{prompt}`, which the user's prompt replaces, or is added
after the user's prompt with ", " between; negative prompts are merged the same way, and
several styles are applied one after another, in the order picked.

Groups (interior, art, room type): A1111's file has no group column, and it skips rows
whose name starts with "#". So a row `# Interior,,` starts a group: the styles below it,
up to the next such row, belong to it. A1111 ignores those rows; style names stay plain
("Japandi", not "Interior: Japandi"), so they read well in metadata and on the command line.

The user's file is `<data folder>/styles.csv`, made from the shipped starter set on first
use and edited by hand, in the app, or by importing another file (merged by name).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

from studio.core.files import atomic_write_bytes

FILE_NAME = "styles.csv"
FIELDS = ("name", "prompt", "negative_prompt")
PLACEHOLDER = "{prompt}"
GROUP_MARK = "#"
ENCODING = "utf-8-sig"  # as A1111: a BOM when written, read with or without one
MAX_FILE_BYTES = 8 * 1024 * 1024  # a styles file is text a person edits; refuse more


class StyleError(ValueError):
    """A styles file that cannot be read or written, or a style name not found."""


@dataclass(frozen=True)
class Style:
    """One style: `prompt` holds `{prompt}` or is added after the user's prompt."""

    name: str
    prompt: str = ""
    negative_prompt: str = ""
    group: str = ""  # from the "# Group" row above it in the file; "" = none

    def apply(self, prompt: str, negative_prompt: str = "") -> tuple[str, str]:
        """The prompt and negative prompt with this style applied."""
        return merge(self.prompt, prompt), merge(self.negative_prompt, negative_prompt)


def merge(template: str, text: str) -> str:
    """A1111's rule: `{prompt}` in the template is replaced by `text`; otherwise the two
    are joined with ", " (either one left out when empty)."""
    if PLACEHOLDER in template:
        return template.replace(PLACEHOLDER, text)
    return ", ".join(part for part in (text.strip(), template.strip()) if part)


def apply_styles(
    styles: Iterable[Style], prompt: str, negative_prompt: str = ""
) -> tuple[str, str]:
    """The final prompt and negative prompt: each style applied in turn, in order."""
    for style in styles:
        prompt, negative_prompt = style.apply(prompt, negative_prompt)
    return prompt, negative_prompt


# -- the csv format -------------------------------------------------------------------------


def parse_csv(text: str) -> list[Style]:
    """The styles in `text` (a styles.csv's content, BOM removed), in file order.

    As A1111 reads it: spaces after a comma are skipped, a file with the old `text` column
    instead of `prompt` is read too, and a later style of the same name replaces an earlier
    one in its place. "#" rows start a group (see the module's note).
    """
    reader = csv.DictReader(io.StringIO(text, newline=""), skipinitialspace=True)
    if reader.fieldnames is None:
        return []
    if "name" not in reader.fieldnames:
        raise StyleError("not a styles file: its first line has no 'name' column")
    found: dict[str, Style] = {}
    group = ""
    for row in reader:
        name = (row.get("name") or "").strip()
        if name.startswith(GROUP_MARK):
            group = name.lstrip(GROUP_MARK).strip()
            continue
        if not name:
            continue
        prompt = row.get("prompt") if "prompt" in row else row.get("text")
        negative = row.get("negative_prompt")
        style = Style(name, prompt or "", negative or "", group)
        found[name] = replace(style, group=found[name].group) if name in found else style
    return list(found.values())


def format_csv(styles: Iterable[Style]) -> bytes:
    """`styles` as A1111 writes its file (BOM, header, minimal quoting, CRLF), each group
    after a "# Group" row; ungrouped styles come first, groups in order of appearance."""
    ordered = _by_group(styles)
    out = io.StringIO(newline="")
    writer = csv.writer(out)  # the excel dialect: what A1111's DictWriter uses
    writer.writerow(FIELDS)
    group = ""
    for style in ordered:
        if style.group != group:
            group = style.group
            writer.writerow((f"{GROUP_MARK} {group}", "", ""))
        writer.writerow((style.name, style.prompt, style.negative_prompt))
    return out.getvalue().encode(ENCODING)


def read_styles(path: Path) -> list[Style]:
    """The styles of a styles.csv file; raises StyleError saying why it cannot be read."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise StyleError(f"{path} is too large for a styles file")
        text = path.read_bytes().decode(ENCODING)
    except UnicodeDecodeError as error:
        raise StyleError(f"{path} is not UTF-8 text: {error.reason}") from None
    except OSError as error:
        raise StyleError(f"cannot read {path}: {error.strerror or error}") from None
    try:
        return parse_csv(text)
    except csv.Error as error:
        raise StyleError(f"cannot read {path}: {error}") from None
    except StyleError as error:
        raise StyleError(f"{path}: {error}") from None


def write_styles(path: Path, styles: Iterable[Style]) -> None:
    """Write `styles` to `path` whole or not at all."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, format_csv(styles))
    except OSError as error:
        raise StyleError(f"cannot write {path}: {error.strerror or error}") from None


def starter_styles_bytes() -> bytes:
    """The shipped starter set (package data, so it is there in a wheel install too)."""
    return resources.files("studio").joinpath("resources", FILE_NAME).read_bytes()


def _by_group(styles: Iterable[Style]) -> list[Style]:
    groups: dict[str, list[Style]] = {"": []}
    for style in styles:
        groups.setdefault(style.group, []).append(style)
    return [style for members in groups.values() for style in members]


# -- the user's styles ----------------------------------------------------------------------


class StyleLibrary:
    """The user's styles file: read on each use (a person may edit it meanwhile)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def in_folder(cls, data_folder: Path) -> StyleLibrary:
        return cls(data_folder / FILE_NAME)

    def ensure(self) -> Path:
        """Make the file from the starter set if there is none yet; returns its path."""
        if not self.path.exists():
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(self.path, starter_styles_bytes())
            except OSError as error:
                raise StyleError(f"cannot write {self.path}: {error.strerror or error}") from None
        return self.path

    def styles(self) -> list[Style]:
        return read_styles(self.ensure())

    def find(self, names: Sequence[str]) -> list[Style]:
        """The styles called `names`, in that order (exact name first, else the one name
        that matches ignoring case); raises StyleError naming those not found and all
        there are."""
        styles = self.styles()
        by_name = {s.name: s for s in styles}
        folded: dict[str, list[Style]] = {}
        for style in styles:
            folded.setdefault(style.name.casefold(), []).append(style)
        found, missing = [], []
        for name in names:
            matches = [by_name[name]] if name in by_name else folded.get(name.casefold(), [])
            if len(matches) == 1:
                found.append(matches[0])
            else:
                missing.append(name)
        if missing:
            known = ", ".join(s.name for s in styles) or "none"
            raise StyleError(f"no style {', '.join(map(repr, missing))} (there are: {known})")
        return found

    def save(self, styles: Iterable[Style]) -> None:
        write_styles(self.path, styles)

    def import_file(self, source: Path) -> tuple[list[str], list[str]]:
        """Merge another styles.csv in by name: a style of a name already here takes the
        imported prompt and negative prompt (and keeps its group unless the import names
        one); others are added. Returns the names (added, replaced)."""
        incoming = read_styles(source)
        merged = {s.name: s for s in self.styles()}
        added, replaced = [], []
        for style in incoming:
            old = merged.get(style.name)
            if old is None:
                added.append(style.name)
                merged[style.name] = style
            else:
                replaced.append(style.name)
                merged[style.name] = replace(style, group=style.group or old.group)
        self.save(merged.values())
        return added, replaced

    def export(self, destination: Path) -> int:
        """Write every style to `destination` in the same format; returns how many."""
        styles = self.styles()
        write_styles(destination, styles)
        return len(styles)
