"""Core wiring (reconcile on start, defaults) and the thumbnail cache."""

from __future__ import annotations

import os
import shutil

from PIL import Image

from studio.core.app import Core
from studio.core.metadata import ImageMetadata
from studio.core.request import GenerationRequest
from studio.core.thumbnails import ThumbnailCache


def saved_entry(core: Core, prompt: str = "a red circle", size: int = 64):
    image = Image.new("RGB", (size, size), (220, 40, 40))
    meta = ImageMetadata(GenerationRequest(prompt, seed=1, width=size, height=size))
    (entry,) = core.history.save([(image, meta)], job_key="job1")
    return entry


def test_core_reconciles_history_at_start(tmp_path) -> None:
    home = tmp_path / "home"
    core = Core.open(home)
    entry = saved_entry(core)
    core.close()
    copy = entry.path.with_name("copied-0.png")
    shutil.copy(entry.path, copy)  # a file with our metadata but no row: adopted
    entry.path.unlink()  # a row whose file is gone: flagged
    core = Core.open(home)
    try:
        report = core.reconciled.result(30)
        assert report.missing == (entry.id,)
        assert len(report.adopted) == 1
        assert core.history.get(entry.id).missing
        assert core.history.get(report.adopted[0]).request.prompt == "a red circle"
    finally:
        core.close()


def test_requests_take_the_user_defaults(tmp_path) -> None:
    core = Core.open(tmp_path / "home")
    try:
        core.settings.count, core.settings.candidates = 2, 8
        request = core.request("a cat", seed=3, count=None)
        assert (request.count, request.candidates, request.seed) == (2, 8, 3)
        assert core.request("a cat", count=12).candidates == 12  # never fewer than shown
    finally:
        core.close()


def test_thumbnails_are_made_once_and_remade_when_the_source_changes(tmp_path) -> None:
    source = tmp_path / "big.png"
    Image.new("RGB", (1024, 512), (10, 200, 30)).save(source)
    cache = ThumbnailCache(tmp_path / "thumbs", side=128)
    first = cache.get(7, source)
    assert first.size == (128, 64)
    cached = cache.path_for(7)
    stamp = cached.stat().st_mtime_ns
    assert cache.get(7, source).size == (128, 64)
    assert cached.stat().st_mtime_ns == stamp  # served from disk, not remade
    Image.new("RGB", (256, 256), (0, 0, 255)).save(source)
    os.utime(source, ns=(stamp + 10**9, stamp + 10**9))
    assert cache.get(7, source).size == (128, 128)


def test_small_images_keep_exact_colours_and_damaged_cache_is_remade(tmp_path) -> None:
    source = tmp_path / "small.png"
    Image.new("RGB", (64, 64), (245, 140, 20)).save(source)
    cache = ThumbnailCache(tmp_path / "thumbs")
    assert cache.get(1, source).getpixel((5, 5)) == (245, 140, 20)
    cache.path_for(1).write_bytes(b"garbage")
    assert cache.get(1, source).getpixel((5, 5)) == (245, 140, 20)
