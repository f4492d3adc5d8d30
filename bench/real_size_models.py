"""Stable-Diffusion models at the released models' real dimensions, random weights, built
here once (nothing downloaded) into an ignored cache for `bench_real_size.py`.

    nice .venv/bin/python bench/real_size_models.py [--cache runs/real-size] [--sdxl]

SD 1.5 (UNet 859,520,964 + VAE 83,653,863 + text encoder 123,060,480 parameters, from
the configurations the plugin ships for single files) as:

- `sd15-folder/`: a diffusers folder, fp32 (4.27 GB);
- `sd15-fp16-folder/`: the same in fp16;
- `sd15-fp32.safetensors` and `sd15-fp16.safetensors`: single files in the original
  (LDM) layout other tools write;
- `sd15-onnx/`: `studio sd-export-onnx` of the folder;

and with `--sdxl`, `sdxl-fp16.safetensors` (SDXL base at its real size, fp16).

Each is written under a temporary name and renamed when complete, so a run that is
stopped starts again where it was.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CONFIGS = ROOT / "plugins" / "diffusion" / "sd_backends" / "configs"
DEFAULT_CACHE = ROOT / "runs" / "real-size"


def log(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {text}", flush=True)


def random_pipeline(architecture: str, dtype):
    """The shipped configuration's pipeline with random weights (seeded), in `dtype`.
    The weights are drawn small (normal, std 0.02) so that fp16 stays finite."""
    import torch
    from diffusers import AutoencoderKL, DiffusionPipeline, UNet2DConditionModel
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTextModelWithProjection,
        CLIPTokenizer,
    )

    from sd_backends.single_file import CLIP_TOKENIZER

    torch.manual_seed(0)
    torch.set_default_dtype(dtype)  # made in it: SDXL's UNet in fp32 first would take 10 GB
    folder = CONFIGS / architecture
    parts = {
        "unet": UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(folder / "unet")),
        "vae": AutoencoderKL.from_config(AutoencoderKL.load_config(folder / "vae")),
        "text_encoder": CLIPTextModel(CLIPTextConfig.from_pretrained(folder / "text_encoder")),
        "tokenizer": CLIPTokenizer.from_pretrained(CLIP_TOKENIZER),
    }
    if (folder / "text_encoder_2").is_dir():
        parts["text_encoder_2"] = CLIPTextModelWithProjection(
            CLIPTextConfig.from_pretrained(folder / "text_encoder_2")
        )
        parts["tokenizer_2"] = CLIPTokenizer.from_pretrained(CLIP_TOKENIZER, pad_token="!")
    with torch.no_grad():
        for part in parts.values():
            if isinstance(part, torch.nn.Module):
                for tensor in part.parameters():
                    if tensor.ndim > 1:
                        tensor.normal_(0, 0.02)
                part.to(dtype)
    torch.set_default_dtype(torch.float32)
    from diffusers import EulerDiscreteScheduler

    scheduler = EulerDiscreteScheduler.from_config(
        EulerDiscreteScheduler.load_config(folder / "scheduler")
    )
    index = DiffusionPipeline.load_config(folder)
    pipeline_class = getattr(__import__("diffusers"), index["_class_name"])
    extra = (
        {}
        if "text_encoder_2" in parts
        else {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}
    )
    return pipeline_class(scheduler=scheduler, **parts, **extra)


def built(path: Path, make) -> Path:
    """`make(temporary)` unless `path` exists; renamed to `path` when complete."""
    if path.exists():
        log(f"have {path.name}")
        return path
    partial = path.with_name(path.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True) if partial.is_dir() else partial.unlink(True)
    started = time.perf_counter()
    make(partial)
    partial.rename(path)
    log(f"built {path.name} in {time.perf_counter() - started:.0f} s ({size(path) / 1e9:.2f} GB)")
    return path


def size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def single_file(folder: Path, half: bool):
    def make(out: Path) -> None:
        import torch
        from safetensors.torch import load_file, save_file

        from tests.support.random_sd import save_single_file

        save_single_file(folder, out)
        if half:  # one tensor at a time would not save memory: save_file wants them all
            tensors = load_file(out)
            save_file({k: v.to(torch.float16) for k, v in tensors.items()}, str(out))

    return make


def write_safetensors(tensors: dict, path: Path) -> None:
    """A safetensors file written tensor by tensor from (memory-mapped) tensors: the
    safetensors library would first copy all of them into one buffer (7 GB for SDXL)."""
    import json
    import struct

    import torch

    names = {torch.float16: "F16", torch.bfloat16: "BF16", torch.float32: "F32", torch.int64: "I64"}
    header, offset = {}, 0
    for name, tensor in tensors.items():
        size = tensor.numel() * tensor.element_size()
        header[name] = {
            "dtype": names[tensor.dtype],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)  # the body starts 8-byte aligned, as the library writes
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", len(text)) + text)
        for tensor in tensors.values():
            handle.write(tensor.contiguous().reshape(-1).view(torch.uint8).numpy().data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--sdxl", action="store_true", help="also SDXL base in fp16")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    cache = args.cache
    cache.mkdir(parents=True, exist_ok=True)

    def save(dtype):
        return lambda out: random_pipeline("sd1", dtype).save_pretrained(
            out, safe_serialization=True
        )

    folder = built(cache / "sd15-folder", save(torch.float32))
    built(cache / "sd15-fp16-folder", save(torch.float16))
    built(cache / "sd15-fp32.safetensors", single_file(folder, half=False))
    built(cache / "sd15-fp16.safetensors", single_file(folder, half=True))

    def export(out: Path) -> None:
        env = {**os.environ, "STUDIO_HOME": str(cache / "studio-home")}
        command = [sys.executable, "-m", "studio", "sd-export-onnx", str(folder), str(out)]
        subprocess.run(command, check=True, env=env)

    built(cache / "sd15-onnx", export)
    if args.sdxl:

        def sdxl(out: Path) -> None:
            import tempfile

            from tests.support.random_sd import single_file_tensors

            with tempfile.TemporaryDirectory(dir=cache) as scratch:
                random_pipeline("sdxl", torch.float16).save_pretrained(
                    scratch, safe_serialization=True
                )  # the pipeline goes before the single file is written
                write_safetensors(single_file_tensors(Path(scratch)), out)

        built(cache / "sdxl-fp16.safetensors", sdxl)
    log("all built")


if __name__ == "__main__":
    main()
