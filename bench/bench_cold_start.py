"""Cold start, whole process: `studio --help`, `studio generate` (text, and an edit of a
picture under a mask) and the app's window.

    .venv/bin/python bench/bench_cold_start.py [--runs 5] [--platform offscreen|xcb]
                                               [--fresh-home] [--keep-bytecode-env]

Each run is a fresh process spawned from here; its wall time runs from the spawn to its
exit (for the window: to the line `main.py --startup-report` prints once the window is
shown, see bench_startup.py). One untimed run of each command first warms the OS file
cache and writes the bytecode caches, as on a machine where the app was started before.

- Bytecode: Python writes and reads its .pyc files under a temporary
  PYTHONPYCACHEPREFIX (so nothing is written into the checkout) and
  PYTHONDONTWRITEBYTECODE is dropped, as for an installed app. Without that, every
  run would compile the app's own sources again (cProfile: ~40 ms of compile()).
  --keep-bytecode-env keeps the caller's settings instead.
- Data: `generate` runs against one temporary STUDIO_HOME shared by all runs (the
  warm-up creates it; each run adds one history entry), or a new one per run with
  --fresh-home (a first start: the database and folders are created in the time).
- Threads: OMP/OpenBLAS/MKL to 1, as the shapes backend runs ONNX Runtime on one thread.

Also prints which heavy modules (onnx, torch, transformers, diffusers) the default
backend's generate imported (expected: none), the peak memory of the processes, and
the machine's load average, since other work on the machine skews every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_startup import launch_once

ROOT = Path(__file__).resolve().parents[1]
STUDIO = Path(sys.executable).parent / "studio"  # the console script, as a user runs it
PROMPT = "two red circles"
HEAVY = ("onnx", "torch", "transformers", "diffusers")
TARGETS = {"help": 0.3, "generate": 1.0, "edit": 1.0, "window": 0.5}
THREADS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

# Runs the CLI in-process as the console script does, then reports the heavy imports.
HEAVY_PROBE = f"""
import json, sys
from studio.cli import main
code = main(sys.argv[1:])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})
print("HEAVY " + json.dumps(heavy), file=sys.stderr)
sys.exit(code)
"""


def environment(pycache: Path, keep_bytecode_env: bool) -> dict[str, str]:
    env = {**os.environ, **THREADS}
    if not keep_bytecode_env:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds from spawn to exit, peak RSS in MiB) of one process."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    assert process.stderr is not None
    errors = process.stderr.read().decode(errors="replace")
    process.stderr.close()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}):\n{errors}")
    return wall, usage.ru_maxrss / 1024  # KiB on Linux


def heavy_imports(home: Path, env: dict[str, str]) -> list[str]:
    command = [sys.executable, "-c", HEAVY_PROBE, "generate", PROMPT, "--seed", "0"]
    done = subprocess.run(
        command,
        cwd=ROOT,
        env={**env, "STUDIO_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in done.stderr.splitlines() if line.startswith("HEAVY ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"the import probe failed ({done.returncode}):\n{done.stderr}")
    return json.loads(lines[-1].removeprefix("HEAVY "))


def measure(run: Callable[[int], tuple[float, float]], runs: int) -> list[tuple[float, float]]:
    run(-1)  # warm the OS file cache and the bytecode caches; not counted
    return [run(i) for i in range(runs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--platform", default=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
    parser.add_argument("--fresh-home", action="store_true", help="a new STUDIO_HOME per run")
    parser.add_argument("--keep-bytecode-env", action="store_true")
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as temp:
        temp_path = Path(temp)
        env = environment(temp_path / "pycache", args.keep_bytecode_env)

        def home(i: int) -> Path:
            folder = temp_path / (f"home-{i}" if args.fresh_home else "home")
            folder.mkdir(exist_ok=True)
            return folder

        def generate(i: int) -> tuple[float, float]:
            command = [str(STUDIO), "generate", PROMPT, "--seed", str(i + 1)]
            return timed(command, {**env, "STUDIO_HOME": str(home(i))})

        picture, mask = edit_inputs(temp_path)

        def edit(i: int) -> tuple[float, float]:
            command = [str(STUDIO), "generate", PROMPT, "--seed", str(i + 1)]  # the same prompt
            command += ["--image", str(picture), "--mask", str(mask)]
            return timed(command, {**env, "STUDIO_HOME": str(home(i))})

        def window(i: int) -> tuple[float, float]:
            folder = temp_path / "app-home"
            window_env = {**env, "QT_QPA_PLATFORM": args.platform}
            wall, _, torch_imported = launch_once(args.platform, folder, env=window_env)
            window_torch.append(torch_imported)
            return wall, float("nan")

        window_torch: list[bool] = []
        results = {
            "help": measure(lambda i: timed([str(STUDIO), "--help"], env), args.runs),
            "generate": measure(generate, args.runs),
            "edit": measure(edit, args.runs),
            "window": measure(window, args.runs),
        }
        heavy = heavy_imports(home(args.runs), env)
    load_after = os.getloadavg()

    labels = {
        "help": "studio --help",
        "generate": f'studio generate "{PROMPT}" --seed N',
        "edit": "the same, an edit: --image P --mask M",
        "window": "python main.py -> window shown",
    }
    home_kind = "fresh per run" if args.fresh_home else "shared temp"
    bytecode = "caller env" if args.keep_bytecode_env else "cached (temp prefix)"
    print(
        f"runs: {args.runs} (+1 warm-up each), cores: {os.cpu_count()}, platform: "
        f"{args.platform}, STUDIO_HOME: {home_kind}, bytecode: {bytecode}, threads: 1"
    )
    print(f"load average (1 min) before: {load_before[0]:.2f}, after: {load_after[0]:.2f}")
    print(f"{'command':<44}{'median s':>9}{'max s':>9}{'target':>8}{'met':>5}{'peak MiB':>10}")
    for key, runs in results.items():
        walls = [wall for wall, _ in runs]
        median = statistics.median(walls)
        rss = max(peak for _, peak in runs)
        met = "yes" if median <= TARGETS[key] else "NO"
        rss_text = "" if rss != rss else f"{rss:.0f}"  # nan: not measured
        print(
            f"{labels[key]:<44}{median:>9.3f}{max(walls):>9.3f}"
            f"{TARGETS[key]:>8.2f}{met:>5}{rss_text:>10}"
        )
    packages = sorted({name.split(".")[0] for name in heavy})
    print(
        f"heavy modules imported by generate ({', '.join(HEAVY)}): {packages}"
        + (f" ({len(heavy)} modules: {', '.join(heavy[:6])}, ...)" if heavy else "")
    )
    print(f"torch imported by the window: {any(window_torch)}")
    text, edited = (statistics.median(w for w, _ in results[k]) for k in ("generate", "edit"))
    print(f"edit against text alone: {edited / text:.2f}x (target <= 1.00x)")


def edit_inputs(folder: Path) -> tuple[Path, Path]:
    """A picture (a red circle above a blue square, on black) and a mask of its bottom
    half: "two red circles" then asks for a second circle below the first."""
    from PIL import Image, ImageDraw

    picture = Image.new("RGB", (64, 64), (20, 20, 20))
    draw = ImageDraw.Draw(picture)
    draw.ellipse((22, 4, 40, 22), fill=(220, 40, 40))
    draw.rectangle((22, 36, 42, 56), fill=(40, 80, 220))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (0, 32, 64, 64))
    picture.save(folder / "picture.png")
    mask.save(folder / "mask.png")
    return folder / "picture.png", folder / "mask.png"


if __name__ == "__main__":
    main()
