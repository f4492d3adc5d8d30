"""How a model's weights come off the disk: each tensor once, already in the type the
model computes in, checked, with a count of the bytes read so far.

diffusers maps a safetensors file into memory and converts what it needs: an fp16 file
loaded for an fp32 (or bf16) model then holds the file's pages and the converted copy at
once, 1.5 to 2 times the weights, for the whole load. `WeightReader`, installed under
diffusers' own loader while a model loads, maps what needs no conversion and converts
the rest tensor by tensor from one scratch buffer: the weights and one tensor at most,
and it says how far it is.

On a CPU, a model stored in a half type stays compact in bfloat16 where the CPU computes
in it (`compute_dtype`): fp16 itself is slow there (no fp16 arithmetic on most CPUs), and
fp32 would double it.
"""

from __future__ import annotations

import contextlib
import json
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from studio.api import ModelFile, ModelFileError

Report = Callable[[int, int], None]
HALF_TYPES = ("F16", "BF16")
_HEADER_LIMIT = 100 << 20  # as the safetensors library's own limit


def safetensors_header(path: Path) -> tuple[dict[str, Any], int]:
    """The header of a safetensors file (tensor name -> dtype, shape, data_offsets) and
    where its tensors start (after the 8-byte length and the header)."""
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        if length > _HEADER_LIMIT:
            raise ModelFileError(f"{path.name}: its header is too large ({length} bytes)")
        header = json.loads(handle.read(length))
    header.pop("__metadata__", None)
    return header, 8 + length


def weight_files(found: ModelFile) -> list[Path]:
    """The safetensors files that hold a model's weights (itself, for a single file)."""
    if found.path.is_file():
        return [found.path]
    return sorted(found.path.rglob("*.safetensors"))


def stored_in_half(found: ModelFile) -> bool:
    """Whether most of the model's weights (by bytes; its UNet's, for a folder) are fp16
    or bf16, read from the headers."""
    files = weight_files(found)
    unet = [f for f in files if f.parent.name == "unet"]
    counted = {"half": 0, "other": 0}
    for file in unet or files:
        for entry in safetensors_header(file)[0].values():
            start, end = entry["data_offsets"]
            counted["half" if entry["dtype"] in HALF_TYPES else "other"] += end - start
    return counted["half"] > counted["other"]


def compute_dtype(found: ModelFile, device: str) -> Any:
    """The type the model runs in: fp16 on a GPU; on a CPU, bfloat16 for a model stored in
    a half type where the CPU computes in bfloat16, else fp32."""
    import torch

    if device == "cuda":
        return torch.float16
    if stored_in_half(found) and cpu_computes_bf16():
        return torch.bfloat16
    return torch.float32


def cpu_computes_bf16() -> bool:
    """Whether this CPU has bfloat16 arithmetic (AVX-512 BF16, AMX): oneDNN then runs
    bf16 layers at speed; without it they would be emulated, slower than fp32."""
    import torch

    return bool(
        torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    )


def _torch_dtypes() -> dict[str, Any]:
    import torch

    return {
        "F64": torch.float64,
        "F32": torch.float32,
        "F16": torch.float16,
        "BF16": torch.bfloat16,
        "I64": torch.int64,
        "I32": torch.int32,
        "I16": torch.int16,
        "I8": torch.int8,
        "U8": torch.uint8,
        "BOOL": torch.bool,
    }


class WeightReader:
    """Reads safetensors files tensor by tensor into `dtype` (floating tensors only),
    reporting bytes read of `total` to `report`. A tensor stored in `dtype` is mapped
    from the file, not copied (its pages are the weights: no second copy, and nothing
    to convert); one stored otherwise is read into a scratch buffer and converted. Each
    is checked for NaN and infinities as it comes, which also reads a mapped tensor's
    pages: the bytes reported have been read."""

    def __init__(self, dtype: Any, total: int, report: Report | None = None) -> None:
        self.dtype = dtype
        self.total = total
        self.done = 0
        self.checked: set[int] = set()  # data pointers of the tensors it checked
        self._report = report or (lambda _done, _total: None)

    def read(self, path: Path) -> dict[str, Any]:
        import torch
        from safetensors import safe_open

        dtypes = _torch_dtypes()
        header, start_of_body = safetensors_header(path)
        body = max((entry["data_offsets"][1] for entry in header.values()), default=0)
        if path.stat().st_size < start_of_body + body:
            raise ModelFileError(f"{path.name} is cut short: its weights end early")
        scratch = torch.empty(0, dtype=torch.uint8)
        tensors = {}
        with path.open("rb") as handle, safe_open(str(path), framework="pt") as mapped:
            for name, entry in sorted(header.items(), key=lambda item: item[1]["data_offsets"]):
                stored = dtypes.get(entry["dtype"])
                if stored is None:
                    raise ModelFileError(f"{path.name}: tensor {name} is {entry['dtype']}")
                start, end = entry["data_offsets"]
                if stored == self.dtype or not stored.is_floating_point:
                    tensor = mapped.get_tensor(name)
                else:
                    if len(scratch) < end - start:
                        scratch = torch.empty(end - start, dtype=torch.uint8)
                    raw = scratch[: end - start]
                    handle.seek(start_of_body + start)
                    _read_into(handle, memoryview(raw.numpy()), path)
                    tensor = raw.view(stored).reshape(entry["shape"]).to(self.dtype)
                if tensor.is_floating_point():
                    check_finite(tensor, f"{_part(path)}weight {name}")
                    self.checked.add(tensor.data_ptr())
                tensors[name] = tensor
                self.done += end - start
                self._report(self.done, self.total)
        return tensors

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """diffusers reads safetensors weights through this reader while it is installed
        (its single-file and per-model loaders; transformers' text encoders read theirs)."""
        from diffusers.loaders import single_file_utils
        from diffusers.models import model_loading_utils, modeling_utils

        modules = (model_loading_utils, modeling_utils, single_file_utils)
        original = model_loading_utils.load_state_dict

        def load_state_dict(checkpoint: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(checkpoint, (str, Path)) and str(checkpoint).endswith(".safetensors"):
                return self.read(Path(checkpoint))
            return original(checkpoint, *args, **kwargs)

        for module in modules:
            module.load_state_dict = load_state_dict
        try:
            yield
        finally:
            for module in modules:
                module.load_state_dict = original
            self._report(self.total, self.total)


def check_finite(tensor: Any, what: str) -> None:
    """NaN or infinities would make black images: refuse the model (`what`: the weight,
    as the message names it). A NaN or infinity makes the sum one too: one pass, no mask
    as large as the tensor (a finite sum is never a false "finite"; an overflowing one is
    checked element by element)."""
    import torch

    if not torch.isfinite(tensor.sum()) and not torch.isfinite(tensor).all():
        raise ModelFileError(f"{what} holds NaN or infinite values (a damaged or broken model)")


def _part(path: Path) -> str:
    """ "unet " for a diffusers folder's part (its files say only what they are)."""
    return f"{path.parent.name} " if path.name.startswith("diffusion_pytorch_model") else ""


def _read_into(handle: Any, view: memoryview, path: Path) -> None:
    done = 0
    while done < len(view):
        count = handle.readinto(view[done:])
        if not count:
            raise ModelFileError(f"{path.name} is cut short: its weights end early")
        done += count
