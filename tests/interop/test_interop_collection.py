"""The third-party collection (`support/foreign_images.py`): every field of every file, as
its writer wrote it; the score the README states."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.foreign_images import FIELDS, ForeignImage, collection, generators, write_collection

from studio.interop import read

IMAGES = collection()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    written = write_collection(tmp_path_factory.mktemp("foreign"))
    return {image.name: path for path, image in written}


@pytest.mark.parametrize("image", IMAGES, ids=lambda image: image.name)
def test_every_field_of_every_file(folder: dict[str, Path], image: ForeignImage) -> None:
    found = read(folder[image.name])
    data = json.loads(json.dumps(found.to_dict()))  # as `studio info --json` shows it
    assert {name: data[name] for name in FIELDS} == image.expected
    for word in image.notes:
        assert any(word in note for note in found.notes), (word, found.notes)
    if not image.notes:
        assert found.notes == []


def test_collection_score(folder: dict[str, Path]) -> None:
    """The README's figure: fields right over fields asserted, files, generators."""
    right = total = 0
    for image in IMAGES:
        wrong = image.wrong_fields(read(folder[image.name]).to_dict())
        total += len(FIELDS)
        right += len(FIELDS) - len(wrong)
    print(f"\n{len(IMAGES)} files, {len(generators())} generators: {right}/{total} fields right")
    assert len(IMAGES) >= 40 and len(generators()) >= 10
    assert right / total >= 0.98
