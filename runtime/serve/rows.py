"""A batch's rows as the members read them: the lean path for the small tables the evaluation API sends.

A file run's :class:`runtime.data.testdata.TestData` is built for a table of
millions of rows (read in pieces, scanned once, spooled to disk). A call of
the gateway holds a few rows to a few thousand, and every millisecond of its
overhead counts against the response deadline, so :class:`BatchRows` gives
a member's table inputs straight from the batch's own columns (polars or
pandas, no conversion of the whole frame), with the same missing-value
policies: rows with a non-finite input are skipped (left to the other members
and the fallback), filled, or refused. Text and image members take the
file run's path (:meth:`BatchRows.full`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from runtime.data.testdata import TestData
from runtime.data.text import TextRows
from runtime.errors import DataError
from runtime.manifest import DataSpec, InputSpec, Member

_NUMERIC_KINDS = "biuf"


class BatchRows:
    """The rows of one batch, for :func:`runtime.execute.predict.predict_rows` (what it reads of a test).

    Args:
        table: The batch's table, a pandas or polars DataFrame.
        ids: The rows' ids, as text.
        spec: The bundle's data spec (id column, missing-value policy).
        assets: The bundle root (a text member's tokenizer).
        pandas: The table as pandas, when it is already (the features hook made it).
    """

    def __init__(self, table: Any, ids: Sequence[str], spec: DataSpec, assets: Path, pandas: Any = None):
        self.table, self.ids, self.spec, self.assets = table, list(ids), spec, assets
        self._pandas = pandas
        self._polars = type(table).__module__.split(".")[0] == "polars" and pandas is None
        self._matrices: dict[tuple[str, ...], np.ndarray] = {}
        self._full: TestData | None = None

    @property
    def n_rows(self) -> int:
        return len(self.ids)

    @property
    def columns(self) -> list[str]:
        return list(self.table.columns if self._pandas is None else self._pandas.columns)

    def full(self) -> TestData:
        """The batch as a file run's test data (text and image members): pandas, in memory."""
        if self._full is None:
            frame = self._pandas if self._pandas is not None else (
                self.table.to_pandas() if self._polars else self.table)
            self._full = TestData(self.ids, frame.reset_index(drop=True), self.spec, Path.cwd(), self.assets)
        return self._full

    def matrix(self, columns: tuple[str, ...]) -> np.ndarray:
        """The columns as one float64 array (computed once per column set)."""
        if columns not in self._matrices:
            if self._polars:
                m = self.table.select(list(columns)).to_numpy()
            else:
                m = (self._pandas if self._pandas is not None else self.table).loc[:, list(columns)].to_numpy()
            self._matrices[columns] = np.asarray(m, dtype=np.float64)
        return self._matrices[columns]

    def check(self, member: Member) -> None:
        """DataError when the batch lacks a column the member reads, or holds one it cannot take as numbers."""
        if member.text is not None or any(inp.image is not None for inp in member.inputs):
            self.full().check(member)
            return
        have = set(self.columns)
        for inp in member.inputs:
            missing = [c for c in inp.columns if c not in have]
            if missing:
                raise DataError(f"the batch lacks {len(missing)} column(s) that model {member.name!r} input "
                                f"{inp.name!r} needs: {', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}")
            try:
                self.matrix(inp.columns)
            except (TypeError, ValueError) as exc:
                raise DataError(f"columns of model {member.name!r} input {inp.name!r} are not numbers in this batch "
                                f"({exc}); expected numbers convertible to {inp.dtype}") from None
        policy = member.missing_policy(self.spec)[0]
        bad = self.nonfinite(member)
        if policy == "error" and bad is not None:
            raise DataError(f"{int(bad.sum())} row(s) of the batch have non-finite inputs for model {member.name!r}, "
                            'whose policy is missing = "error"')

    def nonfinite(self, member: Member) -> np.ndarray | None:
        """Rows where any table input of ``member`` has a non-finite value; None when none has."""
        bad = None
        for inp in member.inputs:
            rows = ~np.isfinite(self.matrix(inp.columns)).all(axis=1)
            if rows.any():
                bad = rows if bad is None else bad | rows
        return bad

    def skipped(self, member: Member, start: int, stop: int) -> np.ndarray | None:
        """Rows of ``[start, stop)`` the member's predictions are dropped for (policy "skip"); None if none."""
        if member.text is not None or any(inp.image is not None for inp in member.inputs):
            return self.full().skipped(member, start, stop)
        bad = self.nonfinite(member)
        if bad is None or member.missing_policy(self.spec)[0] != "skip":
            return None
        part = bad[start:stop]
        return part if part.any() else None

    def feed(self, member: Member, start: int, stop: int, *,
             image_size: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
        """Model inputs for rows ``[start, stop)`` (non-finite values filled, or zeroed where skipped)."""
        if member.text is not None or any(inp.image is not None for inp in member.inputs):
            return self.full().feed(member, start, stop, image_size=image_size)
        policy, value = member.missing_policy(self.spec)
        fill = None if policy == "model" else value if policy == "fill" else 0.0  # "model": passed as they are
        return {inp.name: self._input(inp, start, stop, fill) for inp in member.inputs}

    def _input(self, inp: InputSpec, start: int, stop: int, fill: float | None) -> np.ndarray:
        m = self.matrix(inp.columns)[start:stop]
        if fill is not None and not np.isfinite(m).all():
            m = np.where(np.isfinite(m), m, fill)
        dims = tuple(d if isinstance(d, int) else -1 for d in inp.shape[1:])  # as a file run lays them out
        return np.array(m, dtype=inp.dtype).reshape((stop - start, *dims))

    def text_rows(self, member: Member) -> TextRows:
        return self.full().text_rows(member)


__all__ = ["BatchRows"]
