"""The benchmarks' "slow" backend: onnxruntime slowed by a fixed sleep per row.

A trimmed copy of the test backend ``tests/runtime/slow_backend.py`` (which
also injects faults), kept here so the benchmarks import nothing from
``tests/``. Importing this module registers the backend ``"slow"``. Sleeping
a fixed time per row makes "which members fit" a property of the benchmark,
not of the machine.

It is configured by the JSON file named in ``NINEFIT_SLOW_CONFIG``, read at
each load (see :func:`write_config`). Keys are ``"member/variant"``, else
``"member"``, else ``"*"``::

    {"s_per_row": {"cnn": 0.004, "cnn/fp16": 0.001, "*": 0.002},
     "setup_s": {"*": 0.05}}
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from runtime.backends import onnxruntime as ort_backend
from runtime.backends import register
from runtime.backends.base import BackendOptions, Runner
from runtime.backends.registry import available

NAME = "slow"
CONFIG_ENV = "NINEFIT_SLOW_CONFIG"


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

    def activate_impl(self) -> None:
        time.sleep(_pick(self.cfg.get("setup_s"), self.name, 0.0))
        self.inner.activate()

    def deactivate_impl(self) -> None:
        self.inner.deactivate()

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = len(next(iter(feed.values())))
        time.sleep(rows * _pick(self.cfg.get("s_per_row"), self.name, 0.0))
        return self.inner.infer(feed)

    def describe(self) -> str:
        return f"slow ({self.inner.describe()})"


def load(path: Path, name: str, options: BackendOptions) -> SlowRunner:
    return SlowRunner(path, name, options)


if NAME not in available():
    register(NAME, load, requires=("onnxruntime",), description="onnxruntime slowed down for benchmarks")
