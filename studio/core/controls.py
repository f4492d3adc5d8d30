"""Control-map preprocessors: what turns a control image into the map a ControlNet reads.

Two ship with the core, needing nothing but Pillow: `none` (the image as given: a line
drawing, a floor plan, a depth or normal map made elsewhere) and `invert` (white lines on
black from a black-on-white drawing, as line-art ControlNets want). A plugin adds more
under the entry-point group `studio.preprocessors`, a callable `(image, settings) ->
image` by name (the Stable-Diffusion plugin adds `canny`), imported only when used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from functools import cache
from importlib.metadata import entry_points

from PIL import Image, ImageOps

from studio.core.addons import Control
from studio.core.inputs import InputError, InputStore

GROUP = "studio.preprocessors"
Preprocessor = Callable[[Image.Image, Mapping[str, float]], Image.Image]


def _none(image: Image.Image, settings: Mapping[str, float]) -> Image.Image:
    return image


def _invert(image: Image.Image, settings: Mapping[str, float]) -> Image.Image:
    return ImageOps.invert(image.convert("RGB"))


BUILT_IN: dict[str, Preprocessor] = {"none": _none, "invert": _invert}


@cache
def _plugin_entry_points() -> dict[str, object]:
    return {e.name: e for e in entry_points(group=GROUP) if e.name not in BUILT_IN}


def names() -> list[str]:
    """Every preprocessor's name, the built-in ones first (no plugin imported)."""
    return [*BUILT_IN, *sorted(_plugin_entry_points())]


def get(name: str) -> Preprocessor:
    """The preprocessor called `name`; InputError naming the ones there are."""
    if name in BUILT_IN:
        return BUILT_IN[name]
    entry = _plugin_entry_points().get(name)
    if entry is None:
        raise InputError(f"no control preprocessor {name!r} (there are: {', '.join(names())})")
    return entry.load()  # type: ignore[attr-defined]


def prepare(control: Control, store: InputStore) -> Control:
    """`control` with its map made from its image and stored (a map already made is
    kept, as when a request is replayed)."""
    if control.map is not None:
        return replace(control, map=store.attach(control.map))
    image = store.attach(control.image)
    assert image is not None
    if control.preprocess == "none":
        return replace(control, image=image, map=image)
    made = get(control.preprocess)(image.open(), control.settings)
    return replace(control, image=image, map=store.add(made))
