"""Sizes as people read them: decimal units (1 GB = 10^9 bytes), as file managers and
model sites show them, so that a 4.27 GB download reads 4.27 GB here too."""

from __future__ import annotations

_UNITS = ((10**12, "TB"), (10**9, "GB"), (10**6, "MB"), (10**3, "kB"))


def readable_size(n: int) -> str:
    """`n` bytes as "4.27 GB", "512.0 MB", "3.2 kB" or "12 bytes"."""
    for factor, unit in _UNITS:
        digits = 2 if factor >= 10**9 else 1
        shown = round(n / factor, digits)  # 999,999,999 bytes: 1.00 GB, not 1000.0 MB
        if shown >= 1:
            return f"{shown:.{digits}f} {unit}"
    return f"{n} bytes" if n != 1 else "1 byte"
