"""LoRAs fused into a loaded diffusers pipeline's weights, in place.

Fused rather than hooked: generating costs nothing more, and the weights go back
exactly because each touched weight's original is kept (on the CPU) and copied back,
never subtracted (fp16 sums do not undo).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sd_backends.loras import COMPONENTS, Factors, iter_factors, read_lora
from studio.api import ModelFile, ModelFileError

LoraChoice = tuple[ModelFile | Path, float]


class LoraWeights:
    """The LoRAs fused into one pipeline's weights (one object per loaded model; a
    different pipeline starts afresh)."""

    def __init__(self) -> None:
        self._key: tuple = ()  # the set fused now
        self._originals: dict[str, Any] = {}  # target -> its weight before, on the CPU
        self._owner: weakref.ref | None = None  # the UNet whose weights these are

    @staticmethod
    def targets(pipeline: Any) -> dict[str, tuple[int, ...]]:
        """Every linear and convolution weight a LoRA may change, by
        `<component>.<module>.weight`, and its shape."""
        return {name: tuple(weight.shape) for name, weight in _weights(pipeline).items()}

    def set(self, pipeline: Any, loras: Sequence[LoraChoice]) -> None:
        """Fuse these LoRAs at their weights (0 leaves one out) in place of the set fused
        before; the same set again does nothing, an empty one gives the base weights.
        A refused LoRA (ModelFileError) leaves the weights as they were."""
        import torch

        self._adopt(pipeline)
        chosen = [(_path(item), float(weight)) for item, weight in loras if weight]
        key = tuple((str(path), *_stamp(path), weight) for path, weight in chosen)
        if key == self._key:
            return
        files = [(read_lora(path), weight) for path, weight in chosen]
        weights = _weights(pipeline)
        shapes = {name: tuple(weight.shape) for name, weight in weights.items()}
        changes = iter_factors(files, shapes)  # every LoRA matched now: a refusal changes nothing
        self._restore(weights)
        try:
            with torch.no_grad():
                for name, factors in changes:
                    weight = weights[name]
                    self._originals[name] = weight.detach().to("cpu", copy=True)
                    change = _delta(factors, weight)  # float32
                    if weight.dtype == torch.float32:
                        weight.add_(change)
                    else:  # summed in float32, rounded once to the weight's dtype
                        weight.copy_(weight.float().add_(change))
        except BaseException:
            self._restore(weights)
            raise
        self._key = key

    def restore(self, pipeline: Any) -> None:
        """The base weights back (as `set(pipeline, [])`)."""
        self.set(pipeline, [])

    def _restore(self, weights: dict[str, Any]) -> None:
        import torch

        with torch.no_grad():
            for name, original in self._originals.items():
                weights[name].copy_(original)
        self._originals, self._key = {}, ()

    def _adopt(self, pipeline: Any) -> None:
        """Forget what was fused into another model (it was unloaded or replaced)."""
        owner = self._owner() if self._owner is not None else None
        if owner is not pipeline.unet:
            self._originals, self._key = {}, ()
            self._owner = weakref.ref(pipeline.unet)


def _delta(factors: list[Factors], weight: Any) -> Any:
    """The factors' summed change, multiplied in float32 on the weight's device (the
    factors are small; a GPU's deltas never cross the bus), in the weight's shape."""
    import torch

    total = None
    for each in factors:
        up, down = (torch.from_numpy(f).to(weight.device) for f in (each.up, each.down))
        change = (up @ down).mul_(each.scale)
        total = change if total is None else total.add_(change)
    return total.reshape(weight.shape)


def _weights(pipeline: Any) -> dict[str, Any]:
    import torch

    found = {}
    for component in COMPONENTS:
        model = getattr(pipeline, component, None)
        if not isinstance(model, torch.nn.Module):
            continue
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Linear | torch.nn.Conv2d):
                found[f"{component}.{name}.weight"] = module.weight
    return found


def _path(item: ModelFile | Path | str) -> Path:
    return (item.path if isinstance(item, ModelFile) else Path(item)).resolve()


def _stamp(path: Path) -> tuple[int, int]:
    """Size and modification time: a file replaced under its name is read again."""
    try:
        stat = path.stat()
    except OSError as error:
        raise ModelFileError(f"cannot read the LoRA {path}: {error.strerror}") from error
    return stat.st_size, stat.st_mtime_ns
