"""Export: names from a template, no overwriting, metadata kept or stripped, all or nothing."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from PIL import Image

from studio.core import files
from studio.core.export import (
    ExportError,
    ExportItem,
    export_images,
    render_name,
    safe_filename,
)
from studio.core.metadata import ImageMetadata, read_metadata, save_image
from studio.core.request import GenerationRequest

CREATED = 1_700_000_000.0
DAY = datetime.fromtimestamp(CREATED).strftime("%Y-%m-%d")


@dataclass(frozen=True)
class Entry:
    """Shaped like a history entry: all `export_images` needs."""

    path: Path
    metadata: ImageMetadata


def make_entry(folder: Path, prompt: str, seed: int, **extra: object) -> Entry:
    metadata = ImageMetadata(
        GenerationRequest(prompt, seed=seed, width=32, height=24, model="tiny-v1", steps=4),
        created_at=CREATED,
        **extra,  # type: ignore[arg-type]
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"src-{seed}.png"
    save_image(Image.new("RGB", (32, 24), (seed % 255, 90, 160)), path, "png", metadata)
    return Entry(path, metadata)


@pytest.fixture
def entries(tmp_path: Path) -> list[Entry]:
    source = tmp_path / "history"
    return [
        make_entry(source, "A red fox, in the snow at dawn (watercolor)", 42),
        make_entry(source, "城市的夜景 🌃 neon", 7),
    ]


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_names_come_from_the_template(tmp_path: Path, entries: list[Entry]) -> None:
    out = tmp_path / "out"

    paths = export_images(entries, out)

    assert [p.name for p in paths] == [
        f"{DAY}_42_a-red-fox-in-the-snow.png",
        f"{DAY}_7_城市的夜景-neon.png",
    ]
    assert all(p.parent == out for p in paths)
    custom = export_images(entries, out, name_template="{index:03d}-{model}-{time}", fmt="JPG")
    moment = datetime.fromtimestamp(CREATED).strftime("%H%M%S")
    assert [p.name for p in custom] == [f"001-tiny-v1-{moment}.jpg", f"002-tiny-v1-{moment}.jpg"]


def test_never_overwrites(tmp_path: Path, entries: list[Entry]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    taken = out / f"{DAY}_42_a-red-fox-in-the-snow.png"
    taken.write_bytes(b"someone else's file")

    first = export_images(entries[:1] * 3, out)

    assert [p.name for p in first] == [f"{DAY}_42_a-red-fox-in-the-snow-{n}.png" for n in (1, 2, 3)]
    assert taken.read_bytes() == b"someone else's file"


@pytest.mark.parametrize("fmt", ["png", "jpg", "webp"])
def test_metadata_kept_or_stripped(tmp_path: Path, entries: list[Entry], fmt: str) -> None:
    kept = export_images(entries, tmp_path / "kept", fmt=fmt)
    stripped = export_images(entries, tmp_path / "stripped", fmt=fmt, strip_metadata=True)

    for path, entry in zip(kept, entries, strict=True):
        assert read_metadata(path).studio == entry.metadata
    for path in stripped:
        found = read_metadata(path)
        assert (found.source_format, found.raw) == ("none", {})
        with Image.open(path) as opened:
            assert not opened.info.get("exif") and not getattr(opened, "text", {})
            assert opened.size == (32, 24)


def test_accepts_export_items_and_bare_paths(tmp_path: Path, entries: list[Entry]) -> None:
    items = [ExportItem(entries[0].path, None), str(entries[1].path)]

    paths = export_images(items, tmp_path / "out", name_template="{prompt}")

    # No metadata given: the file's stem stands in for the prompt, and none is written.
    assert paths[0].name == "src-42.png"
    assert read_metadata(paths[0]).source_format == "none"
    # A bare path keeps the Studio metadata it carries.
    assert read_metadata(paths[1]).studio == entries[1].metadata


def test_names_are_sanitised(tmp_path: Path) -> None:
    entry = make_entry(tmp_path / "src", '../../etc/passwd <x>:"y"|z?* \x07', 1)
    out = tmp_path / "out"

    [path] = export_images([entry], out, name_template="{prompt}/../{seed}")

    assert path.parent == out
    assert path.name == "etc-passwd-x-y-z_.._1.png"
    assert safe_filename("..") == "image"
    assert safe_filename("CON") == "_CON"
    assert safe_filename("nul.txt") == "_nul.txt"
    assert safe_filename(" name. ") == "name"
    assert safe_filename(".hidden") == "hidden"
    long = safe_filename("猫" * 200)
    assert len(long.encode()) <= 180 and set(long) == {"猫"}


def test_render_name_without_metadata() -> None:
    name = render_name("{seed:08d}_{prompt}_{model}", None, fallback="My Photo")
    assert name == "my-photo"
    assert render_name("{date}_{seed}_{prompt}", None, fallback="x").endswith("_x")


@pytest.mark.parametrize("template", ["{nope}", "{seed.real}", "{0}", "{}", "{date", "x}"])
def test_bad_templates_are_rejected_before_writing(
    tmp_path: Path, entries: list[Entry], template: str
) -> None:
    with pytest.raises(ValueError, match="template"):
        export_images(entries, tmp_path / "out", name_template=template)
    assert not (tmp_path / "out").exists()


def test_bad_format_is_rejected(tmp_path: Path, entries: list[Entry]) -> None:
    with pytest.raises(ValueError, match="unsupported image format"):
        export_images(entries, tmp_path / "out", fmt="tiff")


def test_folder_that_cannot_exist(tmp_path: Path, entries: list[Entry]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")

    with pytest.raises(ExportError, match="a-file") as caught:
        export_images(entries, blocker / "out")

    assert isinstance(caught.value, OSError)


def test_disk_full_leaves_nothing_behind(
    tmp_path: Path, entries: list[Entry], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    real_fsync = os.fsync
    calls = []

    def fsync(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 3:  # file 1, its folder, then file 2
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(files.os, "fsync", fsync)

    with pytest.raises(ExportError, match="No space left on device") as caught:
        export_images(entries, out)

    assert str(out) in str(caught.value)
    assert listing(out) == ["keep.txt"]  # the first image is removed too; no temp files


def test_unreadable_source_rolls_back(tmp_path: Path, entries: list[Entry]) -> None:
    missing = Entry(tmp_path / "gone.png", entries[0].metadata)
    not_image = tmp_path / "fake.png"
    not_image.write_text("hello")

    for bad in (missing, ExportItem(not_image)):
        with pytest.raises(ExportError):
            export_images([entries[0], bad], tmp_path / "out" / "new")
        assert not (tmp_path / "out").exists()  # nor the folders it made
    kept = tmp_path / "kept"
    kept.mkdir()
    with pytest.raises(ExportError):
        export_images([entries[0], missing], kept)
    assert kept.is_dir() and listing(kept) == []  # a folder it found stays


def test_works_where_hard_links_do_not(
    tmp_path: Path, entries: list[Entry], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_link(src: object, dst: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(files.os, "link", no_link)
    out = tmp_path / "out"

    first = export_images(entries[:1], out)
    second = export_images(entries[:1], out)

    assert first[0] != second[0] and second[0].name.endswith("-1.png")
    assert len(listing(out)) == 2
