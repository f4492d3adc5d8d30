"""Image metadata: write it the way other local generators do, read every common format.

CONTRACT (to be implemented):

Writing
- PNG: a `parameters` tEXt/iTXt chunk in the A1111 layout, plus a `studio` chunk
  holding `ImageMetadata.to_json()` (the full request and extras).
- JPEG / WebP: the same `parameters` text in EXIF UserComment ("UNICODE\\0" + UTF-16
  in the EXIF block's byte order), plus our JSON in EXIF ImageDescription? (see below).

Reading untrusted files: Pillow's decompression-bomb guard on, text capped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from studio.core.request import GenerationRequest


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

    def parameters_text(self) -> str: ...
    def to_json(self) -> str: ...
    @classmethod
    def from_json(cls, text: str) -> ImageMetadata: ...


@dataclass
class ParsedMetadata:
    """What a reader found in a file, mapped onto request fields where it could."""

    source_format: str  # "studio" | "parameters" | "comfyui" | "invokeai" | "none"
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

    def to_request(self, **defaults: Any) -> GenerationRequest: ...
    def to_dict(self) -> dict[str, Any]: ...


def save_image(image, destination: Path | BinaryIO, fmt: str = "png",
               metadata: ImageMetadata | None = None, *, quality: int = 95) -> None: ...
def read_metadata(source: Path | BinaryIO) -> ParsedMetadata: ...
def parse_parameters(text: str) -> ParsedMetadata: ...
