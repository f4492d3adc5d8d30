"""Metadata: our format round-trips, other tools' formats are read, untrusted files are safe."""

from __future__ import annotations

import io
import json
import struct
import time
import zlib
from pathlib import Path

import pytest
from PIL import ExifTags, Image
from PIL.PngImagePlugin import PngInfo

from studio.core.metadata import (
    ImageMetadata,
    MetadataError,
    ParsedMetadata,
    decode_user_comment,
    encode_user_comment,
    parse_parameters,
    read_metadata,
    save_image,
)
from studio.core.metadata_files import MAX_TEXT_BYTES, MAX_TOTAL_TEXT, read_texts
from studio.core.request import GenerationRequest, RequestError

FORMATS = ["png", "jpg", "jpeg", "webp"]

UNICODE_PROMPTS = [
    "a cat 🐱 on a 🛸, 4k",
    "مدينة في الليل, שלום עולם",  # right-to-left scripts
    "first line\nsecond line\n\nfourth, with a comma",
    'she said "hello, world": then left',
    "tabs\tand\x01control\x1bcharacters",
    "Steps: 20, Sampler: Euler, Seed: 1",  # looks like a settings line
    "e\u0301 (combining) \u200f RLM, \u2028 line separator, 日本語の猫",
]


def make_metadata(prompt: str = "a red fox in the snow", **request: object) -> ImageMetadata:
    fields: dict[str, object] = dict(
        negative_prompt="blurry",
        seed=42,
        count=2,
        candidates=8,
        width=64,
        height=48,
        steps=20,
        guidance=7.5,
        backend="tiny",
        model="tiny-v1",
    )
    fields.update(request)
    return ImageMetadata(
        GenerationRequest(prompt, **fields),  # type: ignore[arg-type]
        sampler="Euler a",
        model_hash="0123abcdef",
        score=0.8125,
        rank=1,
        created_at=1_700_000_000.5,
    )


def image(mode: str = "RGB") -> Image.Image:
    return Image.new(mode, (64, 48), (200, 30, 30, 255)[: len(mode)])


def png_with_text(path: Path, texts: dict[str, str]) -> Path:
    info = PngInfo()
    for key, value in texts.items():
        info.add_text(key, value)
    image().save(path, "PNG", pnginfo=info)
    return path


def saved(fmt: str, metadata: ImageMetadata | None) -> io.BytesIO:
    buffer = io.BytesIO()
    save_image(image(), buffer, fmt, metadata)
    buffer.seek(0)
    return buffer


# --------------------------------------------------------------------------- our format


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_of_our_format(tmp_path: Path, fmt: str) -> None:
    metadata = make_metadata()
    path = tmp_path / f"out.{fmt}"
    save_image(image(), path, fmt.upper(), metadata)

    found = read_metadata(path)

    assert found.source_format == "studio"
    assert found.studio == metadata
    assert (found.prompt, found.negative_prompt) == ("a red fox in the snow", "blurry")
    assert found.seed == 42
    assert (found.steps, found.guidance, found.width, found.height) == (20, 7.5, 64, 48)
    assert (found.model, found.model_hash, found.sampler) == ("tiny-v1", "0123abcdef", "Euler a")
    assert found.to_request() == metadata.request
    with Image.open(path) as opened:
        assert opened.format == {"jpg": "JPEG"}.get(fmt, fmt.upper())


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
@pytest.mark.parametrize("prompt", UNICODE_PROMPTS)
def test_unicode_prompts_round_trip_exactly(fmt: str, prompt: str) -> None:
    metadata = make_metadata(prompt, negative_prompt=f"not {prompt}")

    found = read_metadata(saved(fmt, metadata))

    assert found.studio == metadata
    assert found.prompt == prompt
    # The A1111 text alone carries them exactly too.
    from_text = parse_parameters(found.raw["parameters"])
    assert (from_text.prompt, from_text.negative_prompt) == (prompt, f"not {prompt}")
    assert (from_text.seed, from_text.guidance) == (42, 7.5)


def test_png_text_is_tEXt_when_latin1_and_iTXt_otherwise() -> None:  # noqa: N802
    latin = saved("png", make_metadata("café crème, naïve")).getvalue()
    assert b"tEXtparameters\0caf\xe9" in latin
    wide = saved("png", make_metadata("a cat 🐱")).getvalue()
    assert b"iTXtparameters\0" in wide
    assert "a cat 🐱".encode() in wide


def test_parameters_text_layout() -> None:
    metadata = ImageMetadata(
        GenerationRequest(
            "a fox\non snow",
            negative_prompt="blurry",
            seed=7,
            width=512,
            height=768,
            guidance=7.0,
            model="my, model: v2",
        ),
        created_at=1.0,
    )
    assert metadata.parameters_text() == (
        "a fox\non snow\n"
        "Negative prompt: blurry\n"
        "Steps: 1, Sampler: Default, CFG scale: 7, Seed: 7, Size: 512x768, Model: my model v2, "
        "Candidates: 4, Version: Studio 0.1.0"
    )  # Steps and Sampler always (readers need them), plain; an empty hash left out
    assert json.loads(metadata.to_json())["request"]["model"] == "my, model: v2"  # as it was


def exif_entries(tiff: bytes) -> dict[int, tuple[int, bytes]]:
    """{tag: (type, value)} of a big-endian EXIF block's Exif IFD, read by hand."""

    def entries(at: int) -> dict[int, tuple[int, int, bytes]]:
        (count,) = struct.unpack(">H", tiff[at : at + 2])
        rows = (
            struct.unpack(">HHI4s", tiff[at + 2 + 12 * i : at + 14 + 12 * i]) for i in range(count)
        )
        return {tag: (kind, size, where) for tag, kind, size, where in rows}

    (ifd0,) = struct.unpack(">I", tiff[4:8])
    (exif_at,) = struct.unpack(">I", entries(ifd0)[0x8769][2])
    found = {}
    for tag, (kind, size, where) in entries(exif_at).items():
        start = struct.unpack(">I", where)[0] if size > 4 else None
        found[tag] = (kind, tiff[start : start + size] if start is not None else where[:size])
    return found


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_exif_is_big_endian_utf16be_undefined_like_piexif(fmt: str) -> None:
    metadata = make_metadata("ünïcode 🐱")
    with Image.open(saved(fmt, metadata)) as opened:
        tiff = opened.info["exif"].removeprefix(b"Exif\0\0")
    assert tiff[:4] == b"MM\0\x2a"
    entries = exif_entries(tiff)
    # UNDEFINED (7), not BYTE: piexif, and so A1111, reads BYTE as a tuple of numbers.
    assert entries[0x9286] == (7, b"UNICODE\0" + metadata.parameters_text().encode("utf-16-be"))
    assert entries[0x927C] == (7, b"Studio\0" + metadata.to_json().encode())


def test_jpeg_puts_our_json_in_comments_when_exif_would_overflow() -> None:
    metadata = make_metadata("🐱" * 9_000)  # 36 KB as UTF-16, twice that with the JSON

    data = saved("jpeg", metadata)
    found = read_metadata(data)

    assert found.source_format == "studio" and found.studio == metadata
    with Image.open(data) as opened:  # the text stays in EXIF, where other readers look
        assert opened.getexif().get_ifd(0x8769)[0x9286].startswith(b"UNICODE\0")
        opened.load()  # still a JPEG any decoder reads


@pytest.mark.parametrize("word", ["fox ", "🦊 "])  # its text fits one comment, or not
def test_jpeg_text_too_long_for_exif_goes_to_a_comment_as_a1111_reads_it(word, caplog) -> None:
    text = word * (20_000 // len(word))  # the longest prompt a request takes
    metadata = make_metadata(text, negative_prompt=text)  # > 64 KiB as UTF-16

    data = saved("jpeg", metadata)

    assert "too long for a JPEG's 64 KiB of EXIF" in caplog.text
    assert read_metadata(data).studio == metadata  # from our comments, in as many as it takes
    with Image.open(data) as opened:
        assert "exif" not in opened.info  # A1111 reads the last comment when there's no EXIF
        comments = [body for marker, body in opened.applist if marker == "COM"]
    ours = [c for c in comments if c.startswith(b"Studio\0")]
    assert len(ours) == -(-len(metadata.to_json().encode()) // (65533 - 7))
    parameters = metadata.parameters_text().encode()
    assert comments[len(ours) :] == ([parameters] if len(parameters) <= 65533 else [])


def test_no_metadata_writes_none(tmp_path: Path) -> None:
    old = {"parameters": "old prompt\nSteps: 1, Seed: 2, Size: 1x1"}
    source = png_with_text(tmp_path / "source.png", old)
    with Image.open(source) as opened:
        opened.load()
        for fmt in ("png", "jpeg", "webp"):
            buffer = io.BytesIO()
            save_image(opened, buffer, fmt, None)
            found = read_metadata(buffer)
            assert (found.source_format, found.raw) == ("none", {})
            with Image.open(buffer) as again:
                assert "exif" not in again.info and "parameters" not in again.info


def test_save_image_converts_modes_and_rejects_unknown_formats() -> None:
    buffer = io.BytesIO()
    save_image(Image.new("RGBA", (8, 8), (0, 0, 0, 0)), buffer, "jpg", make_metadata())
    with Image.open(buffer) as opened:
        assert opened.mode == "RGB"
        assert opened.getpixel((0, 0)) == pytest.approx((255, 255, 255), abs=2)  # onto white
    buffer = io.BytesIO()
    save_image(Image.new("P", (8, 8)), buffer, "png")
    assert Image.open(buffer).mode == "RGB"
    with pytest.raises(ValueError, match="unsupported image format 'gif'"):
        save_image(image(), io.BytesIO(), "gif")


def test_from_json_rejects_what_is_not_ours() -> None:
    good = json.loads(make_metadata().to_json())
    assert good["format"] == "studio" and good["version"] == 1
    assert good["request"]["prompt"] == "a red fox in the snow"
    for bad in (
        "",
        "{",
        "[]",
        '{"format": "other"}',
        '{"format": "studio", "request": 1}',
        '{"format": "studio", "request": {"prompt": "x", "count": null}}',
        '{"format": "studio", "request": {"prompt": ""}}',
    ):
        with pytest.raises(ValueError):
            ImageMetadata.from_json(bad)


# --------------------------------------------------------------------------- A1111 text

A1111_FULL = (
    "masterpiece, best quality, (1girl:1.2), <lora:detail:0.6>\n"
    "looking at viewer, city lights\n"
    "Negative prompt: (worst quality, low quality:1.4), bad hands,\n"
    "watermark\n"
    "Steps: 28, Sampler: DPM++ 2M Karras, Schedule type: Karras, CFG scale: 6.5, "
    "Seed: 3141592653, Size: 512x768, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, "
    "Denoising strength: 0.45, Clip skip: 2, Hires upscale: 2, Hires upscaler: Latent, "
    'Lora hashes: "detail: 7d2f6b5a3c4e", TI hashes: "easynegative: c74b4e810b03", '
    'Template: "a \\"quoted\\" word, and a comma", Version: v1.9.4'
)


def test_parse_real_world_parameters() -> None:
    found = parse_parameters(A1111_FULL)

    assert found.source_format == "parameters"
    assert found.prompt == (
        "masterpiece, best quality, (1girl:1.2), <lora:detail:0.6>\nlooking at viewer, city lights"
    )
    assert found.negative_prompt == "(worst quality, low quality:1.4), bad hands,\nwatermark"
    assert (found.steps, found.guidance, found.seed) == (28, 6.5, 3141592653)
    assert (found.width, found.height) == (512, 768)
    assert (found.sampler, found.model, found.model_hash) == (
        "DPM++ 2M Karras",
        "v1-5-pruned-emaonly",
        "6ce0161689",
    )
    assert found.extra["Lora hashes"] == "detail: 7d2f6b5a3c4e"
    assert found.extra["Template"] == 'a "quoted" word, and a comma'
    assert found.extra["Clip skip"] == "2"
    assert found.extra["Version"] == "v1.9.4"


def test_parse_without_negative_prompt() -> None:
    found = parse_parameters(
        "a photo of an astronaut riding a horse on mars\n"
        "Steps: 50, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 768x512, Model: sd"
    )
    assert found.prompt == "a photo of an astronaut riding a horse on mars"
    assert found.negative_prompt == ""
    assert (found.width, found.height, found.model) == (768, 512, "sd")


def test_parse_without_settings_line_is_all_prompt() -> None:
    weighted = "portrait, (best quality:1.2), (detailed:1.1), (sharp focus:1.0)"
    assert parse_parameters(weighted).prompt == weighted
    assert parse_parameters(weighted).seed is None
    text = "a castle\nNegative prompt: fog, rain"
    found = parse_parameters(text)
    assert (found.prompt, found.negative_prompt, found.steps) == ("a castle", "fog, rain", None)


def test_parse_odd_settings() -> None:
    found = parse_parameters(
        "p\r\nSteps: x, Seed: 99999999999999999999, CFG scale: nan, Size: big, "
        "Sampler: DDIM, Hires upscaler: Foo, bar, Model: m\r\n"
    )
    assert found.prompt == "p"
    assert found.seed == 99999999999999999999  # kept as found; `to_request` drops it
    assert found.steps is None and found.guidance is None and found.width is None
    assert found.extra["Steps"] == "x" and found.extra["Size"] == "big"
    assert found.extra["Hires upscaler"] == "Foo, bar"  # unquoted comma from older writers
    assert (found.sampler, found.model) == ("DDIM", "m")
    assert parse_parameters("").prompt == ""


def test_parse_is_linear_on_hostile_lines() -> None:
    """Backtracking regexes go quadratic on these lines: 16 times the text must cost about
    16 times the CPU time, not the 256 times of a quadratic parse. CPU time of this
    process, the least of three: a stalled machine adds nothing to it."""

    def cost(text: str) -> float:
        least = float("inf")
        for _ in range(3):
            start = time.process_time()
            parsed = parse_parameters(text)
            least = min(least, time.process_time() - start)
        assert parsed.prompt == text and parsed.seed is None  # not a settings line: prompt
        return max(least, 1e-4)  # below the clock's grain, as good as nothing

    for line, n in (("word ", 12_500), ('a: "', 6_250), ("k: v, ", 6_250)):
        small, large = (cost("prompt\n" + line * times + "Seed: 1") for times in (n, 16 * n))
        assert large < 64 * small, (line, small, large)


def test_image_from_another_tool_with_only_parameters(tmp_path: Path) -> None:
    path = png_with_text(tmp_path / "00001-123.png", {"parameters": A1111_FULL})

    found = read_metadata(path)

    assert found.source_format == "parameters" and found.studio is None
    request = found.to_request(backend="tiny", count=2)
    assert request.prompt.startswith("masterpiece")
    assert (request.seed, request.steps, request.guidance) == (3141592653, 28, 6.5)
    assert (request.width, request.height, request.model) == (512, 768, "v1-5-pruned-emaonly")
    assert (request.backend, request.count) == ("tiny", 2)
    assert request.options["sampler"] == "DPM++ 2M Karras"


@pytest.mark.parametrize(("endian", "codec"), [(">", "utf-16-be"), ("<", "utf-16-le")])
def test_jpeg_from_another_tool_with_user_comment(endian: str, codec: str) -> None:
    exif = Image.Exif()
    exif.endian = endian
    text = "Ünïcode fox 🦊\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 5, Size: 64x48"
    exif[ExifTags.IFD.Exif] = {0x9286: b"UNICODE\0" + text.encode(codec)}
    buffer = io.BytesIO()
    image().save(buffer, "JPEG", exif=exif)

    found = read_metadata(buffer)

    assert (found.source_format, found.prompt, found.seed) == ("parameters", "Ünïcode fox 🦊", 5)


def test_decode_user_comment_variants() -> None:
    text = "a fox, 🦊"
    assert decode_user_comment(encode_user_comment(text)) == text
    assert decode_user_comment(b"UNICODE\0" + text.encode("utf-16-le"), ">") == text  # zeros
    assert decode_user_comment(b"UNICODE\0" + "日本語".encode("utf-16-le"), "<") == "日本語"
    assert decode_user_comment(b"UNICODE\0" + "日本語".encode("utf-16-be"), ">") == "日本語"
    assert decode_user_comment(b"UNICODE\0" + text.encode("utf-16"), "<") == text  # BOM
    assert decode_user_comment(b"ASCII\0\0\0a fox\0") == "a fox"
    assert decode_user_comment(b"\0" * 8 + b"a fox") == "a fox"
    assert decode_user_comment(b"plain bytes") == "plain bytes"
    assert decode_user_comment(b"UNICODE\0\xff") == ""


def test_plain_image_has_no_metadata(tmp_path: Path) -> None:
    path = tmp_path / "plain.png"
    image().save(path)
    found = read_metadata(path)
    assert (found.source_format, found.prompt, found.raw) == ("none", "", {})
    with pytest.raises(RequestError):
        found.to_request()
    assert found.to_request(prompt="fallback").prompt == "fallback"


def test_to_dict_is_json_ready() -> None:
    found = read_metadata(saved("png", make_metadata()))
    data = json.loads(json.dumps(found.to_dict()))
    for key in (
        "prompt",
        "negative_prompt",
        "seed",
        "steps",
        "guidance",
        "width",
        "height",
        "model",
        "model_hash",
        "sampler",
        "source_format",
    ):
        assert key in data
    assert data["request"]["candidates"] == 8
    assert json.dumps(ParsedMetadata("none").to_dict())


# --------------------------------------------------------------------------- untrusted files


@pytest.mark.parametrize(
    "content", [b"", b"hello, I am text\n" * 10, b"\x89PNG\r\n\x1a\n" + b"\0" * 40, b"\xff\xd8\xff"]
)
@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_non_images_raise_metadata_error(tmp_path: Path, content: bytes, suffix: str) -> None:
    path = tmp_path / f"fake{suffix}"
    path.write_bytes(content)
    with pytest.raises(MetadataError, match="fake"):
        read_metadata(path)


def patched_png_size(width: int, height: int) -> bytes:
    data = bytearray(saved("png", None).getvalue())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def test_decompression_bomb_raises_metadata_error(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(patched_png_size(200_000, 200_000))
    with pytest.raises(MetadataError, match=r"too large|decompression bomb"):
        read_metadata(path)
    with pytest.raises(Image.DecompressionBombError):  # Pillow agrees it is one
        Image.open(path)
    # Broken CRC: damaged, not a bomb.
    data = bytearray(path.read_bytes())
    data[30] ^= 0xFF
    with pytest.raises(MetadataError, match="damaged"):
        read_metadata(io.BytesIO(bytes(data)))


def test_decompression_bomb_through_pillow() -> None:
    buffer = io.BytesIO()
    image("L").save(buffer, "GIF")
    data = bytearray(buffer.getvalue())
    data[6:10] = struct.pack("<HH", 65_000, 65_000)  # logical screen size
    with pytest.raises(MetadataError, match="too large"):
        read_metadata(io.BytesIO(bytes(data)))


def test_huge_text_chunks_are_capped(tmp_path: Path) -> None:
    big = "x" * (MAX_TEXT_BYTES + 500_000)
    zipped = PngInfo()
    zipped.add_text("parameters", "p\nSteps: 1, Seed: 2, Size: 8x8")
    zipped.add_text("comment", big, zip=True)  # a zip bomb in miniature
    zipped.add_text("prompt", big)
    path = tmp_path / "big.png"
    image().save(path, "PNG", pnginfo=zipped)

    found = read_metadata(path)

    assert (found.source_format, found.prompt, found.seed) == ("parameters", "p", 2)
    assert len(found.raw["comment"]) == len(found.raw["prompt"]) == 64 * 1024


def test_total_text_is_capped_across_chunks() -> None:
    info = PngInfo()
    for n in range(20):  # each ~1 KB compressed, 1 MiB once inflated
        info.add_text(f"key{n}", "y" * MAX_TEXT_BYTES, zip=True)
    buffer = io.BytesIO()
    image().save(buffer, "PNG", pnginfo=info)

    texts = read_texts(buffer, "many.png")

    assert sum(map(len, texts.values())) <= MAX_TOTAL_TEXT + MAX_TEXT_BYTES
    assert len(texts) < 20


def test_png_exif_user_comment_is_read() -> None:
    exif = Image.Exif()
    exif[ExifTags.IFD.Exif] = {0x9286: encode_user_comment("a fox\nSteps: 3, Seed: 4, Size: 8x8")}
    buffer = io.BytesIO()
    image().save(buffer, "PNG", exif=exif)
    found = read_metadata(buffer)
    assert (found.source_format, found.prompt, found.seed) == ("parameters", "a fox", 4)


def test_malformed_json_never_raises(tmp_path: Path) -> None:
    texts = {
        "studio": '{"format": "studio", "request": {"prompt": "x", "seed": "nope"}',
        "prompt": "[" * 200_000,
        "workflow": '{"nodes": [1, {"id": 1, "type": "KSampler", "widgets_values": 5}]}',
        "invokeai_metadata": "null",
    }
    found = read_metadata(png_with_text(tmp_path / "bad.png", texts))
    assert found.source_format == "none"
    assert set(found.raw) == set(texts)

    texts["parameters"] = "a fox\nSteps: 3, Seed: 4, Size: 8x8"
    found = read_metadata(png_with_text(tmp_path / "bad2.png", texts))
    assert (found.source_format, found.prompt) == ("parameters", "a fox")  # next best format


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_damaged_exif_never_raises() -> None:
    buffer = io.BytesIO()
    image().save(buffer, "JPEG", exif=b"Exif\0\0MM\0*\0\0\0\x08\xff\xff garbage")
    found = read_metadata(buffer)
    assert found.source_format == "none"


def test_text_after_pixel_data_is_found(tmp_path: Path) -> None:
    path = png_with_text(tmp_path / "a.png", {})
    data = path.read_bytes()
    chunk = b"tEXtparameters\0late prompt\nSteps: 1, Seed: 2, Size: 3x4"
    chunk = struct.pack(">I", len(chunk) - 4) + chunk + struct.pack(">I", zlib.crc32(chunk))
    path.write_bytes(data[:-12] + chunk + data[-12:])  # before IEND

    found = read_metadata(path)
    assert (found.prompt, found.width, found.height) == ("late prompt", 3, 4)


def test_reads_from_an_open_handle(tmp_path: Path) -> None:
    path = tmp_path / "h.webp"
    metadata = make_metadata()
    with path.open("wb") as handle:
        save_image(image(), handle, "webp", metadata)
    with path.open("rb") as handle:
        handle.read(5)  # position does not matter
        assert read_metadata(handle).studio == metadata
        assert not handle.closed
