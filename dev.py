"""Set up `.venv` if needed, then launch the app or run the tests.

    python3 dev.py app [ARGS...]     # install, then `python main.py ARGS...`
    python3 dev.py test [ARGS...]    # install with test extras, ruff, import layers, pytest ARGS...

Needs only Python 3.11+ and pip. The install is skipped while pyproject.toml is unchanged.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")


# The app and every plugin distribution, installed together (editable, so edits apply).
DISTRIBUTIONS = (".", "plugins/shapes", "plugins/shapes-lab", "plugins/diffusion")


def ensure_environment(extras: str) -> None:
    if not PYTHON.exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    spec = b"".join((ROOT / d / "pyproject.toml").read_bytes() for d in DISTRIBUTIONS)
    stamp = VENV / f".studio-installed-{extras or 'app'}"
    digest = hashlib.sha256(spec + extras.encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    targets = [f".[{extras}]" if extras else ".", *DISTRIBUTIONS[1:]]
    editable = [arg for target in targets for arg in ("-e", target)]
    run([str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", *editable])
    stamp.write_text(digest)


def run(command: list[str], env: dict[str, str] | None = None) -> None:
    code = subprocess.call(command, cwd=ROOT, env=env)
    if code:
        sys.exit(code)


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in ("app", "test"):
        sys.exit(__doc__)
    action, rest = sys.argv[1], sys.argv[2:]
    if action == "app":
        ensure_environment("")
        run([str(PYTHON), "main.py", *rest])
        return
    ensure_environment("test,cluster")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    run([str(PYTHON), "-m", "ruff", "check", "."], env)
    run([str(PYTHON), "-m", "ruff", "format", "--check", "."], env)
    run([str(BIN / "lint-imports")], env)  # the layers in pyproject.toml [tool.importlinter]
    run([str(PYTHON), "-m", "pytest", *rest], env)
    if not rest:
        run_in_loopback_namespace([str(PYTHON), "-m", "pytest", "tests/cluster"], env)


def run_in_loopback_namespace(command: list[str], env: dict[str, str]) -> None:
    """Run `command` where loopback is the only network: Ray binds each node to the
    machine's address, and nothing but loopback may carry traffic here. Needs root and
    iproute2 (as CI has); elsewhere those tests are skipped, and this says so."""
    name = f"studio-tests-{os.getpid()}"
    if os.name != "posix" or os.geteuid() != 0 or not shutil.which("ip"):
        print("tests/cluster skipped: a network namespace needs root and iproute2")
        return
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        run(["ip", "netns", "exec", name, *command], env)
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


if __name__ == "__main__":
    main()
