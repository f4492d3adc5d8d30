"""Time from launching `python main.py` to a visible window, and whether torch was imported.

    .venv/bin/python bench/bench_startup.py [--runs 5] [--platform offscreen|xcb]

Each run is a fresh process; the wall time is measured from spawning it to the
moment it reports its window shown (after the first paint). Target: <= 0.5 s.
bench_cold_start.py reuses `launch_once` beside the command line's figures.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 0.5


def launch_once(
    platform: str, home: Path, env: dict[str, str] | None = None
) -> tuple[float, float, bool]:
    """(wall s, in-process s, torch imported). `env` replaces os.environ for the child."""
    env = {**(os.environ if env is None else env), "QT_QPA_PLATFORM": platform}
    command = [sys.executable, "main.py", "--startup-report", "--data-dir", str(home)]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    wall = time.perf_counter() - started
    process.wait(60)
    report = json.loads(line)
    return wall, report["window_shown_s"], report["torch_imported"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--platform", default=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        launch_once(args.platform, Path(home))  # warm the OS file cache; not counted
        runs = [launch_once(args.platform, Path(home)) for _ in range(args.runs)]
    walls = [r[0] for r in runs]
    inside = [r[1] for r in runs]
    print(f"platform: {args.platform}, runs: {args.runs}")
    print(f"{'measure':<44}{'median':>9}{'max':>9}{'target':>9}")
    print(
        f"{'launch -> window shown (wall, s)':<44}"
        f"{statistics.median(walls):>9.3f}{max(walls):>9.3f}{TARGET_S:>9.2f}"
    )
    print(
        f"{'QApplication -> window shown (in-process, s)':<44}"
        f"{statistics.median(inside):>9.3f}{max(inside):>9.3f}{'':>9}"
    )
    print(f"torch imported by then: {any(r[2] for r in runs)}")


if __name__ == "__main__":
    main()
