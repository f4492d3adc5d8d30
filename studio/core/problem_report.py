"""A problem report: the log, the versions and the backends' status in one zip file.

Prompts are private: unless the user agrees, every prompt of the history that appears in
the log is replaced by [prompt] (as are the history's negative prompts).
"""

from __future__ import annotations

import io
import platform
import sys
import zipfile
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from studio import __version__
from studio.core.files import atomic_write_bytes

if TYPE_CHECKING:
    from studio.core.app import Core

PACKAGES = (
    "PySide6-Essentials",
    "torch",
    "onnxruntime",
    "onnxruntime-gpu",
    "diffusers",
    "transformers",
    "numpy",
    "pillow",
    "safetensors",
)
RECENT_PROMPTS = 5_000  # the prompts looked for in the log


def versions() -> str:
    lines = [
        f"Studio {__version__}",
        f"Python {sys.version.split()[0]}",
        f"{platform.system()} {platform.release()} ({platform.machine()})",
    ]
    for package in PACKAGES:
        try:
            lines.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            continue
    return "\n".join(lines) + "\n"


def backends(core: Core) -> str:
    lines = []
    for record in core.registry.records():
        lines.append(f"{record.id}: {record.status.value} {record.target}")
        if record.error:
            lines.append(f"    {record.error}")
    return "\n".join(lines) + "\n"


def redact(text: str, prompts: list[str]) -> str:
    """`text` with each of `prompts` replaced by [prompt], longest first."""
    for prompt in sorted({p for p in prompts if p.strip()}, key=len, reverse=True):
        text = text.replace(prompt, "[prompt]")
    return text


def write_report(core: Core, out: Path, include_prompts: bool = False) -> Path:
    """Write the report zip to `out` (atomically) and return it."""
    prompts: list[str] = []
    if not include_prompts:
        for entry in core.history.list(limit=RECENT_PROMPTS):
            prompts += [entry.request.prompt, entry.request.negative_prompt]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("versions.txt", versions())
        archive.writestr("backends.txt", backends(core))
        for log in sorted(core.paths.logs.glob("studio.log*")):
            text = log.read_text(encoding="utf-8", errors="replace")
            archive.writestr(log.name, text if include_prompts else redact(text, prompts))
    atomic_write_bytes(out, buffer.getvalue())
    return out
