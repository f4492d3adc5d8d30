"""Real-size Stable Diffusion, every format and runtime side by side: load (warm and cold),
the first image, per-step and decode time, memory, against what they are measured by.

    nice .venv/bin/python bench/bench_real_size.py [--formats fp32-file,fp16-file,...]
        [--runtimes ours,direct] [--steps 4] [--size 512] [--threads 2] [--skip-cold]
        [--sdxl] [--quick] [--min-available 10] [--wait 30] [--json PATH]

The models are the random-weight, real-size ones `bench/real_size_models.py` builds in
`runs/real-size/`: SD 1.5 as an fp32 and an fp16 single file, an fp32 and an fp16
diffusers folder, an ONNX export (and with `--sdxl`, SDXL base as an fp16 single file,
at 1024 x 1024). Each row runs in a fresh process (niced, one at a time, after waiting for
`--min-available` GB of free memory): our PyTorch backend (`DiffusionBackend`) or our ONNX
backend (`DiffusionOnnxBackend`), and "direct": diffusers' `from_single_file` /
`from_pretrained` called as a user would, in the dtype our backend chose for that file.

For each row: load time (process start to loaded, imports included) warm (the model's
files in the page cache) and cold (dropped first with `posix_fadvise(DONTNEED)` on every
file, load only); the reference "imports + reading the files once" (the same imports in
a fresh process, plus reading every file of the model, cold and warm); the first image
(prompt, seed 1, 1 image, Euler, guidance 7, `--steps` at `--size`): the first step (it
encodes the prompt too), the later steps, decoding (the backends' "decoding" progress,
diffusers direct: hooks on the VAE's decoder), the whole call; RSS after loading and the
process's peak (VmHWM). `--quick` (256 x 256, 1 step) checks the script in a few minutes.

Targets (issue 24): peak RSS <= 1.25 x the fp32 weights for PyTorch, every format; ONNX
peak <= our PyTorch's on the fp32 folder + 10 %; our PyTorch within 5 % of diffusers
direct; load <= 1.2 x (imports + reading the files once). Prints one table and the
targets, saves everything to `runs/real-size/bench.json` (`--quick`: bench-quick.json).
Never asserts. GB = 10^9 bytes.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "runs" / "real-size"
CONFIGS = ROOT / "plugins" / "diffusion" / "sd_backends" / "configs"
PROMPT = "a red house on the green tree"
GB = 1e9


@dataclass(frozen=True)
class Format:
    name: str
    file: str  # under the cache
    kind: str  # "file", "folder" or "onnx"
    architecture: str = "sd1"  # configs/<architecture>

    @property
    def runtimes(self) -> tuple[str, ...]:
        return ("onnx",) if self.kind == "onnx" else ("ours", "direct")


FORMATS = {
    f.name: f
    for f in (
        Format("fp32-file", "sd15-fp32.safetensors", "file"),
        Format("fp16-file", "sd15-fp16.safetensors", "file"),
        Format("fp32-folder", "sd15-folder", "folder"),
        Format("fp16-folder", "sd15-fp16-folder", "folder"),
        Format("onnx", "sd15-onnx", "onnx"),
    )
}
SDXL = Format("sdxl-fp16-file", "sdxl-fp16.safetensors", "file", "sdxl")
RUNTIME_NAMES = {"ours": "ours", "direct": "diffusers", "onnx": "ours ONNX"}

# One fresh process: the runtime's imports, loading, and (unless load-only) one image.
CHILD = r"""
import json, sys, time
started = time.perf_counter()
job = json.loads(sys.argv[1])
runtime, architecture = job["runtime"], job["architecture"]
pipeline_name = "StableDiffusionXLPipeline" if architecture == "sdxl" else "StableDiffusionPipeline"

def status():
    fields = {}
    for line in open("/proc/self/status"):
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            fields[key] = int(value.split()[0]) * 1024
    return fields

import numpy as np
from pathlib import Path
if runtime == "onnx":
    import onnxruntime, tokenizers
    from sd_backends.onnx_backend import DiffusionOnnxBackend
    from studio.api import GenerationRequest, ModelLibrary
else:
    import torch
    torch.set_num_threads(job["threads"])
    import diffusers, transformers
    Pipeline = getattr(diffusers, pipeline_name)  # its modules, as loading imports them
    if job["kind"] == "file":  # the single-file loader's own (scipy among them: 1-2 s)
        import diffusers.loaders.single_file_utils
    if runtime == "ours":
        from sd_backends.backend import DiffusionBackend
        from studio.api import GenerationRequest, ModelLibrary
    else:
        from transformers import CLIPTokenizer
        from sd_backends.noise import initial_noise
imported = time.perf_counter()
if job["imports_only"]:
    print(json.dumps({"imports_s": imported - started}))
    sys.exit()

path = job["path"]
before_load = status()
if runtime == "direct":
    dtype = getattr(torch, job["dtype"])
    extra = {} if architecture == "sdxl" else {"safety_checker": None,
                                               "requires_safety_checker": False}
    if job["kind"] == "file":  # the configuration and tokenizers our plugin ships, offline
        config = Path(job["configs"]) / architecture
        clip = Path(job["configs"]) / "clip-tokenizer"
        names = ("tokenizer", "tokenizer_2") if architecture == "sdxl" else ("tokenizer",)
        for name in names:
            if (config / name).is_dir():
                extra[name] = CLIPTokenizer.from_pretrained(config / name)
            else:
                pad = {"pad_token": "!"} if name == "tokenizer_2" else {}
                extra[name] = CLIPTokenizer.from_pretrained(clip, **pad)
        pipe = Pipeline.from_single_file(path, config=str(config), local_files_only=True,
                                         torch_dtype=dtype, **extra)
    else:
        pipe = Pipeline.from_pretrained(path, torch_dtype=dtype, local_files_only=True,
                                        use_safetensors=True, **extra)
    pipe.set_progress_bar_config(disable=True)
    dtype_name = job["dtype"]
else:
    if runtime == "ours":
        backend = DiffusionBackend()
    else:
        backend = DiffusionOnnxBackend(threads=job["threads"])
    backend.model_library = lambda: ModelLibrary([], [], Path(job["hashes"]))
    backend.load(path)
    if runtime == "ours":
        dtype_name = str(backend._pipeline.unet.dtype).removeprefix("torch.")
    else:
        graph_type = backend._runtime.sessions["unet"].get_inputs()[0].type
        dtype_name = {"tensor(float)": "float32", "tensor(float16)": "float16"}.get(
            graph_type, graph_type)
loaded_at = time.perf_counter()
loaded = status()
result = {"imports_s": imported - started, "load_s": loaded_at - started, "dtype": dtype_name,
          "rss_loaded": loaded["VmRSS"], "anon_loaded": loaded["RssAnon"],
          "peak_load": loaded["VmHWM"], "rss_before_load": before_load["VmRSS"]}

if job["generate"]:
    events = []  # (phase, step, total, time)
    size, steps = job["size"], job["steps"]
    started_image = time.perf_counter()
    if runtime == "direct":
        pipe.scheduler = diffusers.EulerDiscreteScheduler.from_config(pipe.scheduler.config)
        scale = pipe.vae_scale_factor
        shape = (pipe.unet.config.in_channels, size // scale, size // scale)
        noise = torch.from_numpy(initial_noise([1], shape)).to(pipe.unet.dtype)
        decoder = pipe.vae.decoder
        decoder.register_forward_pre_hook(
            lambda *_: events.append(("decoding", 0, 1, time.perf_counter())))
        decoder.register_forward_hook(
            lambda *_: events.append(("decoding", 1, 1, time.perf_counter())))

        def on_step(_pipe, step, _timestep, _tensors):
            events.append(("steps", step + 1, steps, time.perf_counter()))
            return {}

        out = pipe(job["prompt"], height=size, width=size, num_inference_steps=steps,
                   guidance_scale=7.0, num_images_per_prompt=1, latents=noise,
                   output_type="np", callback_on_step_end=on_step,
                   callback_on_step_end_tensor_inputs=["latents"])
        image = out.images[0]
    else:
        class Context:
            cancelled = False
            device = "cpu"
            def check_cancelled(self): pass
            def progress(self, step, total, phase="steps"):
                events.append((phase, step, total, time.perf_counter()))
            def preview(self, image): pass

        request = GenerationRequest(job["prompt"], seed=1, count=1, candidates=1, steps=steps,
                                    guidance=7.0, width=size, height=size,
                                    options={"sampler": "Euler"})
        image = backend.generate(request, Context())[0].image
    finished = time.perf_counter()
    ticks = [started_image] + [e[3] for e in events if e[0] == "steps"]
    decoding = [e for e in events if e[0] == "decoding"]
    starts = [e[3] for e in decoding if e[1] == 0]
    ends = [e[3] for e in decoding if e[1] == e[2]]
    pixels = np.asarray(image)
    if pixels.dtype != np.uint8:
        pixels = (np.clip(pixels, 0, 1) * 255).round().astype(np.uint8)
    np.save(job["image"], pixels)
    after = status()
    result |= {
        "image_s": finished - started_image,
        "steps_s": [b - a for a, b in zip(ticks, ticks[1:])],
        "decode_s": ends[-1] - starts[0] if starts and ends else None,
        "after_decode_s": finished - ends[-1] if ends else None,
        "rss_end": after["VmRSS"],
        "finite": bool(np.isfinite(np.asarray(image, dtype=np.float32)).all()),
    }
result["peak"] = status()["VmHWM"]  # this process's own peak, loading and the image
print(json.dumps(result))
"""


# -- the model's files: sizes, page cache ---------------------------------------------------


def model_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file())


def fp32_weight_bytes(path: Path) -> int:
    """The model's floating-point weights at 4 bytes each, from its safetensors headers
    (an fp16 file counts what it would hold in fp32); 0 for a folder without any."""
    total = 0
    for file in model_files(path):
        if file.suffix != ".safetensors":
            continue
        with open(file, "rb") as f:
            header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
        for name, tensor in header.items():
            if name != "__metadata__" and tensor["dtype"] in ("F32", "F16", "BF16", "F64"):
                count = 1
                for dimension in tensor["shape"]:
                    count *= dimension
                total += 4 * count
    return total


def drop_from_cache(files: list[Path]) -> None:
    """Drop the files' pages from the page cache (those mapped elsewhere stay)."""
    for file in files:
        fd = os.open(file, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def cached_fraction(files: list[Path]) -> float | None:
    """The share of the files' pages in the page cache (mincore); None if unknown."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int]
        libc.mmap.argtypes += [ctypes.c_int, ctypes.c_long]
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    except (OSError, AttributeError):
        return None
    page = os.sysconf("SC_PAGE_SIZE")
    resident = pages = 0
    for file in files:
        size = file.stat().st_size
        if not size:
            continue
        with open(file, "rb") as f:
            address = libc.mmap(None, size, 1, 1, f.fileno(), 0)  # PROT_READ, MAP_SHARED
        if address in (None, ctypes.c_void_p(-1).value):
            return None
        try:
            count = (size + page - 1) // page
            vector = (ctypes.c_ubyte * count)()
            if libc.mincore(address, size, vector):
                return None
            resident += count - bytes(vector).count(0)
            pages += count
        finally:
            libc.munmap(address, size)
    return resident / pages if pages else None


def read_time(files: list[Path]) -> float:
    """Seconds to read every byte of the files once, through one 16 MB buffer."""
    view = memoryview(bytearray(16 << 20))
    started = time.perf_counter()
    for file in files:
        with open(file, "rb", buffering=0) as f:
            while f.readinto(view):
                pass
    return time.perf_counter() - started


def available_bytes() -> int:
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    line = next((x for x in meminfo if x.startswith("MemAvailable:")), "MemAvailable: 0 kB")
    return int(line.split()[1]) * 1024


def wait_for_memory(wanted: float, minutes: float) -> str:
    """Wait (up to `minutes`) until `wanted` bytes are available; '' or what happened."""
    deadline = time.monotonic() + 60 * minutes
    said = False
    while available_bytes() < wanted:
        if time.monotonic() > deadline:
            note = f"ran with {available_bytes() / GB:.1f} GB available"
            print(f"  {note} (waited {minutes:g} min)", flush=True)
            return note
        if not said:
            print(
                f"  waiting for memory: {available_bytes() / GB:.1f} GB available, "
                f"want {wanted / GB:.0f}",
                flush=True,
            )
            said = True
        time.sleep(10)
    return ""


# -- children ---------------------------------------------------------------------------------


def child(job: dict[str, Any]) -> dict[str, Any]:
    """One fresh, niced process; its figures, or what went wrong."""
    env = os.environ | {
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "TRANSFORMERS_VERBOSITY": "error",
        "DIFFUSERS_VERBOSITY": "error",
    }
    try:
        done = subprocess.run(
            ["nice", sys.executable, "-c", CHILD, json.dumps(job)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=3600,
        )
    except subprocess.TimeoutExpired:
        return {"error": "no answer within an hour"}
    if done.returncode:
        lines = done.stderr.strip().splitlines()
        why = lines[-1] if lines else f"exit status {done.returncode}"
        if done.returncode in (-9, 137):
            why = "killed (out of memory?)"
        return {"error": why, "stderr": "\n".join(lines[-30:])}
    return json.loads(done.stdout.strip().splitlines()[-1])


class Bench:
    def __init__(self, args: argparse.Namespace, scratch: Path) -> None:
        self.args, self.scratch = args, scratch
        self.imports: dict[tuple[str, str], float | None] = {}

    def job(self, fmt: Format, runtime: str, **fields: Any) -> dict[str, Any]:
        args = self.args
        size = args.sdxl_size if fmt.architecture == "sdxl" else args.size
        return {
            "runtime": runtime,
            "prompt": PROMPT,
            "architecture": fmt.architecture,
            "kind": fmt.kind,
            "path": str(CACHE / fmt.file),
            "threads": args.threads,
            "size": size,
            "steps": args.steps,
            "configs": str(CONFIGS),
            "hashes": str(self.scratch / "hashes.json"),
            "image": str(self.scratch / f"{fmt.name}-{runtime}.npy"),
            "imports_only": False,
            "generate": True,
            "dtype": "float32",
        } | fields

    def imports_time(self, fmt: Format, runtime: str) -> float | None:
        """The runtime's imports alone in a fresh process: the better of two."""
        key = (runtime, fmt.architecture)
        if key not in self.imports:
            times = [child(self.job(fmt, runtime, imports_only=True)) for _ in range(2)]
            found = [t["imports_s"] for t in times if "imports_s" in t]
            self.imports[key] = min(found) if found else None
        return self.imports[key]

    def heavy(self, job: dict[str, Any], cold: bool, files: list[Path]) -> dict[str, Any]:
        note = wait_for_memory(self.args.min_available * GB, self.args.wait)
        if cold:
            drop_from_cache(files)
        elif (cached_fraction(files) or 0) < 0.99:
            read_time(files)  # warm means in the page cache
        cached = cached_fraction(files)
        found = child(job)
        found["cached_before"] = cached
        if note:
            found["note"] = note
        return found

    def model(self, fmt: Format) -> list[dict[str, Any]]:
        """Every runtime's row for one format."""
        path = CACHE / fmt.file
        files = model_files(path)
        size = sum(f.stat().st_size for f in files)
        print(f"{fmt.name}: {path.name}, {size / GB:.2f} GB in {len(files)} files", flush=True)
        reading: dict[str, float | None] = {"cold": None, "warm": None}
        if not self.args.skip_cold:
            drop_from_cache(files)
            reading["cold"] = read_time(files)
        else:
            read_time(files)
        reading["warm"] = read_time(files)
        cold = f"{reading['cold']:.1f} s" if reading["cold"] is not None else "skipped"
        print(f"  reading it: cold {cold}, warm {reading['warm']:.1f} s", flush=True)
        rows = []
        dtype = "float32"
        for runtime in fmt.runtimes:
            if runtime not in self.args.runtimes and runtime != "onnx":
                continue
            imports = self.imports_time(fmt, runtime)
            row: dict[str, Any] = {
                "format": fmt.name,
                "runtime": runtime,
                "path": str(path),
                "bytes": size,
                "imports_s": imports,
                "read_cold_s": reading["cold"],
                "read_warm_s": reading["warm"],
            }
            if self.args.skip_cold:
                row["cold"] = None
            else:
                cold = self.heavy(self.job(fmt, runtime, dtype=dtype, generate=False), True, files)
                row["cold"] = cold
                dtype = cold.get("dtype", dtype) if runtime == "ours" else dtype
                show_progress(fmt, runtime, "cold", cold)
            warm = self.heavy(self.job(fmt, runtime, dtype=dtype), False, files)
            row["warm"] = warm
            dtype = warm.get("dtype", dtype) if runtime == "ours" else dtype
            show_progress(fmt, runtime, "warm", warm)
            rows.append(row)
        return rows


def show_progress(fmt: Format, runtime: str, which: str, found: dict[str, Any]) -> None:
    if "error" in found:
        print(f"  {RUNTIME_NAMES[runtime]} {which}: failed: {found['error']}", flush=True)
        return
    image = f", image {found['image_s']:.1f} s" if "image_s" in found else ""
    print(
        f"  {RUNTIME_NAMES[runtime]} {which}: load {found['load_s']:.1f} s ({found['dtype']})"
        f"{image}, peak {found['peak'] / GB:.2f} GB",
        flush=True,
    )


# -- the table and the targets ---------------------------------------------------------------


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def figures(row: dict[str, Any], weights: float) -> dict[str, Any]:
    """The row's derived figures (None where unmeasured)."""
    warm, cold = row.get("warm") or {}, row.get("cold") or {}
    imports = row["imports_s"]

    def reference(read: float | None) -> float | None:
        return imports + read if imports is not None and read is not None else None

    steps = warm.get("steps_s") or []
    later = steps[1:]
    peak = max(warm.get("peak", 0), cold.get("peak", 0)) or None
    return {
        "load_warm_s": warm.get("load_s"),
        "load_cold_s": cold.get("load_s"),
        "reference_warm_s": reference(row["read_warm_s"]),
        "reference_cold_s": reference(row["read_cold_s"]),
        "load_ratio_warm": ratio(warm.get("load_s"), reference(row["read_warm_s"])),
        "load_ratio_cold": ratio(cold.get("load_s"), reference(row["read_cold_s"])),
        "first_step_s": steps[0] if steps else None,
        "step_s": sum(later) / len(later) if later else None,
        "decode_s": warm.get("decode_s"),
        "image_s": warm.get("image_s"),
        "rss_loaded": warm.get("rss_loaded"),
        "peak": peak,
        "peak_ratio": ratio(peak, weights),
    }


COLUMNS = [  # key, heading, subheading, width, scale, digits
    ("load_warm_s", "load s", "warm", 7, 1, 1),
    ("load_cold_s", "", "cold", 6, 1, 1),
    ("reference_warm_s", "imp+read s", "warm", 7, 1, 1),
    ("reference_cold_s", "", "cold", 6, 1, 1),
    ("load_ratio_warm", "load/ref", "warm", 6, 1, 2),
    ("load_ratio_cold", "", "cold", 6, 1, 2),
    ("first_step_s", "step1", "s", 7, 1, 1),
    ("step_s", "step", "s", 6, 1, 1),
    ("decode_s", "decode", "s", 7, 1, 1),
    ("image_s", "image", "s", 7, 1, 1),
    ("rss_loaded", "RSS ld", "GB", 7, GB, 2),
    ("peak", "peak", "GB", 6, GB, 2),
    ("peak_ratio", "pk/", "fp32", 6, 1, 2),
    ("vs_direct", "vs", "dir %", 7, 1, 1),
]


def print_table(rows: list[dict[str, Any]]) -> None:
    lead = f"{'format':<15}{'runtime':<10}{'dtype':<15}"
    print("\n" + lead + "".join(f"{c[1]:>{c[3]}}" for c in COLUMNS))
    print(" " * len(lead) + "".join(f"{c[2]:>{c[3]}}" for c in COLUMNS))
    for row in rows:
        found = row["figures"]
        dtype = (row.get("warm") or {}).get("dtype") or (row.get("cold") or {}).get("dtype", "")
        cells = []
        for key, _, _, width, scale, digits in COLUMNS:
            value = found.get(key)
            cells.append(
                f"{value / scale:>{width}.{digits}f}"
                if value is not None
                else " " * (width - 1) + "-"
            )
        line = f"{row['format']:<15}{RUNTIME_NAMES[row['runtime']]:<10}{dtype:<15}"
        print(line + "".join(cells))
        for which in ("cold", "warm"):
            if "error" in (row.get(which) or {}):
                print(f"{'':<15}{which} run failed: {row[which]['error']}")


def compare_with_direct(rows: list[dict[str, Any]]) -> None:
    """Each of our PyTorch rows: its first image's and warm load's time against diffusers
    direct's on the same format, in % (`vs_direct`, `load_vs_direct`)."""
    for row in rows:
        direct = [r for r in rows if r["format"] == row["format"] and r["runtime"] == "direct"]
        if row["runtime"] != "ours" or not direct:
            continue
        ours, theirs = row["figures"], direct[0]["figures"]
        for key, name in (("image_s", "vs_direct"), ("load_warm_s", "load_vs_direct")):
            value = ratio(ours[key], theirs[key])
            ours[name] = 100 * (value - 1) if value is not None else None


def verdict(value: float | None, limit: float) -> str:
    if value is None:
        return "-"
    return "ok" if value <= limit else "OVER"


def targets(rows: list[dict[str, Any]], weights: dict[str, float]) -> dict[str, Any]:
    """Print each target with every row's figure; return them."""
    out: dict[str, Any] = {}
    torch_rows = [r for r in rows if r["runtime"] != "onnx"]
    sd1 = weights["sd1"] / GB
    print(f"\npeak RSS / fp32 weights (target <= 1.25 for PyTorch; SD 1.5: {sd1:.2f} GB)")
    for row in torch_rows:
        value = row["figures"]["peak_ratio"]
        shown = f"{value:.2f}" if value is not None else "-"
        name = RUNTIME_NAMES[row["runtime"]]
        print(f"  {row['format']:<15}{name:<10}{shown:>6}  {verdict(value, 1.25)}")
        out[f"peak_ratio {row['format']} {row['runtime']}"] = value
    print(
        "memory added by loading, cold (peak while loading - RSS before it) / the model's "
        "bytes (target <= 1.10; diffusers maps the file and reads it later)"
    )
    for row in rows:
        cold = row.get("cold") or {}
        if "peak_load" not in cold or "rss_before_load" not in cold:
            continue
        value = (cold["peak_load"] - cold["rss_before_load"]) / row["bytes"]
        name = RUNTIME_NAMES[row["runtime"]]
        print(f"  {row['format']:<15}{name:<10}{value:>6.2f}  {verdict(value, 1.10)}")
        out[f"load_memory {row['format']} {row['runtime']}"] = value
    onnx = next((r for r in rows if r["runtime"] == "onnx"), None)
    folder = next(
        (r for r in rows if r["format"] == "fp32-folder" and r["runtime"] == "ours"), None
    )
    if onnx and folder:
        value = ratio(onnx["figures"]["peak"], folder["figures"]["peak"])
        above = 100 * (value - 1) if value is not None else None
        shown = f"{above:+.0f} %" if above is not None else "-"
        print(
            f"ONNX peak vs our PyTorch on the fp32 folder: {shown} (target <= +10 %)  "
            + verdict(above, 10)
        )
        out["onnx_peak_vs_pytorch_pct"] = above
    print(
        "our PyTorch vs diffusers direct (target within 5 %): first image; load warm; "
        "largest pixel difference"
    )
    for row in rows:
        if "vs_direct" not in row["figures"]:
            continue
        image_pct, load_pct = row["figures"]["vs_direct"], row["figures"]["load_vs_direct"]
        shown = [f"{p:+.1f} %" if p is not None else "-" for p in (image_pct, load_pct)]
        verdicts = [verdict(image_pct, 5), verdict(load_pct, 5)]
        pixels = row["figures"].get("pixels_vs_direct")
        pixels_shown = f"{pixels}/255" if pixels is not None else "-"
        print(
            f"  {row['format']:<15}{shown[0]:>9} {verdicts[0]:<5}{shown[1]:>9} {verdicts[1]:<5}"
            f"{pixels_shown:>8}"
        )
        out[f"vs_direct {row['format']}"] = {"image_pct": image_pct, "load_pct": load_pct}
    print("load / (imports + reading the files once) (target <= 1.2): warm; cold")
    for row in rows:
        found = row["figures"]
        pair = [found["load_ratio_warm"], found["load_ratio_cold"]]
        shown = [f"{v:.2f} {verdict(v, 1.2)}" if v is not None else "-" for v in pair]
        print(
            f"  {row['format']:<15}{RUNTIME_NAMES[row['runtime']]:<10}{shown[0]:>9}  {shown[1]:>9}"
        )
        out[f"load_ratio {row['format']} {row['runtime']}"] = pair
    return out


def check_images(rows: list[dict[str, Any]], scratch: Path) -> list[str]:
    """Anything odd in the images: not finite; ours unlike diffusers direct's."""
    import numpy as np

    notes = []
    for row in rows:
        warm = row.get("warm") or {}
        if warm.get("finite") is False:
            notes.append(f"{row['format']} {RUNTIME_NAMES[row['runtime']]}: image not finite")
        if row["runtime"] != "ours":
            continue
        ours, direct = (scratch / f"{row['format']}-{r}.npy" for r in ("ours", "direct"))
        if ours.is_file() and direct.is_file():
            a, b = np.load(ours).astype(int), np.load(direct).astype(int)
            difference = int(np.abs(a - b).max()) if a.shape == b.shape else None
            row["figures"]["pixels_vs_direct"] = difference
            if difference is None:
                notes.append(f"{row['format']}: ours and diffusers direct differ in size")
    return notes


def warnings(rows: list[dict[str, Any]]) -> list[str]:
    notes = []
    for row in rows:
        for which, wanted in (("cold", "<= 5 %"), ("warm", ">= 99 %")):
            cached = (row.get(which) or {}).get("cached_before")
            if cached is None:
                continue
            if (which == "cold" and cached > 0.05) or (which == "warm" and cached < 0.99):
                notes.append(
                    f"{row['format']} {RUNTIME_NAMES[row['runtime']]}: {cached:.0%} of the files "
                    f"in the page cache before the {which} run (wanted {wanted})"
                )
            if (row.get(which) or {}).get("note"):
                notes.append(f"{row['format']} {which}: {row[which]['note']}")
    return notes


def machine() -> dict[str, Any]:
    flags = ""
    model = platform.processor()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags") and not flags:
            flags = line
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
    versions = {}
    for name in ("torch", "diffusers", "transformers", "onnxruntime"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "avx512_bf16": "avx512_bf16" in flags.split(),
        "amx_bf16": "amx_bf16" in flags.split(),
        "memory_gb": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GB,
        "load_average": os.getloadavg(),
        "versions": versions,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--formats", default=",".join(FORMATS), help=", ".join(FORMATS))
    parser.add_argument("--runtimes", default="ours,direct", help="ours, direct (ONNX: ours)")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--size", type=int)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-cold", action="store_true", help="warm runs only")
    parser.add_argument("--sdxl", action="store_true", help="also SDXL base fp16 at 1024^2")
    parser.add_argument("--quick", action="store_true", help="256^2, 1 step: checks the script")
    parser.add_argument("--min-available", type=float, default=10, help="GB free to start a run")
    parser.add_argument("--wait", type=float, default=30, help="minutes to wait for that")
    parser.add_argument("--json", type=Path, help="default runs/real-size/bench[-quick].json")
    args = parser.parse_args()
    args.steps = args.steps or (1 if args.quick else 4)
    args.size = args.size or (256 if args.quick else 512)
    args.sdxl_size = 256 if args.quick else 1024
    args.runtimes = args.runtimes.split(",")
    args.json = args.json or CACHE / ("bench-quick.json" if args.quick else "bench.json")
    chosen = [FORMATS[name] for name in args.formats.split(",")]
    if args.sdxl:
        chosen.append(SDXL)
    about = machine()
    print(
        f"{args.size}x{args.size} (SDXL {args.sdxl_size}), 1 image, {args.steps} Euler steps, "
        f"guidance 7, {args.threads} threads; each run a fresh process. {about['cpu']}, "
        f"bf16: {about['avx512_bf16'] or about['amx_bf16']}, load average "
        f"{about['load_average'][0]:.1f} at the start. GB = 10^9 bytes",
        flush=True,
    )
    weights = {"sd1": 0.0, "sdxl": 0.0}
    for name in ("sd15-fp32.safetensors", "sd15-folder", "sd15-fp16.safetensors"):
        if (CACHE / name).exists():
            weights["sd1"] = float(fp32_weight_bytes(CACHE / name))
            break
    missing = [f for f in chosen if not (CACHE / f.file).exists()]
    for fmt in missing:
        if fmt is SDXL:
            print(
                f"SDXL: {SDXL.file} was not built (bench/real_size_models.py --sdxl builds it, "
                "about 7 GB; our backend would need about 9 GB in bf16, 17 GB in fp32, of "
                f"this machine's {about['memory_gb']:.0f} GB)"
            )
        else:
            print(f"{fmt.name}: {fmt.file} was not built (bench/real_size_models.py builds it)")
    if (CACHE / SDXL.file).exists():
        weights["sdxl"] = float(fp32_weight_bytes(CACHE / SDXL.file))
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="studio-bench-real-") as tmp:
        bench = Bench(args, Path(tmp))
        for fmt in chosen:
            if fmt not in missing:
                rows += bench.model(fmt)
        for row in rows:
            family = "sdxl" if row["format"] == SDXL.name else "sd1"
            row["figures"] = figures(row, weights[family])
        notes = check_images(rows, Path(tmp))
    compare_with_direct(rows)
    print_table(rows)
    found = targets(rows, weights)
    notes += warnings(rows)
    for note in notes:
        print(f"note: {note}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    record = {
        "settings": settings,
        "machine": about,
        "fp32_weights": weights,
        "rows": rows,
        "targets": found,
        "notes": notes,
    }
    args.json.write_text(json.dumps(record, indent=1))
    print(f"saved {args.json.relative_to(ROOT) if args.json.is_relative_to(ROOT) else args.json}")


if __name__ == "__main__":
    main()
