"""Loading failures as a user reads them: what does not fit and what to do. diffusers'
own text (its class names, advice to its developers' users, links) goes to the log."""

from __future__ import annotations

import logging
import re

from studio.api import ModelFileError

log = logging.getLogger(__name__)
# diffusers': "... because NAME expected shape torch.Size([a, b]), but got torch.Size([c, d])";
# torch's: "size mismatch for NAME: copying a param with shape torch.Size([c, d]) from
# checkpoint, the shape in current model is torch.Size([a, b])"
_SIZE = r"torch\.Size\(\[(?P<{}>[\d, ]*)\]\)"
_SHAPES = (
    re.compile(
        rf"(?P<name>[\w.]+) expected shape {_SIZE.format('want')}, but got {_SIZE.format('got')}"
    ),
    re.compile(
        rf"size mismatch for (?P<name>[\w.]+): copying a param with shape {_SIZE.format('got')}"
        rf" from checkpoint, the shape in current model is {_SIZE.format('want')}"
    ),
)
_MISSING = re.compile(r"missing keys?[^:]*:\s*[\[\"']*(?P<name>[\w.]+)", re.IGNORECASE)


def load_failure(name: str, kind: str, error: BaseException) -> ModelFileError:
    """`error`, raised by diffusers loading the model `name` as `kind` ("SD 1.x"; "" for
    a folder, as its configuration says), as a ModelFileError with a plain reason; the
    library's text goes to the log."""
    log.warning("cannot load %s as %s", name, kind or "configured", exc_info=error)
    as_kind = f" as {kind}" if kind else ""
    if isinstance(error, ModelFileError):  # Studio's own reader: already a plain reason
        return ModelFileError(f"cannot load {name}{as_kind}: {error}")
    expected = kind or "its configuration"
    text = str(error)
    shapes = next((m for m in (p.search(text) for p in _SHAPES) if m), None)
    missing = _MISSING.search(text)
    if shapes:
        want, got = (_dims(shapes[part]) for part in ("want", "got"))
        reason = (
            f"its weight {shapes['name']} is {got} where {expected} has {want}: another "
            "architecture, or a variant Studio does not know"
        )
    elif missing:
        reason = f"it lacks weights {expected} needs ({missing['name']}): an incomplete file"
    else:
        reason = "its files do not load as a model: damaged or incomplete? (details in the log)"
    return ModelFileError(f"cannot load {name}{as_kind}: {reason}")


def _dims(text: str) -> str:
    return " x ".join(d.strip() for d in text.split(",") if d.strip())
