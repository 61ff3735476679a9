"""The public test cut into the competition's batches, and each batch's arguments for ``predict``.

As Kaggle's gateways do, the files are read with polars, so ``predict`` gets
polars frames. A batch is every row of one ``batch_by`` value (a date, a
play, a sequence), in file order, or ``batch_rows`` rows; in random order the
values (or the rows, before they are cut) are shuffled with the spec's seed.
Each argument is, in the spec's order: the test's rows of the batch; the
sample submission's rows of the same ids, in the batch's order; or another
public file's rows of the batch's ``batch_by`` value (of its ids where there
is no ``batch_by``; an empty frame of its columns where it has neither).
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packager.offline.gateway.errors import ErrorType, GatewayError
from packager.offline.gateway.spec import GatewaySpec


@dataclass(frozen=True)
class Batch:
    """One call's rows: positions in the test table, in the order sent."""

    index: int
    key: str  # what the batch is: "date_id=3", "rows 200-299"
    value: Any  # the batch_by value (None without batch_by)
    rows: tuple[int, ...]


def _read(path: Path) -> Any:
    import polars as pl

    if not path.exists():
        raise GatewayError(ErrorType.GATEWAY_RAISED_EXCEPTION, f"the public file {path} does not exist")
    return pl.read_parquet(path) if path.suffix in (".parquet", ".pq") else pl.read_csv(path)


def _positions(column: list) -> dict[Any, list[int]]:
    """Each value of a column -> its row positions, in file order (the values in order of first appearance)."""
    out: dict[Any, list[int]] = defaultdict(list)
    for k, v in enumerate(column):
        out[v].append(k)
    return out


class PublicData:
    """The public files of one rehearsal and the batches cut from them.

    Raises:
        GatewayError: ``GATEWAY_RAISED_EXCEPTION`` for public data the batches cannot be cut from (a missing
            file or column, test ids the sample submission lacks): the rehearsal's input, not the notebook.
    """

    def __init__(self, spec: GatewaySpec):
        self.spec = spec
        self.test = _read(spec.path(spec.test))
        self.ids = self.test[spec.id_column].to_list() if spec.id_column in self.test.columns else None
        if spec.batch_by and spec.batch_by not in self.test.columns:
            raise GatewayError(ErrorType.GATEWAY_RAISED_EXCEPTION, f"batch_by {spec.batch_by!r} is not a column of "
                                                                   f"{spec.test} ({', '.join(self.test.columns[:12])})")
        self.sample, self.sample_rows = None, {}
        if spec.sample_argument:
            self.sample = _read(spec.path(spec.sample))
            self.sample_rows = self._sample_rows()
        self.files = {arg: _read(spec.path(name)) for arg, name in spec.files}
        self._groups = _positions(self.test[spec.batch_by].to_list()) if spec.batch_by else {}
        self._file_rows = {arg: self._file_index(frame) for arg, frame in self.files.items()}

    def _sample_rows(self) -> dict[str, int]:
        spec = self.spec
        assert self.sample is not None, "read before its rows are matched"
        if self.ids is None or spec.id_column not in self.sample.columns:
            raise GatewayError(ErrorType.GATEWAY_RAISED_EXCEPTION,
                               f"the sample slice is matched by id, but {spec.test if self.ids is None else spec.sample} "
                               f"has no column {spec.id_column!r}")
        rows = {str(i): k for k, i in enumerate(self.sample[spec.id_column].to_list())}
        missing = [i for i in self.ids if str(i) not in rows]
        if missing:
            raise GatewayError(ErrorType.GATEWAY_RAISED_EXCEPTION,
                               f"{len(missing)} id(s) of {spec.test} are not in {spec.sample} (e.g. {missing[0]!r}): "
                               "the gateway cannot slice the sample submission for them")
        return rows

    def _file_index(self, frame: Any) -> dict[Any, list[int]] | None:
        """How a file is cut: by the batch_by value, else by id; None: it has neither (an empty frame each call)."""
        spec = self.spec
        key = spec.batch_by if spec.batch_by else spec.id_column
        if not key or key not in frame.columns:
            return None
        column = frame[key].to_list()
        return _positions(column if spec.batch_by else [str(v) for v in column])

    def batches(self) -> list[Batch]:
        """Every batch, in the order the gateway sends them."""
        spec = self.spec
        shuffle = random.Random(spec.seed).shuffle if spec.order == "random" else (lambda _x: None)
        if spec.batch_by:
            values = list(self._groups)
            shuffle(values)
            return [Batch(k, f"{spec.batch_by}={v}", v, tuple(self._groups[v])) for k, v in enumerate(values)]
        rows = list(range(len(self.test)))
        shuffle(rows)
        n = spec.batch_rows
        out = []
        for k, start in enumerate(range(0, len(rows), n)):
            part = rows[start:start + n]
            key = f"row {part[0]}" if len(part) == 1 else (
                f"rows {part[0]}-{part[-1]}" if part == list(range(part[0], part[-1] + 1)) else
                f"rows {part[0]},{part[1]}{',...' * (len(part) > 2)}")
            out.append(Batch(k, key, None, tuple(part)))
        return out

    def expected_ids(self, batch: Batch) -> list | None:
        """The ids an answer must hold, in order (None: the test has no id column)."""
        return None if self.ids is None else [self.ids[k] for k in batch.rows]

    def arguments(self, batch: Batch) -> tuple:
        """``predict``'s positional arguments for ``batch``."""
        spec = self.spec
        rows = list(batch.rows)
        out = []
        for name in spec.arguments:
            if name == spec.table:
                out.append(self.test[rows])
            elif name == spec.sample_argument:
                ids = self.expected_ids(batch)
                assert self.sample is not None and ids is not None, "_sample_rows read the sample, by the test's ids"
                out.append(self.sample[[self.sample_rows[str(i)] for i in ids]])
            else:
                out.append(self._file_part(name, batch))
        return tuple(out)

    def _file_part(self, name: str, batch: Batch) -> Any:
        frame, index = self.files[name], self._file_rows[name]
        if index is None:
            return frame.clear()
        if self.spec.batch_by:
            return frame[index.get(batch.value, [])]
        ids = self.expected_ids(batch)
        if ids is None:
            raise GatewayError(ErrorType.GATEWAY_RAISED_EXCEPTION,
                               f"the {name} slice is matched by id, but {self.spec.test} has no column "
                               f"{self.spec.id_column!r}")
        return frame[[k for i in ids for k in index.get(str(i), [])]]


__all__ = ["Batch", "PublicData"]
