"""How a predictor serves: the deadlines, the shape of ``predict``'s arguments and of its answer."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.errors import UsageError
from runtime.manifest import SERVE_OUTPUTS, ServeSpec


@dataclass(frozen=True)
class ServeOptions:
    """How a :class:`~runtime.serve.Predictor` serves; ``None`` means the default.

    Attributes:
        time_limit_s: The notebook's limit, counted from ``start_time`` (None: no overall limit).
        start_time: Epoch seconds when the notebook started (``time.time()`` in its first cell); None: now.
        response_timeout_s: The competition's per-call deadline (``set_response_timeout_seconds``); None:
            none. The first call has none whatever this says.
        expected_rows: How many rows the hidden test has, when the competition says (the sample
            submission's rows, a stated test size): the notebook's time is paced over the rows left.
        expected_batches: How many batches the hidden run sends, when the competition says: without
            ``expected_rows``, the rows to come are the batches left times the rows per batch so far.
            Neither: each call may take up to its response deadline, and the notebook's end.
        arguments: Names of ``predict``'s positional arguments, in order (``("test", "lags")``); more
            arguments than names are called ``arg2``, ``arg3``...
        table: The argument holding the rows to predict (default: the first).
        sample: The argument holding the sample-submission slice, where the gateway passes one: its ids
            and values are the rows' fallback.
        output: ``pandas``, ``polars``, or ``auto`` (the table's own library).
        include_id: The answer starts with the id column (where the table has it).
        scalar: Answer a single value (a one-row batch with one target), not a frame.
        margin_s: Kept before each response deadline (None: 0.25 s + 5 % of it, and twice the slowest
            overhead a call measured outside the members).
        fallback: A value per target column for rows nothing else covers (default: the sample slice's,
            else 0.0 for numbers and the first class for labels).
        report_path: The per-call report, JSON lines appended as the run goes (None:
            ``serve_report.jsonl`` in the working folder); a summary is kept beside it.
        backend: Inference backend (None: the default chain).
        threads: CPU threads per session (None: the backend's choice).
    """

    time_limit_s: float | None = None
    start_time: float | None = None
    response_timeout_s: float | None = None
    expected_rows: int | None = None
    expected_batches: int | None = None
    arguments: tuple[str, ...] = ()
    table: str = ""
    sample: str = ""
    output: str = "auto"
    include_id: bool = True
    scalar: bool = False
    margin_s: float | None = None
    fallback: Mapping[str, float | str] = field(default_factory=dict)
    report_path: Path | None = None
    backend: str | None = None
    threads: int | None = None

    def __post_init__(self) -> None:
        """Raises UsageError naming the option, what was given and what is accepted."""
        for name in ("time_limit_s", "response_timeout_s"):
            value = getattr(self, name)
            if value is not None and (not _number(value) or value <= 0):
                raise UsageError(f"{name} {value!r}: expected a positive number of seconds (or None: none)")
        if self.margin_s is not None and (not _number(self.margin_s) or self.margin_s < 0):
            raise UsageError(f"margin_s {self.margin_s!r}: expected seconds >= 0 (or None: measured)")
        for name in ("expected_rows", "expected_batches", "threads"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise UsageError(f"{name} {value!r}: expected a positive whole number (or None)")
        if self.output not in SERVE_OUTPUTS:
            raise UsageError(f"output {self.output!r}: expected one of {', '.join(SERVE_OUTPUTS)}")
        object.__setattr__(self, "arguments", tuple(self.arguments))
        names = [*self.arguments]
        if len(set(names)) != len(names) or not all(isinstance(n, str) and n.isidentifier() for n in names):
            raise UsageError(f"arguments {self.arguments!r}: expected distinct Python names, e.g. ('test', 'lags')")
        for name in ("table", "sample"):
            value = getattr(self, name)
            if value and value not in names:
                raise UsageError(f"{name} {value!r} is not one of predict's arguments {list(names)}")

    @classmethod
    def from_spec(cls, spec: ServeSpec, **overrides: Any) -> ServeOptions:  # each option checked in __post_init__
        """The options a bundle's ``[serve]`` spec gives (:class:`runtime.manifest.ServeSpec`), with ``overrides``
        (the notebook's start time and limit, a report path...)."""
        given: dict[str, Any] = dict(arguments=spec.arguments, table=spec.table, sample=spec.sample,
                     response_timeout_s=spec.response_timeout_s, expected_rows=spec.expected_rows or None,
                     expected_batches=spec.expected_batches or None, output=spec.output, include_id=spec.include_id,
                     scalar=spec.scalar, fallback=dict(spec.fallback))
        return cls(**{**given, **overrides})

    def argument_name(self, position: int) -> str:
        """The name of positional argument ``position`` (``arg<position>`` past the named ones)."""
        return self.arguments[position] if position < len(self.arguments) else f"arg{position}"


def _number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


__all__ = ["ServeOptions"]
