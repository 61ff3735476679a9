"""Progress a person can follow, in a terminal (one updating line) or a notebook (a line every few seconds).

Also the duration and size formats the run log and report use (the packager reuses them).
"""

from __future__ import annotations

import math
import sys
import time
from typing import Callable, TextIO


def format_seconds(seconds: float) -> str:
    """``12.3s``, ``4m05s``, ``1h02m03s``; negative durations read as ``0.0s``, unknown (NaN, inf) as ``-``."""
    if not math.isfinite(seconds):
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def format_gib(n_bytes: float | None) -> str:
    """``1.50 GiB``; ``-`` for None (not measured)."""
    return "-" if n_bytes is None else f"{n_bytes / 2**30:.2f} GiB"


class Progress:
    """Reports rows done for one task; silent when ``enabled`` is False.

    Args:
        done: Rows already done when it starts (resumed ones): shown in the
            count, left out of rows/s and the ETA.
        clock: Seconds, for the rate (``time.perf_counter``; tests pass a fake one).
    """

    def __init__(self, label: str, total: int, *, enabled: bool = True, stream: TextIO | None = None,
                 every_s: float = 5.0, done: int = 0, clock: Callable[[], float] = time.perf_counter):
        self.label, self.total, self.enabled = label, total, enabled
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.every_s = 0.2 if self.tty else every_s
        self.clock = clock
        self.start = clock()
        self._last = -1e9
        self.done = self.initial = done

    def update(self, done: int) -> None:
        self.done = done
        now = self.clock()
        if self.enabled and (now - self._last >= self.every_s or done >= self.total):
            self._last = now
            self._emit(now, final=False)

    def close(self, status: str = "done") -> None:
        if self.enabled:
            self._emit(self.clock(), final=True, status=status)

    def _emit(self, now: float, *, final: bool, status: str = "") -> None:
        elapsed = now - self.start
        rate = (self.done - self.initial) / elapsed if elapsed > 0 else 0.0
        pct = 100.0 * self.done / self.total if self.total else 100.0
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        line = f"[{self.label}] {self.done}/{self.total} rows ({pct:5.1f}%)"
        # The final line gives no rate: the run's table gives the member's one rows/s (its steady
        # batches, warm-up excluded), and a second, different figure here would contradict it.
        line += f" {status} in {format_seconds(elapsed)}" if final else (
            f" {rate:,.0f} rows/s" + (f" ETA {format_seconds(eta)}" if eta == eta else ""))
        if self.tty:
            self.stream.write("\r\033[K" + line + ("\n" if final else ""))
        elif final or self.done < self.total:
            self.stream.write(line + "\n")
        self.stream.flush()


def log(message: str, *, stream: TextIO | None = None) -> None:
    """One line of the run log."""
    s = stream or sys.stderr
    s.write(f"ninefit: {message}\n")
    s.flush()


__all__ = ["Progress", "format_gib", "format_seconds", "log"]
