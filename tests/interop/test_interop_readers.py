"""`studio.interop.read` beyond the collection: how content is sniffed, which source wins,
how values are checked, and what damaged files say."""

from __future__ import annotations

import io
import json
import struct
import zlib

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from support.foreign_images import basic_graph, comfy_png, image_saver_text
from support.foreign_writers import (
    jpeg_with_app1,
    picture,
    piexif_user_comment,
    pillow_png,
    pillow_save,
    png_with_chunks,
    stealth_bits,
    text_chunk,
    with_stealth,
)

from studio.core.metadata import GenerationRequest, ImageMetadata, save_image
from studio.interop import MetadataError, read, stealth
from studio.interop.found import Found
from studio.interop.values import MAX_SEED, checked

SETTINGS = "Steps: 20, Sampler: Euler, CFG scale: 7, Seed: 3, Size: 64x64"


def read_bytes(data: bytes):
    return read(io.BytesIO(data))


# --------------------------------------------------------------------------- text


def test_tEXt_holding_utf8_is_read_as_utf8_and_latin1_still_as_latin1() -> None:  # noqa: N802
    utf8 = png_with_chunks([text_chunk("parameters", f"#テスト café\n{SETTINGS}", "utf-8")])
    assert read_bytes(utf8).prompt == "#テスト café"
    latin1 = png_with_chunks([text_chunk("parameters", f"café crème\n{SETTINGS}", "latin-1")])
    assert read_bytes(latin1).prompt == "café crème"


def test_parameters_json_or_text_is_decided_by_content() -> None:
    dynamic = read_bytes(pillow_png([("parameters", f"{{red|blue}} fox\n{SETTINGS}")]))
    assert (dynamic.source_format, dynamic.prompt) == ("parameters", "{red|blue} fox")
    unknown = read_bytes(pillow_png([("parameters", json.dumps({"what": "ever"}))]))
    assert unknown.source_format == "none" and unknown.prompt == ""
    assert any("JSON that Studio cannot read" in note for note in unknown.notes)


def test_a_jpeg_comment_without_settings_is_not_a_prompt() -> None:
    found = read_bytes(pillow_save(fmt="JPEG", comment=b"Created with GIMP"))
    assert (found.source_format, found.prompt) == ("none", "")


def test_cfg_scale_in_any_case_and_bad_numbers_are_notes() -> None:
    text = "p\nSteps: 20.5, Sampler: Euler, CFG Scale: 7.5, Seed: 18446744073709551615, Size: 8x8"
    found = read_bytes(pillow_png([("parameters", text)]))
    assert (found.guidance, found.seed, found.steps) == (7.5, MAX_SEED, None)
    assert any(note.startswith("steps '20.5'") for note in found.notes)


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    ("name", "value", "kept"),
    [
        ("seed", 0, 0),
        ("seed", 2**64 - 1, 2**64 - 1),
        ("seed", 2**64, None),
        ("seed", -5, None),
        ("seed", "123", 123),
        ("seed", 1.5, None),
        ("seed", True, None),
        ("steps", 0, None),
        ("steps", 10**24, None),
        ("steps", 30.0, 30),
        ("guidance", float("nan"), None),
        ("guidance", 10**400, None),
        ("guidance", "6.5", 6.5),
        ("guidance", -1, None),
        ("width", 0, None),
        ("width", True, None),
        ("width", [512], None),
        ("height", "768", 768),
    ],
)
def test_values_are_kept_only_when_plausible(name: str, value: object, kept: object) -> None:
    found = checked(Found("x", fields={name: value}))
    assert getattr(found, name) == kept
    assert bool(found.notes) == (kept is None)


def test_text_fields_must_be_text() -> None:
    found = checked(Found("x", fields={"prompt": 5, "model": ["a"], "sampler": "euler"}))
    assert (found.prompt, found.model, found.sampler) == ("", "", "euler")
    assert len(found.notes) == 2


# --------------------------------------------------------------------------- choosing


def test_a_graph_beats_a_placeholder_text_and_fills_from_it() -> None:
    graph = basic_graph()
    text = image_saver_text("unknown", "unknown", 0, (512, 512))
    found = read_bytes(pillow_png([("parameters", text), ("prompt", json.dumps(graph))]))
    assert found.source_format == "comfyui"
    assert found.prompt == graph["6"]["inputs"]["text"]
    assert (found.seed, found.width) == (156680208700286, 512)
    assert found.model_hash == "31e35c80fc"  # only the text has it


def test_seed_zero_is_kept_when_no_one_says_otherwise() -> None:
    found = read_bytes(pillow_png([("parameters", "p\nSteps: 2, Sampler: a, Seed: 0, Size: 8x8")]))
    assert found.seed == 0


def test_studio_files_are_read_by_the_core() -> None:
    metadata = ImageMetadata(GenerationRequest("a fox", seed=5, width=8, height=8), sampler="x")
    for fmt in ("png", "jpeg", "webp"):
        buffer = io.BytesIO()
        save_image(picture(), buffer, fmt, metadata)
        found = read(buffer)
        assert found.studio == metadata and found.source_format == "studio"


def test_comfyui_graph_in_exif_of_a_jpeg() -> None:
    exif = Image.Exif()
    exif[0x0110] = "prompt:" + json.dumps(basic_graph())
    found = read_bytes(pillow_save(fmt="JPEG", exif=exif))
    assert (found.source_format, found.seed) == ("comfyui", 156680208700286)


# --------------------------------------------------------------------------- damaged files


def test_a_png_cut_short_says_so() -> None:
    data = comfy_png(basic_graph())
    with pytest.raises(MetadataError, match="cut short"):
        read_bytes(data[: len(data) - 20])
    with pytest.raises(MetadataError, match="cut short"):
        read_bytes(data[:-12])  # no IEND


def test_a_huge_declared_length_is_damage_not_a_read() -> None:
    data = bytearray(pillow_png([("parameters", f"p\n{SETTINGS}")]))
    at = data.index(b"tEXt") - 4
    data[at : at + 4] = struct.pack(">I", 0xFFFFFFF0)
    with pytest.raises(MetadataError, match="runs past the end"):
        read_bytes(bytes(data))


def test_text_longer_than_the_cap_is_not_shown_as_complete() -> None:
    body = b"parameters\0\0" + zlib.compress(b"x" * (3 << 20) + f"\n{SETTINGS}".encode())
    found = read_bytes(png_with_chunks([(b"zTXt", body)]))
    assert (found.source_format, found.prompt, found.seed) == ("none", "", None)
    assert any("longer than 1 MiB" in note for note in found.notes)


def test_non_images_and_fake_webp_are_refused() -> None:
    for data in (b"", b"hello", b"RIFF\0\0\0\0WEBPJUNK\0\0\0\0", b"\x89PNG\r\n\x1a\n" + b"\0" * 30):
        with pytest.raises(MetadataError):
            read_bytes(data)


def test_exif_user_comment_of_a_webp() -> None:
    found = read_bytes(pillow_save(fmt="WEBP", exif=piexif_user_comment(f"a jay\n{SETTINGS}")))
    assert (found.prompt, found.seed) == ("a jay", 3)
    found = read_bytes(jpeg_with_app1(piexif_user_comment(f"a jay\n{SETTINGS}")))
    assert (found.prompt, found.seed) == ("a jay", 3)


# --------------------------------------------------------------------------- hidden text


def test_hidden_text_is_read_only_when_nothing_else_is() -> None:
    image = with_stealth(picture((64, 64)), f"hidden\n{SETTINGS}")
    buffer = io.BytesIO()
    info = PngInfo()
    info.add_text("parameters", f"visible\n{SETTINGS}")
    image.save(buffer, "PNG", pnginfo=info)
    assert read(buffer).prompt == "visible"
    assert read_bytes(pillow_save(image, "PNG")).prompt == "hidden"


def test_pixels_without_hidden_text_or_with_a_bad_length_read_nothing() -> None:
    noisy = Image.effect_noise((64, 64), 80).convert("RGBA")
    assert read_bytes(pillow_save(noisy, "PNG")).source_format == "none"
    bits = stealth_bits(b"x" * 40, "stealth_pnginfo").encode()
    assert stealth.decode(bits, alpha=True) == "x" * 40
    assert stealth.decode(bits[:-8], alpha=True) is None  # its length says more than there is
    assert stealth.decode(bits, alpha=False) is None  # an alpha signature, not RGB's


def test_a_reading_of_placeholders_alone_is_still_a_reading() -> None:
    graph = {"1": {"class_type": "KSampler", "inputs": {"seed": 0, "positive": ["9", 0]}}}
    graph["1"]["inputs"]["negative"] = ["9", 0]
    found = read_bytes(pillow_png([("prompt", json.dumps(graph))]))
    assert (found.source_format, found.seed) == ("comfyui", 0)
