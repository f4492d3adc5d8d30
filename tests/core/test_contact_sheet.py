"""Contact sheets: a grid of images with captions, as PNG or PDF, all or nothing."""

from __future__ import annotations

import pytest
from PIL import Image

from studio.core.contact_sheet import contact_sheet
from studio.core.export import ExportError, ExportItem
from studio.core.metadata import ImageMetadata
from studio.core.request import GenerationRequest


@pytest.fixture
def items(tmp_path):
    made = []
    for i, colour in enumerate([(200, 0, 0), (0, 160, 0), (0, 0, 220)]):
        path = tmp_path / f"{i}.png"
        Image.new("RGB", (64, 64), colour).save(path)
        request = GenerationRequest(f"picture number {i} of a coloured square", seed=10 + i)
        made.append(ExportItem(path, ImageMetadata(request)))
    return made


def test_a_png_sheet_holds_every_image_sharp_with_its_caption(items, tmp_path) -> None:
    sheet = contact_sheet(items, tmp_path / "out" / "sheet.png", cell=128)
    with Image.open(sheet) as image:
        assert image.format == "PNG"
        # 2 columns for 3 images; cell 128 with 16 px margins
        assert image.width == 16 + 2 * (128 + 16)
        assert image.getpixel((16 + 64, 16 + 64)) == (200, 0, 0)  # enlarged, not blurred
        assert image.getpixel((16 + 128 + 16 + 64, 16 + 64)) == (0, 160, 0)
        caption_band = image.crop((16, 16 + 128 + 8, 16 + 128, 16 + 128 + 8 + 50)).getcolors(4096)
        assert len(caption_band) > 1  # text was drawn under the image


def test_a_pdf_sheet(items, tmp_path) -> None:
    sheet = contact_sheet(items, tmp_path / "sheet.pdf")
    assert sheet.read_bytes().startswith(b"%PDF")


def test_bad_requests_and_unreadable_images_leave_no_file(items, tmp_path) -> None:
    with pytest.raises(ValueError, match=r"\.png or \.pdf"):
        contact_sheet(items, tmp_path / "sheet.gif")
    with pytest.raises(ValueError, match="1 to"):
        contact_sheet([], tmp_path / "sheet.png")
    (tmp_path / "1.png").write_bytes(b"not an image")
    with pytest.raises(ExportError, match="contact sheet"):
        contact_sheet(items, tmp_path / "broken.png")
    assert not list(tmp_path.glob("broken*")) and not list(tmp_path.glob(".*tmp*"))
