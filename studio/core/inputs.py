"""Pictures given as input (an image to work from, a mask), stored once by content.

A request names its input pictures by the SHA-256 of their pixels (`InputPicture.digest`),
so a request stays small, replayable and recordable in metadata; the pixels travel with
it (`data`, PNG bytes) to wherever the backend runs. The store keeps each picture once
under the data folder, however many requests use it:

    inputs/ab/abcdef0123….png

Pictures are normalised when they come in: EXIF orientation applied, alpha flattened
onto white (images) and everything converted to RGB (images) or 8-bit grey (masks), so
the digest names what a backend sees. A history image given back as input has the
digest of its own pixels, which is how history knows what came from what.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from studio.core.errors import UserFacingError
from studio.core.files import atomic_open

if TYPE_CHECKING:  # Pillow and numpy load when a picture does: requests are made often
    from PIL import Image

INPUTS_DIR = "inputs"
MAX_INPUT_PIXELS = 64_000_000  # a 9248 x 6936 photo; more is refused as a likely bomb
MAX_INPUT_SIDE = 32_768
IMAGE, MASK = "RGB", "L"


class InputError(ValueError, UserFacingError):
    """A picture that cannot be used as input; the message says why."""


@dataclass(frozen=True)
class InputPicture:
    """An input picture: its digest (what requests, metadata and history record) and,
    once attached, its pixels as PNG bytes."""

    digest: str  # SHA-256 of mode, size and pixels (`pixel_digest`)
    data: bytes = field(default=b"", repr=False, compare=False)

    @property
    def attached(self) -> bool:
        return bool(self.data)

    def open(self) -> Image.Image:
        """The picture (RGB for an image, L for a mask); raises InputError when its pixels
        are not attached (a request read back from metadata: see `InputStore.attach`)."""
        from PIL import Image

        if not self.data:
            raise InputError(f"the input picture {self.digest[:12]}… is not attached")
        with Image.open(io.BytesIO(self.data)) as image:
            image.load()
            return image


def pixel_digest(image: Image.Image) -> str:
    """SHA-256 of an image's mode, size and pixels: the same however it was encoded."""
    digest = hashlib.sha256(f"{image.mode} {image.width}x{image.height}\n".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def load_picture(
    source: Path | bytes | Image.Image | IO[bytes], *, mask: bool = False
) -> Image.Image:
    """Open and normalise a picture given as input; raises InputError saying why not."""
    import numpy as np
    from PIL import Image, ImageOps, UnidentifiedImageError

    kind = "mask" if mask else "image"
    try:
        image = _open(source)
        if image.width * image.height > MAX_INPUT_PIXELS or max(image.size) > MAX_INPUT_SIDE:
            raise InputError(
                f"the {kind} is {image.width} x {image.height} pixels: too large to use "
                f"(at most {MAX_INPUT_PIXELS // 1_000_000} megapixels)"
            )
        image = ImageOps.exif_transpose(image)  # phone photos: as they are seen, not stored
        normal = _as_mask(image) if mask else _as_image(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise InputError(f"the {kind} declares too many pixels to open safely ({error})") from None
    except UnidentifiedImageError:
        raise InputError(f"the {kind} is not an image Studio can read") from None
    except (OSError, SyntaxError, ValueError) as error:
        if isinstance(error, InputError):
            raise
        raise InputError(f"the {kind} cannot be read: {error}") from None
    if mask and not np.asarray(normal).any():
        raise InputError("the mask is black everywhere: it marks nothing to repaint")
    return normal


def _open(source: Path | bytes | Image.Image | IO[bytes]) -> Image.Image:
    from PIL import Image

    if isinstance(source, Image.Image):
        source.load()
        return source
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    elif isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.is_file():
            raise InputError(f"no such file: {path}")
        source = io.BytesIO(path.read_bytes())
    image = Image.open(source)
    image.load()  # decode now: a truncated file fails here, with the file's message
    return image


def _as_image(image: Image.Image) -> Image.Image:
    """RGB; transparency composited onto white, 16-bit and palette images converted."""
    import numpy as np
    from PIL import Image

    if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit grey: scale to 8 bits
        array = np.asarray(image, dtype=np.float64)
        image = Image.fromarray((array / max(array.max(), 1) * 255 + 0.5).astype(np.uint8))
    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, "white")
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert(IMAGE)


def _as_mask(image: Image.Image) -> Image.Image:
    """8-bit grey: white = repaint. A mask with transparency reads its alpha as the mask
    where its colour is uniform (a painted layer exported from an editor)."""
    import numpy as np

    if image.mode in ("RGBA", "LA") or image.has_transparency_data:
        rgba = image.convert("RGBA")
        if np.asarray(rgba.convert("L")).std() < 1:  # one colour: the shape is in alpha
            return rgba.getchannel("A")
    return image.convert(MASK)


def encode_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)  # inputs are read more than written
    return buffer.getvalue()


class InputStore:
    """Input pictures under `folder`, one file per digest."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def path_of(self, digest: str) -> Path:
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise InputError(f"not an input picture's digest: {digest!r}")
        return self.folder / digest[:2] / f"{digest}.png"

    def add(
        self, source: Path | bytes | Image.Image | IO[bytes], *, mask: bool = False
    ) -> InputPicture:
        """Store a picture (normalised; once per content) and return it, attached."""
        image = load_picture(source, mask=mask)
        picture = InputPicture(pixel_digest(image), encode_png(image))
        self.keep(picture)
        return picture

    def keep(self, picture: InputPicture) -> None:
        """Write an attached picture unless it is stored already (atomically: a crash
        never leaves half a file under its digest)."""
        path = self.path_of(picture.digest)
        if path.exists() or not picture.data:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with atomic_open(path, overwrite=False) as handle:
                handle.write(picture.data)
        except FileExistsError:  # another writer stored it meanwhile
            pass

    def has(self, digest: str) -> bool:
        return self.path_of(digest).is_file()

    def get(self, digest: str) -> InputPicture:
        """The stored picture, attached; raises InputError when it is not stored (any more)."""
        try:
            data = self.path_of(digest).read_bytes()
        except FileNotFoundError:
            raise InputError(
                f"the input picture {digest[:12]}… is no longer stored "
                "(the history entries that used it were deleted); give the picture again"
            ) from None
        return InputPicture(digest, data)

    def attach(self, picture: InputPicture | None) -> InputPicture | None:
        """`picture` with its pixels (read from the store when it has none)."""
        if picture is None or picture.attached:
            return picture
        return self.get(picture.digest)

    def remove(self, digests: set[str]) -> int:
        """Delete these pictures' files (the caller checked nothing uses them)."""
        removed = 0
        for digest in digests:
            try:
                self.path_of(digest).unlink()
                removed += 1
            except (FileNotFoundError, InputError):
                pass
        return removed
