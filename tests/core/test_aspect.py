"""Aspect presets keep the model's native area and the backend's size multiple."""

from __future__ import annotations

import pytest

from studio.core.aspect import PRESETS, preset_size, ratio_of


@pytest.mark.parametrize(
    ("name", "native", "expected"),
    [
        ("1:1", 512, (512, 512)),
        ("4:3", 512, (592, 440)),
        ("3:4", 512, (440, 592)),
        ("3:2", 512, (624, 416)),
        ("16:9", 512, (680, 384)),
        ("9:16", 512, (384, 680)),
        ("1:1", 1024, (1024, 1024)),
        ("16:9", 1024, (1368, 768)),
        ("4:3", 768, (888, 664)),
    ],
)
def test_presets_snap_to_the_native_area(name: str, native: int, expected) -> None:
    ratio = dict(PRESETS)[name]
    width, height = preset_size(ratio, native)
    assert (width, height) == expected
    assert width % 8 == 0 and height % 8 == 0
    assert abs(width * height / native**2 - 1) < 0.05  # about the native area


def test_the_backends_multiple_and_range_are_kept() -> None:
    assert preset_size(16 / 9, 512, multiple=64) == (704, 384)
    width, height = preset_size(16 / 9, 512, multiple=8, min_size=8, max_size=256)
    assert width == 256 and height == 144  # the long side fits, the shape kept
    assert preset_size(1 / 8, 64, multiple=8, min_size=32, max_size=256) == (32, 256)


def test_as_the_input_and_bad_shapes() -> None:
    assert preset_size(ratio_of((4000, 3000)), 512) == (592, 440)
    with pytest.raises(ValueError):
        ratio_of((0, 10))
    with pytest.raises(ValueError):
        preset_size(0.0, 512)
