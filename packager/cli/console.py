"""What the packager's commands say as they go, on the terminal.

The library logs its progress through :mod:`logging`, under the ``ninefit`` logger
hierarchy (:data:`LOGGERS`: packaging and its steps, profiling, pushing); as a
library it says nothing unless told to (a handler of the caller's). The
``ninefit`` command shows those lines on stdout, one message a line, as it
always printed them (:func:`show_progress`); ``--json`` output is kept clean of
them (:func:`silenced`). The run log (``ninefit.run``) is the runtime's own,
on stderr (:mod:`runtime.progress`).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

#: The packager's progress loggers: ``ninefit package`` and its steps, ``ninefit profile``, ``ninefit push``.
LOGGERS = ("ninefit.package", "ninefit.profile", "ninefit.push")


class _CurrentStdout(logging.Handler):
    """Writes each message, alone on its line, to whatever ``sys.stdout`` is when it is logged (a test's
    capture too), not to the stream that was there when the handler was made."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stdout
            stream.write(f"{record.getMessage()}\n")
            stream.flush()
        except Exception:  # noqa: BLE001 - a progress line must never fail the command
            self.handleError(record)


_HANDLER = _CurrentStdout()


def show_progress(level: int = logging.INFO) -> None:
    """Show the packager's progress lines (``level`` and above) on stdout; once per process, however often called."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _HANDLER not in logger.handlers:
            logger.addHandler(_HANDLER)
        logger.setLevel(level)


@contextlib.contextmanager
def silenced(*names: str) -> Iterator[None]:
    """Within it, the given loggers (default: all of :data:`LOGGERS`) say nothing, warnings included."""
    loggers = [logging.getLogger(n) for n in names or LOGGERS]
    before = [lg.disabled for lg in loggers]
    for lg in loggers:
        lg.disabled = True
    try:
        yield
    finally:
        for lg, was in zip(loggers, before):
            lg.disabled = was


__all__ = ["LOGGERS", "show_progress", "silenced"]
