"""What a prompt asks for (`PromptSpec`) and what a drawn scene holds (`Scene`).

A prompt parses into a `PromptSpec`: only what its words name, `None` for the rest.
A `Scene` realises a spec with every attribute chosen; its JSON is the annotation
format of SHAPES_DOMAIN.md (plus `place` for place scenes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shapes_backend import world


@dataclass(frozen=True)
class ObjectSpec:
    """One named object (or `count` identical ones): "three small yellow hearts"."""

    shape: str
    color: str | None = None
    size: str | None = None
    count: int = 1

    def to_json(self) -> dict[str, Any]:
        return {"shape": self.shape, "color": self.color, "size": self.size, "count": self.count}


@dataclass(frozen=True)
class RelationSpec:
    a: int  # index into the objects: the first named
    b: int
    type: str  # one of world.RELATIONS


@dataclass(frozen=True)
class PromptSpec:
    """The structured form of a prompt; what the evaluator checks an image against."""

    objects: tuple[ObjectSpec, ...]
    background: str | None = None
    relation: RelationSpec | None = None
    place: str | None = None  # of the (single) object
    kind: str | None = None  # the scene kind the prompt belongs to, when known
    unknown_words: tuple[str, ...] = field(default=(), compare=False)

    @property
    def object_count(self) -> int:
        return sum(o.count for o in self.objects)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "background": self.background,
            "objects": [o.to_json() for o in self.objects],
            "relation": None if self.relation is None else vars(self.relation),
            "place": self.place,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PromptSpec:
        relation = data.get("relation")
        return cls(
            objects=tuple(ObjectSpec(**o) for o in data["objects"]),
            background=data.get("background"),
            relation=None if relation is None else RelationSpec(**relation),
            place=data.get("place"),
            kind=data.get("kind"),
        )

    def uses_held_out_pair(self) -> bool:
        return any((o.color, o.shape) in world.HELD_OUT for o in self.objects)


@dataclass(frozen=True)
class SceneObject:
    shape: str
    color: str
    size_px: int  # the side s of the object's square box
    x0: int  # the box's top-left corner; the box is [x0, x0 + s) x [y0, y0 + s)
    y0: int

    @property
    def size(self) -> str:
        return world.size_name(self.size_px)

    @property
    def center(self) -> tuple[float, float]:
        half = self.size_px / 2
        return self.x0 + half, self.y0 + half

    @property
    def bbox(self) -> tuple[int, int, int, int]:
        return self.x0, self.y0, self.x0 + self.size_px, self.y0 + self.size_px

    def to_json(self) -> dict[str, Any]:
        return {
            "shape": self.shape,
            "color": self.color,
            "size": self.size,
            "size_px": self.size_px,
            "center": list(self.center),
            "bbox": list(self.bbox),
        }


@dataclass(frozen=True)
class Scene:
    """A fully chosen scene: what the renderer draws and the annotation records."""

    kind: str
    background: str
    objects: tuple[SceneObject, ...]
    spec: PromptSpec  # what its caption names
    caption: str = ""

    def annotation(self, image_name: str) -> dict[str, Any]:
        relation = self.spec.relation
        data: dict[str, Any] = {
            "image": image_name,
            "caption": self.caption,
            "kind": self.kind,
            "background": self.background,
            "objects": [o.to_json() for o in self.objects],
            "relation": None if relation is None else vars(relation),
        }
        if self.spec.place is not None:
            data["place"] = self.spec.place
        data["prompt"] = self.spec.to_json()
        return data
