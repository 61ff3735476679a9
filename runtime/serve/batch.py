"""One call of the gateway: its arguments read into rows to predict, and the answer built from what finished.

:func:`read_batch` names ``predict``'s arguments (:attr:`ServeOptions.arguments`),
takes the table to predict (a pandas or polars DataFrame; Series arguments of
one length, as AIMO's gateway sends a row's columns, become one frame) and the
sample-submission slice where the gateway passes one. :func:`answer` builds the
frame the gateway validates: the batch's rows in the batch's order, the id
column first (as the table has it), the submission's target columns, in the
table's library (or the one asked for), or a single value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from runtime.errors import NinefitError
from runtime.manifest import SubmissionSpec
from runtime.serve.options import ServeOptions


class ServeInputError(NinefitError):
    """A batch no answer can be made for (its table is not a frame at all): said with the batch."""


@dataclass
class Batch:
    """One call's input.

    Attributes:
        index: The call's number, from 0.
        table: The rows to predict, a pandas or polars DataFrame as the gateway sent it.
        library: ``pandas`` or ``polars``: what the table came as.
        inputs: Every other argument by name, as sent (for the features hook).
        sample: The sample-submission slice, where the gateway passed one.
    """

    index: int
    table: Any
    library: str
    inputs: dict[str, Any] = field(default_factory=dict)
    sample: Any = None
    _frame: Any = None

    @property
    def rows(self) -> int:
        return len(self.table)

    @property
    def frame(self) -> Any:
        """The table as pandas, with a fresh 0..n-1 index (converted once, when asked: the features hook)."""
        if self._frame is None:
            self._frame = (self.table.to_pandas() if self.library == "polars" else self.table).reset_index(drop=True)
        return self._frame

    def column(self, name: str) -> list:
        """One column of the table, as a list."""
        return self.table[name].to_list()


def _kind(x: Any) -> str:
    module = type(x).__module__.split(".")[0]
    name = type(x).__name__
    if module in ("pandas", "polars") and name in ("DataFrame", "Series"):
        return f"{module}.{name}"
    return ""


def _pandas(x: Any) -> Any:
    """A pandas DataFrame (or Series) for a polars one; pandas as it is; anything else unchanged."""
    kind = _kind(x)
    if kind.startswith("polars"):
        return x.to_pandas()
    return x


def read_batch(index: int, args: Sequence[Any], kwargs: Mapping[str, Any], options: ServeOptions) -> Batch:
    """Name the call's arguments and take the rows to predict.

    Raises:
        ServeInputError: The table argument is missing or not a DataFrame or Series (no answer can be made).
    """
    import pandas as pd

    named = {options.argument_name(k): a for k, a in enumerate(args)}
    named.update(kwargs)
    table_name = options.table or (options.arguments[0] if options.arguments else "arg0")
    if table_name not in named:
        raise ServeInputError(f"batch {index}: predict got no argument {table_name!r} (it got "
                              f"{', '.join(named) or 'none'}); expected the rows to predict there")
    table = named[table_name]
    kind = _kind(table)
    if not kind:
        raise ServeInputError(f"batch {index}: predict's argument {table_name!r} is a {type(table).__name__}; "
                              "expected a pandas or polars DataFrame (or Series) of the rows to predict")
    if kind.endswith("Series"):  # a row's columns, one Series each (AIMO): the Series of that length, one frame
        series = {n: _pandas(a) for n, a in named.items() if _kind(a).endswith("Series") and len(a) == len(table)}
        table, kind = pd.DataFrame({n: s.to_numpy() for n, s in series.items()}), "pandas.DataFrame"
    inputs = {n: a for n, a in named.items() if n != table_name}
    sample = inputs.get(options.sample) if options.sample else None
    return Batch(index, table, kind.split(".")[0], inputs, sample)


def fallback_cells(spec: SubmissionSpec, options: ServeOptions) -> list[Any]:
    """The value of each target column where nothing covers a row and the gateway gave no sample slice."""
    cells = []
    for _k, column in enumerate(spec.columns):
        if column in options.fallback:
            cells.append(options.fallback[column])
        elif spec.mode == "values":
            cells.append(0.0)
        else:
            cells.append(spec.classes[0] if spec.classes else "")
    return cells


def answer(batch: Batch, values: np.ndarray, covered: np.ndarray, spec: SubmissionSpec, options: ServeOptions,
           id_column: str, events: list[str] | None = None) -> Any:
    """The answer to the gateway, from the combined ``values`` where ``covered``, else the fallback.

    The rows are the batch's, in its order; where the gateway passed a sample slice with the id
    column, they are the slice's rows in the slice's order (what it validates against), each matched
    to the batch's row of the same id: an id of the slice the batch lacks takes the slice's values,
    a row of the batch the slice lacks is left out, and ``events`` says so.
    """
    import pandas as pd

    order, sample = _rows(batch, id_column, events)
    n = len(order)
    found = order >= 0
    covered = found & covered[np.maximum(order, 0)] if n else np.zeros(0, bool)
    values = values[np.maximum(order, 0)] if n else values[:0]
    columns: dict[str, Any] = {}
    if options.include_id and sample is not None and id_column in sample.columns:
        columns[id_column] = sample[id_column]
    elif options.include_id and id_column in batch.table.columns:
        columns[id_column] = batch.table[id_column]
    targets = _targets(spec, values, covered, n)
    fallback = fallback_cells(spec, options)
    for k, column in enumerate(spec.columns):
        if sample is not None and column in sample.columns:
            backup = sample[column].to_numpy()
        else:
            backup = np.full(n, fallback[k], dtype=object if isinstance(fallback[k], str) else np.float64)
        cells = targets[k]
        if sample is not None and column in sample.columns and spec.mode != "values":
            cells = _like(cells, backup)  # a label as the gateway's own slice holds it (an int class stays an int)
        columns[column] = np.where(covered, cells, backup) if n else cells
        if spec.mode == "values":
            columns[column] = columns[column].astype(np.float64)
    if options.scalar:
        value = columns[spec.columns[0]][0] if n else np.float64("nan")
        return np.float64(value) if spec.mode == "values" else str(value)
    if options.output == "polars" or (options.output == "auto" and batch.library == "polars"):
        import polars as pl

        return pl.DataFrame({k: (v if _kind(v) == "polars.Series" else
                                 pl.Series(k, v.to_numpy() if hasattr(v, "to_numpy") else v)) for k, v in columns.items()})
    return pd.DataFrame({k: v.to_numpy() if hasattr(v, "to_numpy") else v for k, v in columns.items()})


def _rows(batch: Batch, id_column: str, events: list[str] | None) -> tuple[np.ndarray, Any]:
    """The answer's rows as positions in the batch (-1: not in it), and the sample slice where it sets them."""
    sample = batch.sample if _kind(batch.sample).endswith("DataFrame") and len(batch.sample.columns) else None
    if sample is None or id_column not in sample.columns or id_column not in batch.table.columns:
        if sample is not None and len(sample) != batch.rows:
            sample = None  # a slice of another length, with no ids to match by: not a fallback for these rows
        return np.arange(batch.rows), sample
    table_ids = [str(i) for i in batch.column(id_column)]
    wanted = [str(i) for i in sample[id_column].to_list()]
    if table_ids == wanted:  # the usual case: the slice is the batch's rows, in its order
        return np.arange(batch.rows), sample
    position = {i: k for k, i in enumerate(table_ids)}
    order = np.fromiter((position.get(i, -1) for i in wanted), dtype=np.int64, count=len(wanted))
    missing = [i for i, k in zip(wanted, order) if k < 0]
    extra = set(position) - set(wanted)
    if events is not None and (missing or extra):
        parts = []
        if missing:
            parts.append(f"{len(missing)} id(s) of the sample slice are not in the batch (e.g. {missing[0]}): "
                         "they take the slice's values")
        if extra:
            parts.append(f"{len(extra)} row(s) of the batch are not in the sample slice (e.g. {sorted(extra)[0]}): "
                         "left out of the answer, as the gateway validates against the slice")
        events.append("; ".join(parts))
    return order, sample


def _like(cells: np.ndarray, sample: np.ndarray) -> np.ndarray:
    """``cells`` (labels as text) in the dtype of the sample slice's column, where every one converts."""
    if sample.dtype.kind in "iuf":
        try:
            return np.asarray([float(c) for c in cells]).astype(sample.dtype)
        except (TypeError, ValueError):
            return cells
    return cells


def _targets(spec: SubmissionSpec, values: np.ndarray, covered: np.ndarray, n: int) -> list[np.ndarray]:
    """One array per target column from the combined values (rows not covered hold anything)."""
    vals = np.nan_to_num(values[:n]) if n else np.zeros((0, max(len(spec.columns), 1)))
    if spec.mode == "values":
        return [vals[:, k].astype(np.float64) for k in range(len(spec.columns))]
    from runtime.output.formats import cells

    return [np.asarray(cells(spec, vals) if n else [], dtype=object)]


__all__ = ["Batch", "ServeInputError", "answer", "fallback_cells", "read_batch"]
