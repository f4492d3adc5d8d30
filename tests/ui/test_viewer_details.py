"""The viewer's details of an image made with LoRAs and a ControlNet."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from studio.core.addons import Control, Lora
from studio.core.history import HistoryEntry
from studio.core.inputs import InputStore
from studio.core.metadata import ImageMetadata
from studio.core.request import GenerationRequest
from studio.ui.viewer import describe


def test_details_name_the_loras_and_controlnets_an_image_was_made_with(tmp_path) -> None:
    picture = InputStore(tmp_path).add(Image.new("RGB", (8, 8), "white"))
    control = Control("/cn/room-canny", picture, "canny", 0.8, 0.0, 0.6, map=picture)
    request = GenerationRequest(
        "a room <lora:ink:0.5>", loras=(Lora("grain", -1),), controls=(control,)
    )
    addons = {"/cn/room-canny": ("room-canny", "abcdef0123"), "ink": ("ink", "0123456789ab")}
    entry = HistoryEntry(1, 0.0, Path("x.png"), ImageMetadata(request, addons=addons), "j")
    lines = describe(entry).splitlines()
    assert "LoRA: ink at 0.5" in lines and "LoRA: grain at -1" in lines
    shown = f"ControlNet: room-canny, canny map {picture.digest[:10]}, weight 0.8, steps 0 to 0.6"
    assert shown in lines
