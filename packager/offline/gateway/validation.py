"""Each answer checked before the next batch is sent, as Kaggle's gateways check it; the first failure ends the run.

An answer must be (each failure is ``INVALID_SUBMISSION``, naming the batch):

* something: ``None`` is "No prediction received";
* of the kind the competition takes: a pandas or polars DataFrame (or Series)
  of the batch's rows, or, with ``scalar``, one value for a one-row batch; a
  frame where one value is expected, or the reverse, or any other type
  (a list, a dict, an array) is refused;
* the batch's row count;
* exactly the expected columns: the id column (where the answer carries ids)
  and the target columns, none missing, none extra;
* the batch's ids, in the batch's order, in its id column;
* values in every target: no nulls (nor NaN), and finite numbers where the
  targets are numbers.

What passes becomes the submission's rows: a polars frame with the id column
first, the batch's ids written there (as Kaggle's gateways since 0.7 do).
"""

from __future__ import annotations

import math
from typing import Any

from packager.offline.gateway.batches import Batch
from packager.offline.gateway.errors import invalid
from packager.offline.gateway.spec import GatewaySpec


def _kind(x: Any) -> str:
    module, name = type(x).__module__.split(".")[0], type(x).__name__
    return f"{module}.{name}" if module in ("pandas", "polars") and name in ("DataFrame", "Series") else ""


def _scalar(x: Any) -> bool:
    import numpy as np

    return isinstance(x, (int, float, str, bool)) or (isinstance(x, np.generic) and x.ndim == 0)


def check_answer(answer: Any, batch: Batch, ids: list | None, spec: GatewaySpec) -> Any:
    """The answer as the submission's rows (a polars frame, the id column first).

    Raises:
        GatewayError: ``INVALID_SUBMISSION`` naming the batch and what is wrong.
    """
    import polars as pl

    n = len(batch.rows)
    where = f"batch {batch.index} ({batch.key}, {n} row{'s' * (n != 1)})"
    if answer is None:
        raise invalid(f"No prediction received for {where}")
    kind = _kind(answer)
    if spec.scalar:
        frame = _from_scalar(answer, kind, n, where, spec)
    elif not kind:
        if _scalar(answer):
            raise invalid(f"{where}: expected a DataFrame of {n} rows (columns {', '.join(_expected(spec, ids))}), "
                          f"got a single value {answer!r}")
        raise invalid(f"Invalid prediction data type {type(answer).__module__}.{type(answer).__name__} for {where}: "
                      "expected a pandas or polars DataFrame")
    else:
        frame = _frame(answer, kind, spec)
        _check_frame(frame, n, ids, where, spec)
    _check_values(frame, where, spec)
    out = frame.select(list(spec.targets))
    if spec.id_column and ids is not None:
        out = out.insert_column(0, pl.Series(spec.id_column, ids))
    return out


def _expected(spec: GatewaySpec, ids: list | None) -> list[str]:
    return [*([spec.id_column] if spec.include_id and ids is not None else []), *spec.targets]


def _from_scalar(answer: Any, kind: str, n: int, where: str, spec: GatewaySpec) -> Any:
    import polars as pl

    if kind:
        raise invalid(f"{where}: expected a single value (the competition's answer is one value per batch), "
                      f"got a {kind}")
    if not _scalar(answer):
        raise invalid(f"Invalid prediction data type {type(answer).__module__}.{type(answer).__name__} for {where}: "
                      "expected a single value (a number or a label)")
    if n != 1:
        raise invalid(f"{where}: a single value answers one row, and the batch has {n}")
    return pl.DataFrame({spec.targets[0]: [answer.item() if hasattr(answer, "item") else answer]})


def _frame(answer: Any, kind: str, spec: GatewaySpec) -> Any:
    """The answer as a polars DataFrame (a Series is a frame of one column: its name, else the target's)."""
    import polars as pl

    if kind == "pandas.DataFrame":
        return pl.from_pandas(answer)
    if kind == "pandas.Series":
        answer = pl.from_pandas(answer)
    if _kind(answer) == "polars.Series":
        name = answer.name or spec.targets[0]
        return answer.rename(name).to_frame()
    return answer


def _check_frame(frame: Any, n: int, ids: list | None, where: str, spec: GatewaySpec) -> None:
    if frame.height != n:
        raise invalid(f"Invalid predictions for {where}: expected {n} rows but received {frame.height}")
    expected = _expected(spec, ids)
    missing = [c for c in expected if c not in frame.columns]
    extra = [c for c in frame.columns if c not in expected]
    if missing or extra:
        said = [f"missing column(s) {', '.join(map(repr, missing))}" if missing else "",
                f"unexpected column(s) {', '.join(map(repr, extra))}" if extra else ""]
        raise invalid(f"Prediction for {where} has {'; '.join(filter(None, said))}: expected exactly the columns "
                      f"{', '.join(expected)}")
    if spec.include_id and ids is not None:
        got = frame[spec.id_column].to_list()
        if got != ids:
            at = next(k for k, (a, b) in enumerate(zip(got, ids)) if a != b)
            raise invalid(f"Invalid values for {spec.id_column} in {where}: row {at} has {got[at]!r}, expected "
                          f"{ids[at]!r} (the batch's ids, in the batch's order)")


def _check_values(frame: Any, where: str, spec: GatewaySpec) -> None:
    for col in spec.targets:
        series = frame[col]
        nulls = series.is_null()
        if series.dtype.is_float():
            nulls = nulls | series.is_nan()
        if nulls.any():
            at = nulls.to_list().index(True)
            raise invalid(f"Submission contains null values: {where}, column {col!r}, row {at}")
        if not spec.numeric:
            continue
        if not series.dtype.is_numeric():
            raise invalid(f"{where}: column {col!r} holds {series.dtype}, expected numbers")
        bad = [k for k, v in enumerate(series.cast(float).to_list()) if not math.isfinite(v)]
        if bad:
            raise invalid(f"{where}: column {col!r} holds a value that is not finite at row {bad[0]} "
                          f"({series[bad[0]]!r})")


__all__ = ["check_answer"]
