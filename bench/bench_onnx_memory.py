"""ONNX Runtime session options against memory: each configuration, and the PyTorch
backend on the same model, in a fresh process; load time, RSS after loading, peak RSS,
time per step, side by side.

    .venv/bin/python bench/bench_onnx_memory.py --onnx runs/real-size/sd15-onnx \
        --torch runs/real-size/sd15-folder [--size 512] [--steps 2] [--threads 2] \
        [--configs shipped,defaults,...]

A request: 1 image, Euler, guidance 7 (the UNet runs a batch of 2), `--steps` steps.
`--torch` is a diffusers folder of the same model for the PyTorch backend (left out: no
PyTorch row). A configuration replaces the backend's session and run options (threads
kept) by the ones it names (`CONFIGS`): "defaults" is the backend before issue 24 (ONNX
Runtime's defaults, the UNet on all rows at once); "shipped" leaves the backend's own.
Peaks are VmHWM from /proc/self/status: while loading, and while generating (reset in
between through /proc/self/clear_refs), the whole process either way; "CPU s" is the
process's CPU time a step (after the first), steadier than wall time on a shared
machine. With -v each child also says what each session added to RSS when it was built,
and each run's time, peak and RSS after. Meant for real-size models (gigabytes, minutes):
one process at a time, niced. Prints figures; never asserts.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "a red house on the green tree"

BEFORE = {  # ONNX Runtime's defaults, as the backend set them before issue 24
    "arena": True,
    "mem_pattern": True,
    "opt": "all",
    "entries": {},
    "split": False,  # the UNet on all rows at once (the backend now splits from 64²)
}
CONFIGS: dict[str, dict | None] = {
    "shipped": None,  # the backend's own options
    "defaults": BEFORE,
    "no-arena": BEFORE | {"arena": False},
    "no-pattern": BEFORE | {"mem_pattern": False},
    "no-prepack": BEFORE | {"entries": {"session.disable_prepacking": "1"}},
    "shrink": BEFORE | {"run_entries": {"memory.enable_memory_arena_shrinkage": "cpu:0"}},
    "device-alloc": BEFORE | {"entries": {"session.use_device_allocator_for_initializers": "1"}},
    "opt-basic": BEFORE | {"opt": "basic"},
    "opt-extended": BEFORE | {"opt": "extended"},
    "no-arena-no-pattern": BEFORE | {"arena": False, "mem_pattern": False},
    "no-arena-no-prepack": BEFORE
    | {"arena": False, "entries": {"session.disable_prepacking": "1"}},
    # one arena for all sessions (registered in ONNX Runtime's environment): -1 grows it
    # by powers of two (the default), 1 by what is asked
    "shared": BEFORE | {"shared_arena": -1},
    "shared-exact": BEFORE | {"shared_arena": 1},
    "shared-exact-init": BEFORE
    | {"shared_arena": 1, "entries": {"session.use_device_allocator_for_initializers": "1"}},
    "shrink-no-prepack": BEFORE
    | {
        "entries": {"session.disable_prepacking": "1"},
        "run_entries": {"memory.enable_memory_arena_shrinkage": "cpu:0"},
    },
    # not a session option: the UNet run on one row at a time (uncond, cond)
    "split": BEFORE | {"split": True},
    "shrink-split": BEFORE
    | {"split": True, "run_entries": {"memory.enable_memory_arena_shrinkage": "cpu:0"}},
    "lean": BEFORE
    | {
        "arena": False,
        "mem_pattern": False,
        "entries": {"session.disable_prepacking": "1"},
    },
}

CHILD = r"""
import json, sys, time
mode, folder, config = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
threads, size, steps = (int(x) for x in sys.argv[4:7])
started = time.perf_counter()

def status():
    fields = {}
    for line in open("/proc/self/status"):
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            fields[key] = int(value.split()[0]) * 1024 / 1e9  # kB -> GB
    return fields

def reset_peak():  # VmHWM := VmRSS (Linux >= 4.0)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")

from pathlib import Path
from studio.api import GenerationRequest, ModelLibrary
request = GenerationRequest(sys.argv[7], seed=1, count=1, candidates=1, steps=steps,
                            guidance=7.0, width=size, height=size,
                            options={"sampler": "Euler"})
events = []
class Ctx:
    cancelled = False
    device = "cpu"
    def check_cancelled(self): pass
    def progress(self, step, total, phase="steps"):
        events.append((phase, step, time.perf_counter(), time.process_time()))
    def preview(self, image): pass

sessions = []  # (graph, seconds to build, RSS added)
runs = []  # (graph, seconds, RSS after, peak during)
peaks = []  # the generating phase's peak before each run reset it
if mode == "pytorch":
    import torch
    torch.set_num_threads(threads)
    from sd_backends.backend import DiffusionBackend
    backend = DiffusionBackend()
else:
    import onnxruntime as ort
    from sd_backends.onnx_backend import DiffusionOnnxBackend
    LEVELS = {"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
              "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
    Base = ort.InferenceSession
    run_options = None
    if config and config.get("run_entries"):
        run_options = ort.RunOptions()
        for key, value in config["run_entries"].items():
            run_options.add_run_config_entry(key, value)

    class Measured(Base):
        def __init__(self, graph, options=None, providers=None, **kw):
            if config is not None:  # this configuration's options, the threads kept
                chosen = ort.SessionOptions()
                chosen.intra_op_num_threads = options.intra_op_num_threads
                chosen.log_severity_level = 3
                chosen.add_session_config_entry("session.force_spinning_stop", "1")
                chosen.enable_cpu_mem_arena = config["arena"]
                chosen.enable_mem_pattern = config["mem_pattern"]
                chosen.graph_optimization_level = LEVELS[config["opt"]]
                for key, value in config["entries"].items():
                    chosen.add_session_config_entry(key, value)
                options = chosen
            self._part = Path(graph).parent.name
            before, t = status()["VmRSS"], time.perf_counter()
            super().__init__(graph, options, providers=providers, **kw)
            sessions.append((self._part, time.perf_counter() - t, status()["VmRSS"] - before))

        def run(self, output_names, input_feed, run_opts=None):
            before = status()["VmHWM"]
            reset_peak()
            t = time.perf_counter()
            if config is not None:  # this configuration's run options, not the backend's
                run_opts = run_options
            out = super().run(output_names, input_feed, run_opts)
            now = status()
            runs.append((self._part, time.perf_counter() - t, now["VmRSS"], now["VmHWM"]))
            peaks.append(max(before, now["VmHWM"]))  # the phase's peak so far
            return out

    if config and config.get("shared_arena") is not None:  # one arena for every session
        cpu = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0,
                                ort.OrtMemType.DEFAULT)
        ort.create_and_register_allocator(cpu, ort.OrtArenaCfg(0, config["shared_arena"], -1, -1))
        config["entries"] = config["entries"] | {"session.use_env_allocators": "1"}
    ort.InferenceSession = Measured
    if config and not config.get("split"):  # the UNet on all rows at once, as before
        from sd_backends import onnx_backend
        onnx_backend.ROW_BY_ROW = 2**62
    backend = DiffusionOnnxBackend(threads=threads)
backend.model_library = lambda: ModelLibrary([], [], Path(folder).parent / "hashes.json")
backend.load(folder)
loaded_at = time.perf_counter()
loaded = status()
reset_peak()
t, cpu = time.perf_counter(), time.process_time()
backend.generate(request, Ctx())
done_at = time.perf_counter()
after = status()
ticks = [t] + [e[2] for e in events if e[0] == "steps"]
cpu_ticks = [cpu] + [e[3] for e in events if e[0] == "steps"]
print(json.dumps({
    "load_s": loaded_at - started, "rss_loaded": loaded["VmRSS"],
    "anon_loaded": loaded["RssAnon"], "file_loaded": loaded["RssFile"],
    "peak_load": loaded["VmHWM"], "peak_generate": max(peaks + [after["VmHWM"]]),
    "rss_after": after["VmRSS"], "generate_s": done_at - t,
    "steps_s": [b - a for a, b in zip(ticks, ticks[1:])],
    "steps_cpu_s": [b - a for a, b in zip(cpu_ticks, cpu_ticks[1:])],
    "after_steps_s": done_at - ticks[-1], "sessions": sessions, "runs": runs,
}))
"""


def child(mode: str, folder: Path, config: dict | None, args: argparse.Namespace) -> dict:
    """One configuration in a fresh process (niced: real-size runs take minutes)."""
    arguments = [mode, str(folder), json.dumps(config)]
    arguments += [str(args.threads), str(args.size), str(args.steps), PROMPT]
    done = subprocess.run(
        ["nice", sys.executable, "-c", CHILD, *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        return {"error": done.stderr.strip().splitlines()[-1:] or [f"exit {done.returncode}"]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def show(name: str, f: dict, verbose: bool) -> None:
    if "error" in f:
        print(f"{name:<22} failed: {f['error'][0]}")
        return
    steps, cpu = f["steps_s"], f["steps_cpu_s"]
    later = steps[1:] or steps  # the first step also encodes the prompt
    later_cpu = cpu[1:] or cpu
    peak = max(f["peak_load"], f["peak_generate"])
    print(
        f"{name:<22}{f['load_s']:>8.1f}{f['rss_loaded']:>10.2f}{f['peak_load']:>10.2f}"
        f"{f['peak_generate']:>10.2f}{peak:>9.2f}{f['rss_after']:>9.2f}"
        f"{sum(later) / len(later):>9.1f}{sum(later_cpu) / len(later_cpu):>9.1f}"
        f"{f['after_steps_s']:>9.1f}",
        flush=True,
    )
    if verbose:
        anon, file = f["anon_loaded"], f["file_loaded"]
        print(f"    after loading: anonymous {anon:.2f} GB, file-backed {file:.2f} GB")
        for part, seconds, added in f.get("sessions", []):
            print(f"    session {part:<14} built in {seconds:5.1f} s, RSS +{added:.2f} GB")
        for part, seconds, rss, peak in f.get("runs", []):
            print(
                f"    run {part:<18} {seconds:6.1f} s, peak {peak:.2f} GB, RSS after {rss:.2f} GB"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", type=Path, required=True, help="an exported ONNX folder")
    parser.add_argument("--torch", type=Path, help="the same model as a diffusers folder")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--configs", default="defaults,shipped", help=", ".join(CONFIGS))
    parser.add_argument("-v", "--verbose", action="store_true", help="per-session figures")
    args = parser.parse_args()
    print(
        f"{args.size}x{args.size}, 1 image, {args.steps} Euler steps, guidance 7 (UNet batch "
        f"2), {args.threads} threads; each row a fresh process. GB = 10^9 bytes"
    )
    print(
        f"{'':<22}{'load s':>8}{'RSS load':>10}{'pk load':>10}{'pk gen':>10}{'peak':>9}"
        f"{'RSS end':>9}{'step s':>9}{'CPU s':>9}{'decode s':>9}"
    )
    if args.torch:
        show("PyTorch", child("pytorch", args.torch, None, args), args.verbose)
    for name in args.configs.split(","):
        show(f"ONNX {name}", child("onnx", args.onnx, CONFIGS[name], args), args.verbose)


if __name__ == "__main__":
    main()
