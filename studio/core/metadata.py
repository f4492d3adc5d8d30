"""Image metadata: write it the way other local generators do, read every common format.

Writing: a PNG gets a `parameters` text chunk in the AUTOMATIC1111 layout (tEXt, or iTXt when
the text is not Latin-1) and a `studio` chunk holding `ImageMetadata.to_json()`; JPEG and
WebP get the same two in EXIF (a JPEG's in comments where its 64 KiB of EXIF is too little:
see `metadata_files`). Reading: our own chunk first, then A1111 `parameters`, never
decoding pixels; other tools' formats are read by `studio.interop`, above the core.
"""

from __future__ import annotations

import io
import json
import math
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, BinaryIO

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from studio import __version__
from studio.core import metadata_formats as formats
from studio.core.metadata_files import (
    MetadataError,
    decode_user_comment,
    encode_user_comment,
    exif_block,
    jpeg_metadata,
    read_texts,
    with_comments,
)
from studio.core.request import (
    MAX_GUIDANCE,
    MAX_SIDE,
    MAX_STEPS,
    SEED_RANGE,
    GenerationRequest,
)

__all__ = [
    "ImageMetadata",
    "MetadataError",
    "ParsedMetadata",
    "decode_user_comment",
    "encode_user_comment",
    "interpret_texts",
    "normalize_format",
    "parse_parameters",
    "quote",
    "read_metadata",
    "save_image",
]

FORMAT_VERSION = 1
SOFTWARE = f"Studio {__version__}"
NEGATIVE_PREFIX = "Negative prompt:"
DEFAULT_SAMPLER = "Default"  # written for a backend that names none
RAW_TEXT_CHARS = 64 * 1024  # kept per chunk in `ParsedMetadata.raw`
MAX_RAW_KEYS = 64

PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}

# `Key: value` fields of the A1111 settings line; quoted values are JSON strings.
_PARAM_FIELD = re.compile(r'\s*(\w[\w \-/]{0,63}):\s*("(?:\\.|[^\\"])*"|[^,]*)\s*(?:,|$)')
_KNOWN_PARAMS = {"Steps", "Sampler", "CFG scale", "Seed", "Size", "Model hash", "Model"}
_SIZE = re.compile(r"(\d{1,6})x(\d{1,6})")
_NOT_PLAIN = re.compile(r'[,:"\x00-\x1f\x7f]')


@dataclass(frozen=True)
class ImageMetadata:
    """What we write into an image file: the request that made it and a few extras."""

    request: GenerationRequest  # its seed is this image's seed
    sampler: str = ""
    model_name: str = ""  # shown as "Model: …"; defaults to request.model
    model_hash: str = ""  # first 10 hex digits of the model file's SHA-256
    score: float | None = None  # ranking score
    rank: int = 0  # 0 = best of its job
    created_at: float = 0.0  # unix time
    # each add-on model (LoRA, ControlNet) as the request names it -> (name, hash)
    addons: dict[str, tuple[str, str]] = field(default_factory=dict)

    def parameter_items(self) -> list[tuple[str, str]]:
        """The settings line's fields, empty values left out, laid out for every reader:
        Steps first and always (sd-prompt-reader finds the line by "Steps:"; sd-parsers
        needs three of Steps, Sampler, CFG scale and Seed), and the fields such readers
        take plain: they split the line at every comma and colon, quoted or not."""
        r = self.request
        items = [
            # A backend without steps (the built-in model decodes its tokens in one pass,
            # nothing to set) runs once, as far as a diffusion tool can tell: 1. Our JSON
            # keeps the request's 0.
            ("Steps", str(r.steps or 1)),
            # The backend's own text without commas (the JSON keeps it as it was given);
            # a reader refuses a line without a sampler.
            ("Sampler", _plain(self.sampler) or DEFAULT_SAMPLER),
            ("CFG scale", _number(r.guidance)),
            ("Seed", str(r.seed)),
            ("Size", f"{r.width}x{r.height}"),
            # As A1111 writes an img2img or inpainting result's, so other readers see it.
            ("Denoising strength", _number(r.strength) if r.image and r.strength else ""),
            ("Mask blur", str(r.options.get("mask_blur", "")) if r.mask else ""),
            # The styles applied (the prompt above is already styled); A1111 writes none,
            # its readers keep an unknown quoted field as it is. Before the model: see below.
            ("Styles", ", ".join(_style_names(r.options.get("styles")))),
            # Before the model: readers that split at commas read a ControlNet unit's
            # quoted "Model: …" as a field of its own, and the last one found wins.
            *self._control_items(),
            ("Lora hashes", self._lora_hashes()),
            ("Model hash", self.model_hash),
            ("Model", _plain(self.model_name or r.model)),
            ("Candidates", str(r.candidates)),
            ("Backend", r.backend),
            ("Score", _number(round(self.score, 4)) if _finite(self.score) else ""),
            ("Version", SOFTWARE),
        ]
        return [(key, value) for key, value in items if value]

    def _lora_hashes(self) -> str:
        """As A1111 writes them: "name: hash, name: hash"."""
        named = [self.addons.get(lora.model) for lora in self.request.split_loras()[1]]
        return ", ".join(f"{name}: {digest}" for name, digest in filter(None, named) if digest)

    def _control_items(self) -> list[tuple[str, str]]:
        """As A1111's ControlNet extension writes each unit: "ControlNet 0": "Module: …,
        Model: name [hash], Weight: …, Guidance Start: …, Guidance End: …"."""
        items = []
        for i, control in enumerate(self.request.controls):
            name, digest = self.addons.get(control.model, (control.model, ""))
            model = f"{name} [{digest}]" if digest else name
            fields_ = [
                ("Module", control.preprocess),
                ("Model", model),
                ("Weight", _number(control.weight)),
                *[(f"Threshold {k.upper()}", _number(v)) for k, v in control.settings.items()],
                ("Guidance Start", _number(control.start)),
                ("Guidance End", _number(control.end)),
            ]
            items.append((f"ControlNet {i}", ", ".join(f"{k}: {v}" for k, v in fields_)))
        return items

    def parameters_text(self) -> str:
        """The A1111 `parameters` text: prompt, negative prompt line, settings line."""
        lines = [self.request.prompt]
        if self.request.negative_prompt:
            lines.append(f"{NEGATIVE_PREFIX} {self.request.negative_prompt}")
        lines.append(", ".join(f"{k}: {quote(v)}" for k, v in self.parameter_items()))
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": "studio",
                "version": FORMAT_VERSION,
                "request": self.request.to_dict(),
                "sampler": self.sampler,
                "model_name": self.model_name,
                "model_hash": self.model_hash,
                "score": self.score if _finite(self.score) else None,
                "rank": self.rank,
                "created_at": self.created_at,
                "addons": {ref: list(pair) for ref, pair in self.addons.items()},
            },
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, text: str) -> ImageMetadata:
        """Read `to_json()` output; raises ValueError for anything else."""
        data = formats.load_json(text)
        if not isinstance(data, dict) or data.get("format") != "studio":
            raise ValueError("not Studio metadata")
        if not isinstance(data.get("request"), dict):
            raise ValueError("Studio metadata without a request")
        try:
            return cls(
                request=GenerationRequest.from_dict(data["request"]),
                sampler=_get(data, "sampler", str, ""),
                model_name=_get(data, "model_name", str, ""),
                model_hash=_get(data, "model_hash", str, ""),
                score=formats.as_float(data.get("score")),
                rank=formats.as_int(data.get("rank")) or 0,
                created_at=formats.as_float(data.get("created_at")) or 0.0,
                addons=_addons(data.get("addons")),
            )
        except TypeError as exc:  # a request field of the wrong type
            raise ValueError(f"bad Studio metadata: {exc}") from exc


@dataclass
class ParsedMetadata:
    """What a reader found in a file, mapped onto request fields where it could."""

    # "studio" | "parameters" (A1111's text) | "none" here; other tools' names from
    # `studio.interop` ("comfyui", "invokeai", "novelai", "swarmui", "fooocus", …)
    source_format: str
    prompt: str = ""
    negative_prompt: str = ""
    seed: int | None = None
    steps: int | None = None
    guidance: float | None = None
    width: int | None = None
    height: int | None = None
    model: str = ""
    model_hash: str = ""
    sampler: str = ""
    extra: dict[str, str] = field(default_factory=dict)  # other key/values found
    studio: ImageMetadata | None = None  # set when our own chunk was present
    raw: dict[str, str] = field(default_factory=dict)  # capped raw text chunks
    notes: list[str] = field(default_factory=list)  # what was found wrong, and left out

    @classmethod
    def from_studio(cls, metadata: ImageMetadata) -> ParsedMetadata:
        r = metadata.request
        return cls(
            "studio",
            prompt=r.prompt,
            negative_prompt=r.negative_prompt,
            seed=r.seed,
            steps=r.steps or None,
            guidance=r.guidance,
            width=r.width,
            height=r.height,
            model=metadata.model_name or r.model,
            model_hash=metadata.model_hash,
            sampler=metadata.sampler or str(r.options.get("sampler", "")),
            extra={k: v for k, v in metadata.parameter_items() if k not in _KNOWN_PARAMS},
            studio=metadata,
        )

    def to_request(self, **defaults: Any) -> GenerationRequest:
        """A request from what was found; `defaults` fill what is missing.

        Values a request cannot hold (a 64-bit seed, 2,000 steps) count as missing.
        Raises `RequestError` when the result is still not a valid request (no prompt).
        """
        if self.studio is not None:
            request = self.studio.request
            fill = {k: v for k, v in defaults.items() if getattr(request, k, None) in ("", None)}
            return request.replace(**fill) if fill else request
        found = {
            "prompt": self.prompt or None,
            "negative_prompt": self.negative_prompt or None,
            "seed": _within(self.seed, 0, SEED_RANGE - 1),
            "steps": _within(self.steps, 1, MAX_STEPS),
            "guidance": _within(self.guidance, 0.0, MAX_GUIDANCE),
            "width": _within(self.width, 1, MAX_SIDE),
            "height": _within(self.height, 1, MAX_SIDE),
            "model": self.model or None,
            "backend": self.extra.get("Backend") or None,
        }
        values = {"prompt": "", **defaults, **{k: v for k, v in found.items() if v is not None}}
        if self.sampler:
            values["options"] = {**dict(defaults.get("options") or {}), "sampler": self.sampler}
        return GenerationRequest(**values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (for `studio info --json`); raw chunks left out."""
        data: dict[str, Any] = {
            f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("studio", "raw")
        }
        data["extra"] = dict(self.extra)
        data["notes"] = list(self.notes)
        if self.studio is not None:
            data["request"] = self.studio.request.to_dict()
            data["score"] = self.studio.score
            data["rank"] = self.studio.rank
            data["created_at"] = self.studio.created_at
        return data


# --------------------------------------------------------------------------- writing


def normalize_format(fmt: str) -> str:
    """The canonical name ("png", "jpeg" or "webp") of a format or suffix; ValueError if none."""
    name = str(fmt).strip().lower().lstrip(".")
    name = "jpeg" if name == "jpg" else name
    if name not in PIL_FORMATS:
        raise ValueError(f"unsupported image format {fmt!r}: use png, jpg/jpeg or webp")
    return name


def save_image(
    image: Image.Image,
    destination: Path | BinaryIO,
    fmt: str = "png",
    metadata: ImageMetadata | None = None,
    *,
    quality: int = 95,
) -> None:
    """Write `image` as PNG, JPEG or WebP to a path or an open binary handle.

    `metadata` None writes no metadata at all (how "strip metadata" export works); the
    image's own info (text, EXIF, comments) is never carried over, its colour profile is.
    """
    kind = normalize_format(fmt)
    options: dict[str, Any] = {}
    comments: list[bytes] = []  # JPEG comment segments, added after Pillow writes
    if icc := image.info.get("icc_profile"):
        options["icc_profile"] = icc
    if kind == "png":
        if metadata is not None:
            options["pnginfo"] = _png_info(metadata)
    else:
        options["quality"] = quality
        if metadata is not None and kind == "jpeg":
            exif, comments = jpeg_metadata(metadata.parameters_text(), metadata.to_json())
            if exif is not None:
                options["exif"] = exif
        elif metadata is not None:
            options["exif"] = exif_block(metadata.parameters_text(), metadata.to_json())
    prepared = _prepare(image, kind)
    if not comments:
        prepared.save(destination, format=PIL_FORMATS[kind], **options)
        return
    buffer = io.BytesIO()
    prepared.save(buffer, format=PIL_FORMATS[kind], **options)
    data = with_comments(buffer.getvalue(), comments)
    if isinstance(destination, str | Path):
        Path(destination).write_bytes(data)
    else:
        destination.write(data)


def quote(value: str) -> str:
    """A1111's quoting of a settings value: JSON when it would break the line's syntax."""
    if any(c in value for c in ',:"') or any(ord(c) < 32 for c in value) or value != value.strip():
        return json.dumps(value, ensure_ascii=False)
    return value


def _prepare(image: Image.Image, kind: str) -> Image.Image:
    """A fresh RGB/RGBA copy without the source's info; JPEG alpha goes onto white."""
    if image.has_transparency_data and kind == "jpeg":
        rgba = image.convert("RGBA")
        out = Image.new("RGB", rgba.size, "white")
        out.paste(rgba, mask=rgba.getchannel("A"))
    else:
        mode = "RGBA" if image.has_transparency_data else "RGB"
        out = image.convert(mode) if image.mode != mode else image.copy()
    out.info = {}
    return out


def _png_info(metadata: ImageMetadata) -> PngInfo:
    info = PngInfo()
    info.add_text("parameters", metadata.parameters_text())  # iTXt when not Latin-1
    info.add_text("studio", metadata.to_json())
    return info


# --------------------------------------------------------------------------- reading


def read_metadata(source: Path | str | BinaryIO) -> ParsedMetadata:
    """Studio's own metadata in `source` (a path or a binary handle), else A1111's text.

    Other tools' formats are read by `studio.interop.read`, which sits above the core.

    Pixel data is never decoded. Raises `MetadataError` when `source` is not an image or
    declares too many pixels, OSError when a path cannot be opened; unreadable metadata
    just yields what could be read (`source_format` "none" at worst).
    """
    if isinstance(source, str | Path):
        with open(source, "rb") as fp:
            return interpret_texts(read_texts(fp, str(source)))
    return interpret_texts(read_texts(source, str(getattr(source, "name", "the image"))))


def interpret_texts(texts: dict[str, str]) -> ParsedMetadata:
    """Map a file's text entries onto request fields, our own chunk first, then A1111's
    text (other tools' formats: `studio.interop`)."""
    found = _from_studio(texts) or _from_parameters(texts)
    found = found or ParsedMetadata("none")
    found.raw = {k: v[:RAW_TEXT_CHARS] for k, v in list(texts.items())[:MAX_RAW_KEYS]}
    return found


def parse_parameters(text: str) -> ParsedMetadata:
    """Parse A1111 `parameters` text: prompt lines, "Negative prompt:" lines, settings line.

    Without a settings line the whole text is the prompt.
    """
    lines = text.rstrip("\r\n").split("\n")
    lines = [line.removesuffix("\r") for line in lines]
    settings = _parse_settings(lines[-1].strip())
    if settings is not None:
        lines.pop()
    found = ParsedMetadata("parameters")
    split = next((i for i, line in enumerate(lines) if line.startswith(NEGATIVE_PREFIX)), None)
    if split is None:
        found.prompt = "\n".join(lines)
    else:
        negative = lines[split][len(NEGATIVE_PREFIX) :].removeprefix(" ")
        found.prompt = "\n".join(lines[:split])
        found.negative_prompt = "\n".join([negative, *lines[split + 1 :]])
    for key, value in (settings or {}).items():
        if not _apply_setting(found, key, value):
            found.extra[key] = value
    return found


def _from_studio(texts: dict[str, str]) -> ParsedMetadata | None:
    if "studio" not in texts:
        return None
    try:
        return ParsedMetadata.from_studio(ImageMetadata.from_json(texts["studio"]))
    except ValueError:
        return None  # damaged or foreign: fall back to the other formats


def _from_parameters(texts: dict[str, str]) -> ParsedMetadata | None:
    text = texts.get("parameters", "")
    return parse_parameters(text) if text.strip() else None


def _parse_settings(line: str) -> dict[str, str] | None:
    """The `Key: value, …` settings line, or None when `line` is not one.

    A settings line starts with a field, has three or more, and at least one A1111 knows.
    Runs in linear time (bounded key length), since the text comes from untrusted files.
    """
    if line.startswith(NEGATIVE_PREFIX):
        return None
    settings: dict[str, str] = {}
    last_key, pos = "", 0
    while pos < len(line):
        match = _PARAM_FIELD.match(line, pos)
        if match is None:
            if not last_key:
                return None
            end = line.find(",", pos)
            end = len(line) if end < 0 else end + 1
            # An unquoted value with a comma (older writers): keep it whole.
            settings[last_key] += "," + line[pos:end].rstrip(",")
            pos = end
            continue
        last_key = match.group(1).strip()
        settings[last_key] = _unquote(match.group(2).strip())
        pos = match.end()
    if len(settings) < 3 or not _KNOWN_PARAMS & settings.keys():
        return None
    return settings


def _unquote(value: str) -> str:
    if len(value) < 2 or value[0] != '"' or value[-1] != '"':
        return value
    loaded = formats.load_json(value)
    return loaded if isinstance(loaded, str) else value


def _apply_setting(found: ParsedMetadata, key: str, value: str) -> bool:
    """Set a known setting on `found`; False when `key` is not one or `value` is bad."""
    if key in ("Steps", "Seed"):
        number = _parse_int(value)
        if number is None:
            return False
        setattr(found, key.lower(), number)
    elif key == "CFG scale":
        found.guidance = _parse_float(value)
        return found.guidance is not None
    elif key == "Size":
        size = _SIZE.fullmatch(value)
        if size is None:
            return False
        found.width, found.height = int(size.group(1)), int(size.group(2))
    elif key in ("Sampler", "Model", "Model hash"):
        setattr(found, key.lower().replace(" ", "_"), value)
    else:
        return False
    return True


# --------------------------------------------------------------------------- small helpers


def _addons(data: Any) -> dict[str, tuple[str, str]]:
    """Our JSON's add-on names and hashes; what isn't [name, hash] strings is dropped."""
    if not isinstance(data, dict):
        return {}
    return {
        str(ref): (pair[0], pair[1])
        for ref, pair in data.items()
        if isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)
    }


def _style_names(value: Any) -> list[str]:
    """`options["styles"]`'s names; anything else (a hand-edited request) is left out."""
    if not isinstance(value, list | tuple):
        return []
    return [name for name in value if isinstance(name, str)]


def _plain(value: str) -> str:
    """`value` as a settings value no reader splits: commas, colons, quotes and control
    characters become spaces, runs of spaces one. "top-k 32, temperature 0.3" ->
    "top-k 32 temperature 0.3"."""
    return " ".join(_NOT_PLAIN.sub(" ", value).split())


def _number(value: float) -> str:
    """7.0 -> "7", 7.5 -> "7.5": shortest text that reads back the same float."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _parse_int(text: str) -> int | None:
    try:
        return int(text.strip()) if len(text) <= 40 else None
    except ValueError:
        return None


def _parse_float(text: str) -> float | None:
    try:
        value = float(text.strip()) if len(text) <= 40 else math.nan
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _within(value: float | None, low: float, high: float) -> Any:
    return value if value is not None and low <= value <= high else None


def _get(data: dict[str, Any], key: str, kind: type, default: Any) -> Any:
    value = data.get(key, default)
    return value if isinstance(value, kind) else default
