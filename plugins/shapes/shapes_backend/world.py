"""The Shapes world's fixed facts (shared/SHAPES_DOMAIN.md), in one place."""

from __future__ import annotations

from typing import Final

CANVAS: Final = 64
SUPERSAMPLE: Final = 4  # drawn at 4x, then box-downsampled: exact area anti-aliasing

BACKGROUNDS: Final[dict[str, tuple[int, int, int]]] = {
    "white": (240, 240, 240),
    "black": (20, 20, 20),
    "gray": (128, 128, 128),
}

COLORS: Final[dict[str, tuple[int, int, int]]] = {
    "red": (220, 40, 40),
    "orange": (245, 140, 20),
    "yellow": (240, 210, 30),
    "green": (40, 165, 70),
    "cyan": (30, 195, 215),
    "blue": (40, 75, 225),
    "purple": (145, 60, 200),
    "pink": (245, 125, 195),
}

SHAPES: Final = ("circle", "square", "triangle", "diamond", "star", "heart")

# Size name -> inclusive range of the side s in pixels at 64 x 64.
SIZES: Final[dict[str, tuple[int, int]]] = {
    "small": (11, 14),
    "medium": (17, 21),
    "large": (26, 32),
}

PLACES: Final = (
    "top left",
    "top",
    "top right",
    "left",
    "center",
    "right",
    "bottom left",
    "bottom",
    "bottom right",
)

RELATIONS: Final = ("left of", "right of", "above", "below")

KINDS: Final = ("single", "count", "two", "colors", "relation", "size", "place")

MIN_OBJECTS: Final = 1
MAX_OBJECTS: Final = 4
MIN_GAP: Final = 2  # pixels between object boxes

HELD_OUT: Final[frozenset[tuple[str, str]]] = frozenset(
    {("purple", "star"), ("orange", "heart"), ("green", "diamond"), ("cyan", "triangle")}
)

# Words a caption may use for each name (the name itself included).
SHAPE_WORDS: Final[dict[str, tuple[str, ...]]] = {
    "circle": ("circle", "ball", "dot", "disc"),
    "square": ("square", "box", "block"),
    "triangle": ("triangle",),
    "diamond": ("diamond", "rhombus"),
    "star": ("star",),
    "heart": ("heart",),
}
COLOR_WORDS: Final[dict[str, tuple[str, ...]]] = {name: (name,) for name in COLORS}
BACKGROUND_WORDS: Final[dict[str, tuple[str, ...]]] = {
    "white": ("white",),
    "black": ("black",),
    "gray": ("gray", "grey"),
}
SIZE_WORDS: Final[dict[str, tuple[str, ...]]] = {
    "small": ("small", "little", "tiny"),
    "medium": ("medium", "medium-sized"),
    "large": ("large", "big", "huge"),
}
NUMBER_WORDS: Final[dict[int, tuple[str, ...]]] = {
    1: ("a", "an", "one", "1"),
    2: ("two", "2", "a pair of"),
    3: ("three", "3"),
    4: ("four", "4"),
}


def size_name(side: float) -> str:
    """The size name of a measured side: the nearest range, split at the midpoints."""
    if side < (SIZES["small"][1] + SIZES["medium"][0]) / 2:
        return "small"
    if side < (SIZES["medium"][1] + SIZES["large"][0]) / 2:
        return "medium"
    return "large"


def place_of(x: float, y: float) -> str:
    """The 3 x 3 grid cell of a centre (pixels, y down)."""
    third = CANVAS / 3
    column = min(int(x // third), 2)
    row = min(int(y // third), 2)
    return PLACES[row * 3 + column]


def relation_holds(
    a: tuple[float, float],
    b: tuple[float, float],
    size_a: float,
    size_b: float,
    relation: str,
    margin: float = 0.0,
) -> bool:
    """The spec's rule for "A <relation> B": the centres differ along the axis by more
    than a third of the sum of the sizes, and by more along that axis than across it.
    A positive `margin` demands that much to spare on both counts."""
    dx, dy = b[0] - a[0], b[1] - a[1]  # y grows downwards
    along, across = {
        "left of": (dx, dy),  # A left of B: B's centre is further right
        "right of": (-dx, dy),
        "above": (dy, dx),  # A above B: B's centre is further down
        "below": (-dy, dx),
    }[relation]
    return along > (size_a + size_b) / 3 + margin and along > abs(across) + margin
