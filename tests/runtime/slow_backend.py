"""A test backend: onnxruntime slowed by a fixed sleep per row, with injected faults.

Importing this module registers the backend ``"slow"``; a subprocess gets it
with ``NINEFIT_PLUGINS=tests.runtime.slow_backend`` (and the repository on
``PYTHONPATH``). Sleeping a fixed time per row makes "which members fit" a
property of the test, not of the machine.

In fake time (:func:`fake_time`, in-process only) a runner does not sleep: it
advances the test's fake clock (:mod:`tests.fixtures.clock`) by the same
seconds, and the run reads that clock (``runtime.run(..., clock=...)``), so
every decision of the run follows from the costs set here alone.

It is configured by the JSON file named in ``NINEFIT_SLOW_CONFIG``, read at
each load (see :func:`write_config`). Keys are ``"member/variant"``, else
``"member"``, else ``"*"``::

    {"s_per_row": {"cnn": 0.004, "cnn/fp16": 0.001, "*": 0.002},
     "setup_s": {"*": 0.05},
     "slowdown": {"cnn/fp32": {"after_rows": 160, "factor": 10}},
     "fail": {"mlp": "injected failure"},       # RuntimeError from infer
     "oom": {"cnn": 8},                         # "out of memory" for batches over 8 rows
     "log": "/tmp/calls.log"}                   # appends "member/variant rows" per infer call
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from runtime.backends import onnxruntime as ort_backend, register
from runtime.backends.base import BackendOptions, Runner
from runtime.backends.registry import available

NAME = "slow"
CONFIG_ENV = "NINEFIT_SLOW_CONFIG"
_sleep: Callable[[float], None] = time.sleep  # what a runner loaded now takes its time with


@contextlib.contextmanager
def fake_time(clock: Any) -> Iterator[Any]:
    """Runners loaded inside take their time on ``clock`` (its ``advance``) instead of sleeping."""
    global _sleep
    _sleep = clock.advance
    try:
        yield clock
    finally:
        _sleep = time.sleep


def write_config(path: Path, **config: Any) -> dict[str, str]:
    """Write a config file; returns the environment variables that select it."""
    path.write_text(json.dumps(config))
    return {CONFIG_ENV: str(path), "NINEFIT_PLUGINS": __name__}


def _config() -> dict[str, Any]:
    path = os.environ.get(CONFIG_ENV)
    return json.loads(Path(path).read_text()) if path else {}


def _pick(table: Mapping[str, Any] | None, name: str, default: Any = None) -> Any:
    table = table or {}
    member = name.split("/")[0]
    for key in (name, member, "*"):
        if key in table:
            return table[key]
    return default


class SlowRunner(Runner):
    """Wraps the onnxruntime runner; sleeps before each batch."""

    def __init__(self, path: Path, name: str, options: BackendOptions):
        super().__init__(name)
        self.inner = ort_backend.load(path, name, BackendOptions(providers=("CPUExecutionProvider",), threads=1))
        self.cfg = _config()
        self.rows = 0  # rows this runner inferred (drives "slowdown")
        self.sleep = _sleep

    def activate_impl(self) -> None:
        self.sleep(_pick(self.cfg.get("setup_s"), self.name, 0.0))
        self.inner.activate()

    def deactivate_impl(self) -> None:
        self.inner.deactivate()

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = len(next(iter(feed.values())))
        message = _pick(self.cfg.get("fail"), self.name)
        if message:
            raise RuntimeError(f"{message} (injected)")
        oom = _pick(self.cfg.get("oom"), self.name)
        if oom is not None and rows > oom:
            raise RuntimeError(f"CUDA out of memory: tried to allocate a batch of {rows} rows (injected)")
        delay = rows * _pick(self.cfg.get("s_per_row"), self.name, 0.0)
        slow = _pick(self.cfg.get("slowdown"), self.name)
        if slow and self.rows >= slow["after_rows"]:
            delay *= slow["factor"]
        self.rows += rows
        self.sleep(delay)
        out = self.inner.infer(feed)
        log = self.cfg.get("log")
        if log:
            fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, f"{self.name} {rows}\n".encode())
            finally:
                os.close(fd)
        return out

    def describe(self) -> str:
        return f"slow ({self.inner.describe()})"


def load(path: Path, name: str, options: BackendOptions) -> SlowRunner:
    return SlowRunner(path, name, options)


def logged_rows(log: Path) -> Counter:
    """Rows inferred per "member/variant", from a call log."""
    out: Counter = Counter()
    if log.is_file():
        for line in log.read_text().splitlines():
            name, rows = line.rsplit(" ", 1)
            out[name] += int(rows)
    return out


if NAME not in available():
    register(NAME, load, requires=("onnxruntime",), description="onnxruntime slowed down for tests")
