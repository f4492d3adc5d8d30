"""What Studio writes, a third-party reader reads: sd-parsers (a real A1111-format reader,
a test dependency) and our own reader find the same prompt, negative prompt, seed, steps,
CFG scale, size, sampler and model in PNG, JPEG and WebP files, for hard prompts.

Limits of such readers, not of our files, that the prompts here stay within: they strip a
prompt's leading and trailing whitespace, and split it at any "Negative prompt:" (ours:
only at the start of a line). A JPEG's EXIF holds 64 KiB: a text longer than that (two
20,000-character prompts) is in no place they look (see the last test).
"""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image
from sd_parsers import ParserManager
from sd_parsers.data import Generators

from studio.core.addons import Control, Lora
from studio.core.inputs import InputStore
from studio.core.metadata import ImageMetadata, ParsedMetadata, read_metadata, save_image
from studio.core.request import MAX_PROMPT_CHARS, GenerationRequest

FORMATS = ["png", "jpeg", "webp"]
_UNIT = 'a "red" fox, (snow:1.2), Ünïcode café, 一只狐狸 🦊, style: oil\nat dawn; '
LONG = (_UNIT * (MAX_PROMPT_CHARS // len(_UNIT) + 1))[: MAX_PROMPT_CHARS - 1] + "."
PROMPTS = {  # id: (prompt, negative prompt)
    "plain": ("a red fox in the snow", ""),
    "newlines": ("a fox\non snow\n\nat dawn", "blurry\nlow quality"),
    "punctuation": (
        'masterpiece, (a "red" fox:1.2), {snow|rain}, Steps: 20, Seed: 5, \\ end',
        'text, "watermark", bad: hands, 50%',
    ),
    "non-ascii": ("一只狐狸在雪地里, Ünïcode café, ﬁne 🦊", "ぼやけた, 低品質"),
    "20,000 characters": (LONG, "blurry, low quality"),
}
SETTINGS = {  # what the engine records, per backend: id: (request fields, metadata fields)
    "sd": (
        dict(steps=20, guidance=7.5, seed=2**32 - 1, width=512, height=768, backend="sd"),
        dict(sampler="DPM++ 2M Karras", model_name="tiny-v1.5", model_hash="0123abcdef"),
    ),
    # No steps (JSON 0, text 1), guidance its default; its sampler's settings in the name.
    "built-in": (
        dict(guidance=2.0, seed=7, count=4, candidates=16, backend="shapes"),
        dict(sampler="top-k 32 temperature 0.3", model_name="Shapes v1 (built in)", score=0.91),
    ),
}
parser = ParserManager()
# sd-parsers caches its last EXIF read under id(image): every image it was given is kept
# open, so that a later image never reuses an id and gets an earlier one's text.
_given: list[Image.Image] = []


def written(fmt: str, metadata: ImageMetadata) -> io.BytesIO:
    buffer = io.BytesIO()
    save_image(Image.new("RGB", (64, 48), "teal"), buffer, fmt, metadata)
    buffer.seek(0)
    return buffer


def both_read(data: io.BytesIO) -> tuple[ParsedMetadata, dict | None]:
    """(our reader's fields, sd-parsers' same fields as ours are named: None when it found
    nothing)."""
    ours = read_metadata(data)
    data.seek(0)
    _given.append(Image.open(data))
    info = parser.parse(_given[-1])
    if info is None:
        return ours, None
    assert info.generator == Generators.AUTOMATIC1111
    (sampler,) = info.samplers
    values = sampler.parameters
    width, height = info.metadata["Size"].split("x")
    negatives = [str(p) for p in sampler.negative_prompts]
    return ours, {
        "prompt": "\n".join(str(p) for p in sampler.prompts),
        "negative_prompt": negatives[0] if negatives else "",
        "seed": int(values["seed"]),
        "steps": int(values["steps"]),
        "guidance": float(values["cfg_scale"]),
        "width": int(width),
        "height": int(height),
        "sampler": sampler.name,
        "model": sampler.model.name if sampler.model else "",
        "model_hash": (sampler.model.hash or "") if sampler.model else "",
    }


def ours_as_theirs(ours: ParsedMetadata) -> dict:
    fields = {name: getattr(ours, name) for name in ("prompt", "negative_prompt", "seed")}
    fields["steps"] = ours.steps or 1  # a backend without steps: the text says 1
    for name in ("guidance", "width", "height", "sampler", "model", "model_hash"):
        fields[name] = getattr(ours, name)
    return fields


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("backend", SETTINGS)
@pytest.mark.parametrize("prompts", PROMPTS.values(), ids=PROMPTS)
def test_sd_parsers_and_our_reader_read_the_same_fields(fmt, backend, prompts) -> None:
    fields, extras = SETTINGS[backend]
    request = GenerationRequest(prompts[0], negative_prompt=prompts[1], **fields)
    metadata = ImageMetadata(request, created_at=1.0, **extras)

    ours, theirs = both_read(written(fmt, metadata))

    assert ours.studio == metadata  # all of it, from our JSON
    assert theirs == ours_as_theirs(ours)
    assert (theirs["prompt"], theirs["negative_prompt"]) == prompts


def test_add_ons_and_a_sampler_with_commas_leave_the_fields_readers_take(tmp_path) -> None:
    """A ControlNet unit's quoted "Model: …" comes before our model, and a backend's
    sampler text with commas is written plain, so that readers that split at commas
    keep the right model and the whole sampler. Our JSON keeps the sampler as given."""
    image = InputStore(tmp_path).add(Image.new("RGB", (64, 64), "white"))
    control = Control("room-canny", image, "canny", 0.8, 0.0, 0.6, settings={"low": 50})
    request = GenerationRequest(
        "a room <lora:ink:0.5>", loras=(Lora("grain", 1.0),), controls=(control,), steps=4
    )
    addons = {
        "ink": ("ink", "0123456789ab"),
        "grain": ("grain", "ba9876543210"),
        "room-canny": ("control_canny", "abcdef0123"),
    }
    metadata = ImageMetadata(
        request,
        sampler="top-k 32, temperature 0.3",
        model_name="Base, v2: pruned",
        model_hash="aaaa11112222",
        addons=addons,
    )
    for fmt in FORMATS:
        ours, theirs = both_read(written(fmt, metadata))
        assert theirs is not None
        assert theirs["sampler"] == "top-k 32 temperature 0.3"
        assert (theirs["model"], theirs["model_hash"]) == ("Base v2 pruned", "aaaa11112222")
        assert (ours.sampler, ours.model) == ("top-k 32, temperature 0.3", "Base, v2: pruned")
        assert ours.extra["Lora hashes"] == "ink: 0123456789ab, grain: ba9876543210"
        assert ours.extra["ControlNet 0"].startswith("Module: canny, Model: control_canny [")
    assert json.loads(metadata.to_json())["sampler"] == "top-k 32, temperature 0.3"


def test_a_backend_naming_no_sampler_still_writes_one_readers_accept() -> None:
    metadata = ImageMetadata(GenerationRequest("a fox", steps=3, backend="fake"))
    assert dict(metadata.parameter_items())["Sampler"] == "Default"
    _, theirs = both_read(written("png", metadata))
    assert theirs is not None and theirs["sampler"] == "Default" and theirs["steps"] == 3


def test_a_text_too_long_for_jpeg_exif_is_read_by_us_only_there() -> None:
    """Two 20,000-character prompts: 80 KB as EXIF's UTF-16, beyond a JPEG's 64 KiB.
    sd-parsers reads PNG and WebP; in a JPEG the text is a comment (A1111 reads that),
    and our JSON, in comments too, keeps everything."""
    request = GenerationRequest(LONG, negative_prompt=LONG[::-1].strip(), steps=20, seed=3)
    metadata = ImageMetadata(request, sampler="Euler a", model_name="tiny")
    for fmt in FORMATS:
        ours, theirs = both_read(written(fmt, metadata))
        assert ours.studio == metadata
        if fmt == "jpeg":
            assert theirs is None
        else:
            assert theirs == ours_as_theirs(ours)
