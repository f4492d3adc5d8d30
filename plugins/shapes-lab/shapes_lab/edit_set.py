"""The edit set: Shapes scenes to edit with an image prompt, each with its mask and the
prompt of the whole intended result (DALL-E's image prompts, measured).

One JSON object per line (`edits-v1.jsonl`, package data; made by `make_edits.py`), after
a first line that says what the set is (`{"edit_set": 1, ...}`):

    {"id": "replace-seen-000", "kind": "replace", "split": "seen",
     "prompt": "a yellow heart to the left of a red circle", "strength": 1.0,
     "mask": {"boxes": [[8, 14, 31, 37]]},
     "source": {"background": "white", "objects": [
         {"shape": "square", "color": "blue", "size_px": 19, "x0": 10, "y0": 16}, ...]},
     "result": {... the intended result, the same layout ...}}

`source` is the input picture and `result` the ground truth of the intended result, each
described fully (shape, colour, side and top-left corner of every object's box) so that
`shapes_lab.render` draws them identically. `mask` is white (repaint) on the union of
`boxes` (pixel boxes [x0, y0, x1, y1), y down), or on `{"background": true}`: every
pixel of the source that shows the plain background colour; `null` for a variation
(no mask: the whole picture is redrawn at `strength`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from shapes_backend import world
from shapes_backend.parser import parse_prompt
from shapes_backend.scene import Scene, SceneObject

DEFAULT_EDITS = Path(str(files("shapes_lab") / "edits-v1.jsonl"))  # package data
EDIT_KINDS = ("replace", "add", "recolour", "complete", "background")
VARIATION = "variation"
KINDS = (*EDIT_KINDS, VARIATION)
SPLITS = ("seen", "held_out")


@dataclass(frozen=True)
class Edit:
    id: str
    kind: str  # one of KINDS
    split: str  # "held_out" when the prompt names a held-out colour-shape pair
    prompt: str  # the whole intended result
    source: Scene
    result: Scene  # ground truth: what a perfect edit draws inside the mask
    mask: dict[str, Any] | None  # {"boxes": [...]} or {"background": True}; None: variation
    strength: float = 1.0

    def mask_array(self) -> np.ndarray | None:
        """(64, 64) bool, True = repaint; None for a variation."""
        return None if self.mask is None else mask_pixels(self.mask, self.source)

    def mask_image(self) -> Image.Image | None:
        """The mask as a picture to give a request: white = repaint, black = keep."""
        mask = self.mask_array()
        return None if mask is None else Image.fromarray(mask.astype(np.uint8) * 255, "L")

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "split": self.split,
            "prompt": self.prompt,
            "strength": self.strength,
            "mask": self.mask,
            "source": scene_json(self.source),
            "result": scene_json(self.result),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Edit:
        spec = parse_prompt(data["prompt"])
        return cls(
            id=data["id"],
            kind=data["kind"],
            split=data["split"],
            prompt=data["prompt"],
            source=scene_from_json(data["source"], spec),
            result=scene_from_json(data["result"], spec),
            mask=data["mask"],
            strength=float(data["strength"]),
        )


def mask_pixels(mask: dict[str, Any], source: Scene) -> np.ndarray:
    """The mask as (64, 64) bool, True = repaint."""
    n = world.CANVAS
    if mask.get("background"):
        from shapes_lab.render import render_array

        plain = np.asarray(world.BACKGROUNDS[source.background], np.uint8)
        return (render_array(source) == plain).all(axis=-1)
    out = np.zeros((n, n), bool)
    for x0, y0, x1, y1 in mask["boxes"]:
        out[max(y0, 0) : min(y1, n), max(x0, 0) : min(x1, n)] = True
    return out


def scene_json(scene: Scene) -> dict[str, Any]:
    objects = [
        {"shape": o.shape, "color": o.color, "size_px": o.size_px, "x0": o.x0, "y0": o.y0}
        for o in scene.objects
    ]
    return {"background": scene.background, "objects": objects}


def scene_from_json(data: dict[str, Any], spec: Any) -> Scene:
    objects = tuple(SceneObject(**o) for o in data["objects"])
    return Scene(spec.kind or "", data["background"], objects, spec)


def load_edits(path: Path = DEFAULT_EDITS) -> list[Edit]:
    """Read an edit set; raises ValueError naming the first bad line."""
    edits = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            if "edit_set" in data:  # the header
                continue
            edit = Edit.from_json(data)
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path}:{number}: not an edit ({error})") from None
        if edit.kind not in KINDS or edit.split not in SPLITS:
            raise ValueError(f"{path}:{number}: unknown kind {edit.kind!r} or split {edit.split!r}")
        edits.append(edit)
    return edits


def write_edits(path: Path, edits: list[Edit], header: dict[str, Any]) -> None:
    lines = [json.dumps(header, ensure_ascii=False)]
    lines += [json.dumps(e.to_json(), ensure_ascii=False) for e in edits]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
