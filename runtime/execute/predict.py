"""One member's predictions for a span of rows: its runner called batch by batch, the outputs
activated and TTA-averaged (:func:`predict_rows`; a text member's windows: :func:`predict_windows`).

The executor (:mod:`runtime.execute.executor`) and the profile (``packager.estimate.measure.profile``) both call it,
so what is timed when packaging is what runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np

from runtime.backends.base import Runner
from runtime.data.testdata import apply_tta
from runtime.data.text import Chunk, TextRows
from runtime.errors import BackendError
from runtime.manifest import Member, Variant
from runtime.output.ensemble import activate


class RowSource(Protocol):
    """What :func:`predict_rows` reads of the test rows: a :class:`~runtime.data.testdata.TestData`, or one
    batch of a serving run (``runtime.serve.rows.BatchRows``)."""

    def feed(self, member: Member, start: int, stop: int, *,
             image_size: tuple[int, int] | None = None) -> dict[str, np.ndarray]: ...

    def skipped(self, member: Member, start: int, stop: int) -> np.ndarray | None: ...

    def text_rows(self, member: Member) -> TextRows: ...


def predict_rows(
    runner: Runner, member: Member, variant: Variant, test: RowSource, start: int, stop: int, batch_size: int = 0,
    feeds: Sequence[Mapping[str, np.ndarray]] | None = None,
) -> np.ndarray:
    """Activated predictions of one member for rows ``[start, stop)``, TTA-averaged.

    ``feeds``: those rows' inputs already prepared, one feed per transform of
    ``variant.tta`` (:class:`runtime.data.pipeline.FeedPipeline`); else read here.
    Rows the member skips (non-finite inputs under missing = "skip") are NaN.
    A text member runs the rows' windows in length-sorted batches of ``batch_size``
    windows (or its ``max_tokens``), each padded to its longest, reduced per row.
    ``feed``: the rows' inputs when already read (``test.feed(...)`` otherwise).
    """
    if member.text is not None:
        rows = test.text_rows(member)
        chunk, values = Chunk.of(rows, start, stop), None
        for pos, end in chunk.batches(batch_size or member.batch_size, member.text.max_tokens):
            idx = chunk.order[pos:end]
            out = predict_windows(runner, member, rows.feed(member.text, chunk.windows[idx]))
            values = np.empty((len(chunk.windows), out.shape[1]), out.dtype) if values is None else values
            values[idx] = out
        if values is None:
            raise ValueError(f"{member.name}: rows [{start}, {stop}) hold no text window to predict")
        return chunk.reduce(rows, values, member.text.reduce)
    if feeds is None:
        feed = test.feed(member, start, stop, image_size=variant.image_size)
        feeds = [apply_tta(feed, t, member) for t in variant.tta]
    total = None
    for f in feeds:
        values = _activated(runner, member, dict(f))
        total = values if total is None else total + values
    if total is None:
        raise ValueError(f"{member.name}: no inputs to predict rows [{start}, {stop}) on (no TTA transform)")
    total = total / len(variant.tta)
    skipped = test.skipped(member, start, stop)
    if skipped is not None and total.shape[:1] == skipped.shape:
        total[skipped] = np.nan
    return total


def nan_rows(values: np.ndarray) -> int:
    """Rows of a saved chunk that hold no prediction (all NaN)."""
    return int(np.isnan(values).all(axis=1).sum()) if values.ndim == 2 and values.shape[1] else 0


def _activated(runner: Runner, member: Member, feed: dict[str, np.ndarray]) -> np.ndarray:
    """The member's output for one batch, activated."""
    outputs = runner.infer(feed)
    if member.output not in outputs:
        raise BackendError(f"{member.name}: model has no output {member.output!r}; outputs: {', '.join(outputs)}")
    return activate(outputs[member.output], member.activation)


def predict_windows(runner: Runner, member: Member, feed: dict[str, np.ndarray]) -> np.ndarray:
    """Activated predictions of a text member for one padded batch of windows."""
    values = _activated(runner, member, feed)
    return values.reshape(len(values), -1)


__all__ = ["RowSource", "nan_rows", "predict_rows", "predict_windows"]
