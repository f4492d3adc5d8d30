"""Pictures as input: the store, the request fields, refusals, the engine, lineage, metadata
and the CLI's --image / --mask / --strength / --from / --vary, with the fake backend."""

from __future__ import annotations

import io
import json
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from studio.api import EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE
from studio.cli import main
from studio.core.app import Core
from studio.core.history import HistoryStore
from studio.core.inputs import InputError, InputPicture, InputStore, pixel_digest
from studio.core.jobs import JobState
from studio.core.metadata import read_metadata
from studio.core.request import GenerationRequest, RequestError


def png_bytes(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def picture(seed: int = 0, size: tuple[int, int] = (16, 16)) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), np.uint8)
    return Image.fromarray(pixels)


def box_mask(size=(16, 16), box=(0, 0, 8, 8)) -> Image.Image:
    mask = Image.new("L", size, 0)
    mask.paste(255, box)
    return mask


# -- the store ----------------------------------------------------------------------------


def test_a_picture_is_stored_once_by_its_pixels_whatever_its_encoding(tmp_path) -> None:
    store = InputStore(tmp_path / "inputs")
    image = picture(1)
    first = store.add(png_bytes(image))
    again = store.add(png_bytes(image, "BMP"))
    assert first.digest == again.digest == pixel_digest(image)
    assert len(list(store.folder.rglob("*.png"))) == 1
    assert np.array_equal(np.asarray(store.get(first.digest).open()), np.asarray(image))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"this is no picture", "not an image"),
        (png_bytes(picture())[:60], "cannot be read"),
    ],
)
def test_what_is_not_a_picture_is_refused_with_the_reason(tmp_path, data, message) -> None:
    with pytest.raises(InputError, match=message):
        InputStore(tmp_path).add(data)


def test_a_decompression_bomb_is_refused_before_decoding(tmp_path) -> None:
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 60_000, 60_000, 8, 0, 0, 0, 0)  # 3.6 gigapixels, grey
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")
    with pytest.raises(InputError, match=r"too many pixels|too large"):
        InputStore(tmp_path).add(bomb)


def test_masks_that_mark_nothing_are_refused(tmp_path) -> None:
    with pytest.raises(InputError, match="marks nothing"):
        InputStore(tmp_path).add(Image.new("L", (8, 8), 0), mask=True)


def test_pictures_are_normalised_as_a_backend_should_see_them(tmp_path) -> None:
    store = InputStore(tmp_path)
    # A phone photo stored sideways with an EXIF orientation: used as it is seen.
    wide = picture(2, (20, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to view
    rotated = store.add(png_bytes(wide, "JPEG", exif=exif.tobytes())).open()
    assert rotated.size == (10, 20)
    # Transparency goes onto white; 16-bit grey becomes 8-bit RGB.
    clear = store.add(Image.new("RGBA", (4, 4), (255, 0, 0, 0))).open()
    assert clear.mode == "RGB" and clear.getpixel((0, 0)) == (255, 255, 255)
    grey16 = Image.fromarray(np.full((4, 4), 65535, np.uint16))
    assert store.add(grey16).open().getpixel((0, 0)) == (255, 255, 255)
    # A mask painted as a layer: one colour, the shape in alpha.
    layer = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    layer.paste((255, 0, 0, 255), (0, 0, 4, 8))
    mask = store.add(layer, mask=True).open()
    assert mask.mode == "L" and mask.getpixel((0, 0)) == 255 and mask.getpixel((7, 0)) == 0


# -- the request --------------------------------------------------------------------------


def test_requests_carry_pictures_by_digest_and_their_pixels_to_other_processes() -> None:
    image = InputPicture("a" * 64, b"pixels")
    request = GenerationRequest("p", image=image, strength=0.4)
    assert request.to_dict()["image"] == "a" * 64 and request.to_dict()["mask"] == ""
    again = GenerationRequest.from_dict(json.loads(request.to_json()))
    assert again.image == image and not again.image.attached  # digest only, from JSON
    assert pickle.loads(pickle.dumps(request)).image.data == b"pixels"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"mask": "b" * 64}, "a mask needs an image"),
        ({"strength": 0.5}, "strength needs an image"),
        ({"image": "a" * 64, "strength": 1.5}, "strength must be more than 0"),
        ({"image": "a" * 64, "strength": float("nan")}, "strength must be more than 0"),
        ({"image": "not a digest"}, "image must be an input picture"),
    ],
)
def test_bad_picture_fields_are_refused(fields, message) -> None:
    with pytest.raises(RequestError, match=message):
        GenerationRequest("p", **fields)


# -- the engine, history and lineage ----------------------------------------------------------


@pytest.fixture
def core(install_plugins, tmp_path) -> Core:
    install_plugins()
    with Core.open(tmp_path / "data") as core:
        yield core


def run(core: Core, request: GenerationRequest):
    job = core.engine.submit(request)
    assert job.wait(20)
    return job


def test_a_backend_that_takes_no_picture_refuses_one_before_loading(core) -> None:
    import fake_backend

    fake_backend.CALLS.clear()
    image = core.add_input(picture())
    job = run(core, core.request("p", backend="fake-text", width=16, height=16, image=image))
    assert job.state is JobState.FAILED and "takes no input picture" in job.error
    assert not any(call.startswith("load") for call in fake_backend.CALLS)


def test_results_record_their_input_and_history_knows_what_came_from_what(core) -> None:
    size = {"width": 16, "height": 16, "backend": "fake"}
    first = run(core, core.request("first", count=2, **size)).results[0]
    source = core.add_input(first.path)  # a history image given back as input
    assert source.digest == first.digest
    mask = core.add_input(box_mask(), mask=True)
    child = run(core, core.request("edit", count=1, image=source, mask=mask, **size)).results[0]
    made = np.asarray(Image.open(child.path))
    kept = np.asarray(Image.open(first.path))
    assert np.array_equal(made[8:], kept[8:]) and np.array_equal(made[:, 8:], kept[:, 8:])
    assert [e.id for e in core.history.made_from(child)] == [first.id]
    assert [e.id for e in core.history.made_with(first)] == [child.id]
    # The file's own metadata names the input and the mask by digest.
    recorded = read_metadata(child.path).studio.request
    assert (recorded.image.digest, recorded.mask.digest) == (source.digest, mask.digest)


def test_a_picture_used_many_times_is_stored_once_and_goes_with_its_last_entry(core) -> None:
    size = {"width": 16, "height": 16, "backend": "fake", "count": 1}
    image = core.add_input(picture(3))
    entries = [run(core, core.request(f"v{i}", image=image, **size)).results[0] for i in range(3)]
    store = core.history.inputs
    assert store.has(image.digest) and len(list(store.folder.rglob("*.png"))) == 1
    core.history.delete([entries[0].id, entries[1].id])
    assert store.has(image.digest)  # still used by the third
    core.history.delete([entries[2].id])
    assert not store.has(image.digest)


def test_a_request_replayed_from_metadata_reads_its_pictures_from_the_store(core) -> None:
    size = {"width": 16, "height": 16, "backend": "fake", "count": 1}
    image = core.add_input(picture(4))
    made = run(core, core.request("v", image=image, strength=0.25, **size)).results[0]
    # Its own seed, alone (as --from replays it): the ranked job drew 16 candidates.
    recorded = GenerationRequest.from_dict(json.loads(made.request.to_json()))
    replay = recorded.replace(candidates=1)
    assert not replay.image.attached
    again = run(core, replay).results[0]
    assert np.array_equal(np.asarray(Image.open(again.path)), np.asarray(Image.open(made.path)))
    core.history.delete([made.id, again.id])
    failed = run(core, replay)
    assert failed.state is JobState.FAILED and "no longer stored" in failed.error


def test_unused_inputs_go_after_a_grace_period_only(core) -> None:
    image = core.add_input(picture(5))
    assert core.history.remove_unused_inputs() == 0  # may belong to a job in flight
    assert core.history.remove_unused_inputs(older_than=-1) == 1
    assert not core.history.inputs.has(image.digest)


def test_parameters_say_what_other_tools_write_for_picture_inputs(core) -> None:
    size = {"width": 16, "height": 16, "backend": "fake", "count": 1}
    image = core.add_input(picture(6))
    made = run(core, core.request("v", image=image, strength=0.35, **size)).results[0]
    text = read_metadata(made.path).raw["parameters"]
    assert "Denoising strength: 0.35" in text
    default = run(core, core.request("v", image=image, **size)).results[0]
    assert default.request.strength == 0.5  # the backend's default, recorded as it ran


def test_schema_v3_migrates_a_v2_history(tmp_path) -> None:
    import sqlite3

    from studio.core.history_schema import LATEST_VERSION, migrate, schema_version

    path = tmp_path / "history.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, target=2)
    conn.close()
    with HistoryStore(tmp_path) as history:
        assert schema_version(history._conn()) == LATEST_VERSION


# -- the CLI ------------------------------------------------------------------------------


def cli(capsys, *args: str) -> tuple[int, dict | str]:
    code = main([*args, "--json"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == EXIT_OK else err)


GEN = ("generate", "--backend", "fake", "--size", "16x16")


def test_cli_image_mask_and_strength(install_plugins, capsys, tmp_path) -> None:
    install_plugins()
    image, mask = tmp_path / "in.png", tmp_path / "mask.png"
    picture(7).save(image)
    box_mask().save(mask)
    code, out = cli(capsys, *GEN, "edit", "--image", str(image), "--mask", str(mask))
    assert code == EXIT_OK
    assert out["request"]["image"] == pixel_digest(picture(7))
    code, err = cli(capsys, *GEN, "p", "--image", str(image), "--strength", "0")
    assert code != EXIT_OK and "--strength must be more than 0" in err
    code, err = cli(capsys, *GEN, "p", "--mask", str(mask))
    assert code == EXIT_USAGE and "--mask needs a picture" in err
    code, err = cli(capsys, *GEN, "p", "--image", str(tmp_path / "nope.png"))
    assert code == EXIT_NOT_FOUND
    (tmp_path / "text.png").write_text("not a picture")
    code, err = cli(capsys, *GEN, "p", "--image", str(tmp_path / "text.png"))
    assert code == EXIT_USAGE and "not an image" in err
    code, err = cli(capsys, *GEN)
    assert code == EXIT_USAGE and "give a PROMPT" in err


def test_cli_from_makes_exactly_that_image_again_and_flags_override(
    install_plugins, capsys, tmp_path
) -> None:
    install_plugins()
    source = tmp_path / "in.png"
    picture(8).save(source)
    code, made = cli(capsys, *GEN, "p", "--count", "3", "--candidates", "6", "--image", str(source))
    second = made["images"][1]
    code, again = cli(capsys, "generate", "--from", second["path"])
    assert code == EXIT_OK and len(again["images"]) == 1
    assert again["request"]["seed"] == second["seed"]
    first = np.asarray(Image.open(second["path"]))
    assert np.array_equal(np.asarray(Image.open(again["images"][0]["path"])), first)
    code, more = cli(capsys, "generate", "--from", second["path"], "--count", "2", "--seed", "5")
    assert len(more["images"]) == 2 and more["request"]["seed"] == 5
    code, other = cli(capsys, "generate", "other prompt", "--from", second["path"])
    assert other["request"]["prompt"] == "other prompt"


def test_cli_from_says_when_the_input_is_no_longer_stored(install_plugins, capsys, tmp_path):
    install_plugins()
    source = tmp_path / "in.png"
    picture(9).save(source)
    code, made = cli(capsys, *GEN, "p", "--count", "1", "--image", str(source))
    kept = tmp_path / "kept.png"
    kept.write_bytes(Path(made["images"][0]["path"]).read_bytes())
    assert main(["history", "delete", str(made["images"][0]["id"])]) == EXIT_OK
    code, err = cli(capsys, "generate", "--from", str(kept))
    assert code == EXIT_NOT_FOUND and "no longer stored" in err
    code, _ = cli(capsys, "generate", "--from", str(kept), "--image", str(source))
    assert code == EXIT_OK


def test_cli_vary_takes_the_image_its_prompt_and_new_seeds(install_plugins, capsys) -> None:
    install_plugins()
    code, made = cli(capsys, *GEN, "two blue squares", "--count", "1", "--seed", "3")
    entry = made["images"][0]
    code, varied = cli(capsys, "generate", "--vary", str(entry["id"]), "--count", "2")
    assert code == EXIT_OK
    assert varied["request"]["prompt"] == "two blue squares"
    assert varied["request"]["image"] and varied["request"]["seed"] != 3
    code, shown = cli(capsys, "history", "show", str(varied["images"][0]["id"]))
    assert shown["made_from"] == [entry["id"]] and shown["input"]["file"]
    code, parent = cli(capsys, "history", "show", str(entry["id"]))
    assert sorted(parent["children"]) == sorted(i["id"] for i in varied["images"])
    code, _ = cli(capsys, "generate", "--vary", "999999")
    assert code == EXIT_NOT_FOUND
