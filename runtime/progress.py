"""Progress a person can follow, in a terminal (one updating line) or a notebook (a line every few seconds).

Also the duration and size formats the run log and report use (the packager reuses them), and the run
log's quiet mode (``ninefit run --quiet``, :func:`quiet_log`): only the lines that say something went
wrong, cost rows or changes what the run does (:func:`quiet_keeps`) are written.
"""

from __future__ import annotations

import contextlib
import math
import re
import sys
import time
from collections.abc import Iterator
from typing import Callable, TextIO


def format_seconds(seconds: float) -> str:
    """``40ms``, ``0.30s``, ``12.3s``, ``4m05s``, ``1h02m03s``: precision to the size, so a short duration
    is never printed as ``0s``; negative durations read as ``0.0s``, unknown (NaN, inf) as ``-``."""
    if not math.isfinite(seconds):
        return "-"
    if seconds <= 0:
        return "0.0s"
    if seconds < 0.1:
        ms = seconds * 1e3
        return f"{ms:.0f}ms" if ms >= 10 else f"{ms:.2g}ms"
    if seconds < 1:
        return f"{seconds:.2f}s"
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


#: Run-log lines kept by --quiet: warnings, damage, errors, a member's events that cost rows or time, and the
#: notices that change what the run does (a resume from checkpoints, models on the CPU).
_KEPT = re.compile(
    r"^(warning|damaged|could not|error|traceback|on kaggle|resuming from|--fresh: discarded)|running on the cpu"
    r"|^[^:\n]+: (failed|dropped|stopped|degraded|skipped|out of memory|ram nearly|non-finite|\d+ row\(s\))"
    r"|retired on lane|; skipped, the run goes on|has no row for|\bfailed on\b", re.IGNORECASE)
_QUIET = [False]  # one flag for the run's threads (lanes log too)


def quiet_keeps(message: str) -> bool:
    """Whether ``--quiet`` keeps a run-log line: it says something went wrong, cost rows, or changes what
    the run does.

    Kept: lines starting ``warning`` / ``WARNING``, ``DAMAGED``, ``could not``, ``error`` or a
    traceback; a member failed, dropped, stopped, degraded, skipped, retired on a lane, out of
    memory (or RAM), or with non-finite values; a fallback missing rows; a failing hook; a resume
    from checkpoints, or checkpoints discarded by ``--fresh``; models running on the CPU. Dropped: progress and the facts of a healthy run
    (the bundle, lanes, backends tried, loads, probes and the machine factor, the first write).
    """
    return bool(_KEPT.search(message))


@contextlib.contextmanager
def quiet_log(quiet: bool = True) -> Iterator[None]:
    """Within it, :func:`log` writes only the lines :func:`quiet_keeps` keeps (``quiet=False``: all)."""
    before, _QUIET[0] = _QUIET[0], quiet
    try:
        yield
    finally:
        _QUIET[0] = before


def log(message: str, *, stream: TextIO | None = None) -> None:
    """One line of the run log (under :func:`quiet_log`, warnings and errors only)."""
    if _QUIET[0] and not quiet_keeps(message):
        return
    s = stream or sys.stderr
    s.write(f"ninefit: {message}\n")
    s.flush()


__all__ = ["Progress", "format_gib", "format_seconds", "log", "quiet_keeps", "quiet_log"]
