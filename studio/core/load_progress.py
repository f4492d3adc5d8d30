"""Bytes-read reports while a model loads, thinned out before they travel: a backend may
report every tensor (thousands for a big file), listeners need a few a second."""

from __future__ import annotations

import time
from collections.abc import Callable

LoadingReport = Callable[[int, int], None]  # (bytes read, bytes in all)
SHARE = 0.01  # a report passes when at least this share of the total was read since...
INTERVAL_S = 0.1  # ...or this long passed since the last report that passed


class ThrottledLoading:
    """Passes a (done, total) report on when it moved ≥ 1 % or ≥ 0.1 s since the last
    one passed; the first and the last (done == total) always pass, repeats never."""

    def __init__(self, report: LoadingReport) -> None:
        self._report = report
        self._last: tuple[int, int] | None = None
        self._at = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        last = self._last
        if (done, total) == last:
            return
        if last is not None and done != total:
            moved = done - last[0] >= SHARE * total or total != last[1]
            if not moved and (now - self._at < INTERVAL_S or done == last[0]):
                return
        self._last, self._at = (done, total), now
        self._report(done, total)


def bytes_read(done: int, total: int, digits: int = 2) -> str:
    """Bytes read as "1.23 / 4.27 GB" (`digits` decimals in GB, none in smaller units),
    both in the total's unit, decimal (1 GB = 10^9 bytes) as file managers count."""
    factor, unit = next(
        ((f, u) for f, u in ((10**9, "GB"), (10**6, "MB"), (10**3, "kB")) if total >= f),
        (1, "bytes"),
    )
    shown = digits if factor == 10**9 else 0
    return f"{done / factor:.{shown}f} / {total / factor:.{shown}f} {unit}"
