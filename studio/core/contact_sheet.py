"""Contact sheets: chosen images in a grid, each with a caption, as one PNG or PDF page.

Small images (the built-in model's 64 x 64) are enlarged with nearest-neighbour so their
pixels stay sharp. The file is written atomically: complete at its name, or absent.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from studio.core.export import ExportError, ExportSource
from studio.core.files import atomic_open

FORMATS = ("png", "pdf")
CELL = 256  # pixels per image side
CAPTION_LINES = 3
MARGIN = 16
FONT_SIZE = 14
MAX_IMAGES = 400


def contact_sheet(
    entries: Sequence[ExportSource], path: Path | str, *, columns: int = 0, cell: int = CELL
) -> Path:
    """Write `entries` as a grid with captions (prompt and seed) to `path`, a `.png` or
    `.pdf`; `columns` 0 picks a near-square grid. Raises ValueError for a bad request,
    `ExportError` when an image cannot be read or the file cannot be written."""
    path = Path(path)
    kind = path.suffix.lower().lstrip(".")
    if kind not in FORMATS:
        raise ValueError(f"a contact sheet is a .png or .pdf file, not {path.name!r}")
    if not 0 < len(entries) <= MAX_IMAGES:
        raise ValueError(f"a contact sheet holds 1 to {MAX_IMAGES} images, not {len(entries)}")
    columns = columns or math.ceil(math.sqrt(len(entries)))
    rows = math.ceil(len(entries) / columns)
    font = ImageFont.load_default(FONT_SIZE)
    line_height = FONT_SIZE + 4
    cell_height = cell + MARGIN // 2 + CAPTION_LINES * line_height
    sheet = Image.new(
        "RGB", (MARGIN + columns * (cell + MARGIN), MARGIN + rows * (cell_height + MARGIN)), "white"
    )
    draw = ImageDraw.Draw(sheet)
    chars_per_line = max(8, int(cell / (FONT_SIZE * 0.55)))
    try:
        for index, entry in enumerate(entries):
            x = MARGIN + (index % columns) * (cell + MARGIN)
            y = MARGIN + (index // columns) * (cell_height + MARGIN)
            with Image.open(entry.path) as image:
                image = image.convert("RGB")
                scale = cell / max(image.size)
                resample = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.LANCZOS
                size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
                image = image.resize(size, resample)
            sheet.paste(image, (x + (cell - image.width) // 2, y + (cell - image.height) // 2))
            caption = _caption(entry, chars_per_line)
            draw.multiline_text(
                (x, y + cell + MARGIN // 2), caption, fill="black", font=font, spacing=4
            )
        buffer = io.BytesIO()
        sheet.save(
            buffer,
            "PDF" if kind == "pdf" else "PNG",
            **({"resolution": 150.0} if kind == "pdf" else {}),
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path) as handle:
            handle.write(buffer.getvalue())
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise ExportError(f"Could not write the contact sheet {path}: {error}") from error
    return path


def _caption(entry: ExportSource, width: int) -> str:
    metadata = entry.metadata
    if metadata is None:
        return Path(entry.path).name
    request = metadata.request
    lines = textwrap.wrap(" ".join(request.prompt.split()), width)[: CAPTION_LINES - 1]
    return "\n".join([*lines, f"seed {request.seed}"])
