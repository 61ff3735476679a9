"""The run log and progress a person can follow, in a terminal (one updating line) or a notebook.

The run log goes through :mod:`logging`, to the logger ``ninefit.run``
(:data:`LOGGER`): :func:`log` writes a line at ``INFO``, or at ``WARNING`` when
it says something went wrong, cost rows or changes what the run does
(:func:`quiet_keeps`). Unless told otherwise (a handler of your own on
``ninefit.run``), the lines go to the current ``sys.stderr`` as ``ninefit:
...``, in a notebook as in a terminal; the run log's quiet mode (``ninefit run
--quiet``, :func:`quiet_log`) keeps the ``WARNING`` lines only.

Also the duration and size formats the run log and report use (the packager reuses them).
"""

from __future__ import annotations

import contextlib
import logging
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
#: The run log's logger; its lines are ``INFO``, or ``WARNING`` for those :func:`quiet_keeps` keeps.
LOGGER = logging.getLogger("ninefit.run")


class _CurrentStderr(logging.Handler):
    """Writes ``ninefit: <message>`` to whatever ``sys.stderr`` is when a line is logged (a notebook's
    cell output, a test's capture), not to the stream that was there at import."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stderr
            stream.write(f"ninefit: {record.getMessage()}\n")
            stream.flush()
        except Exception:  # noqa: BLE001 - logging must never raise into the run
            self.handleError(record)


if not LOGGER.handlers:  # the run log is for the person running it: said unless a handler of theirs takes it
    LOGGER.addHandler(_CurrentStderr())
    LOGGER.setLevel(logging.INFO)
    LOGGER.propagate = False


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
    """Within it, the run log keeps only its ``WARNING`` lines (those :func:`quiet_keeps` keeps); ``quiet=False``: all."""
    before = LOGGER.level
    LOGGER.setLevel(logging.WARNING if quiet else logging.INFO)
    try:
        yield
    finally:
        LOGGER.setLevel(before)


def log(message: str) -> None:
    """One line of the run log: ``WARNING`` when it says something went wrong (:func:`quiet_keeps`), else ``INFO``."""
    LOGGER.log(logging.WARNING if quiet_keeps(message) else logging.INFO, message)


__all__ = ["LOGGER", "Progress", "format_gib", "format_seconds", "log", "quiet_keeps", "quiet_log"]
