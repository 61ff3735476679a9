"""Reading a test table in pieces: Parquet by row groups, CSV in blocks, or a frame already in memory.

A :class:`TableSource` serves rows ``[start, stop)`` of some columns as a
pandas DataFrame; only the id column (and an image index's file column) is
ever read whole. So the memory a run needs does not grow with the number of
rows beyond the ids and the predictions: at most one Parquet row group, or
one CSV block (:data:`CSV_BLOCK_ROWS` rows), is held at a time.

* Parquet: the row groups overlapping the request are read with pyarrow
  (``ParquetFile.read_row_groups``), the last ones kept for the next,
  usually adjacent, request. A file written as one huge row group is read
  whole, once: the bound is the row group.
* CSV: read forward in blocks with ``pandas.read_csv(chunksize=...)``; a
  request before the current block starts the file again (each member reads
  the table once, in row order).

The id column is text, exactly as written, so the submission reproduces the
ids byte for byte: no spelling of it is a missing value (``NA``, ``null``,
``None``, ``NaN`` and the empty string are ids like any other; the other
columns keep pandas' missing-value spellings, :func:`csv_read_options`), and a
null id in a Parquet file, which no CSV can spell, is refused (:func:`text_ids`). On a GPU target with cuDF installed, the
pandas calls go through cudf.pandas (:func:`table_pandas`); unverified on a GPU.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Iterator, Sequence

from runtime.errors import DataError
from runtime.settings import env_flag

#: Rows per block when reading a CSV file forward.
CSV_BLOCK_ROWS = 65536
_PARQUET = (".parquet", ".pq")

_CUDF_STATE: dict[str, bool] = {}


def table_pandas(gpu: bool = False):
    """pandas, accelerated by cudf.pandas on a GPU target with a GPU (``gpu``); ``NINEFIT_CUDF=1|0`` forces it.

    cudf.pandas runs the same pandas calls on the GPU and falls back to pandas
    (with a warning, silenced here) where there is none; without cuDF
    installed this is plain pandas. Unverified on a GPU.
    """
    import os

    use_cudf = env_flag("NINEFIT_CUDF") if os.environ.get("NINEFIT_CUDF", "").strip() else gpu
    if use_cudf and "installed" not in _CUDF_STATE:
        import warnings

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # it warns and falls back to pandas without a GPU
                import cudf.pandas

                cudf.pandas.install()
            _CUDF_STATE["installed"] = True
        except ImportError:
            _CUDF_STATE["installed"] = False
    import pandas

    return pandas


def table_engine() -> str:
    """``"cudf.pandas"`` when it was installed for this process, else ``"pandas"``."""
    return "cudf.pandas" if _CUDF_STATE.get("installed") else "pandas"


class TableSource:
    """Rows of one test table, read in pieces; subclasses know the format.

    Attributes:
        path: The file (None for a frame in memory).
        columns: Every column name, in file order.
    """

    path: Path | None = None
    columns: list[str]

    def ids(self) -> list[str]:
        """The id column, whole, as the strings written in the file."""
        raise NotImplementedError

    def column(self, name: str) -> list:
        """One column, whole (the id column, an image index's file column)."""
        raise NotImplementedError

    def read(self, start: int, stop: int, columns: Sequence[str] | None = None):
        """Rows ``[start, stop)`` of ``columns`` (default: all) as a DataFrame indexed from 0."""
        raise NotImplementedError

    def blocks(self, columns: Sequence[str] | None = None) -> Iterator[tuple[int, object]]:
        """``(first row, DataFrame)`` for the whole table, in row order, one bounded block at a time."""
        raise NotImplementedError

    def close(self) -> None:
        """Release open files (a CSV reader part-way through the file)."""

    def whole(self):
        """The whole table in memory (text members, tools): the unbounded path, said so by its name."""
        parts = [frame for _, frame in self.blocks()]
        pd = table_pandas()
        return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


class FrameSource(TableSource):
    """A DataFrame already in memory (tests, the packager's samples)."""

    def __init__(self, frame, id_column: str | None = None):
        self.frame = frame
        self.columns = [str(c) for c in frame.columns]
        self.id_column = id_column

    def ids(self) -> list[str]:
        return [str(x) for x in self.frame[self.id_column].tolist()]

    def column(self, name: str) -> list:
        return self.frame[name].tolist()

    def read(self, start: int, stop: int, columns: Sequence[str] | None = None):
        part = self.frame.iloc[start:stop]
        return (part if columns is None else part.loc[:, list(columns)]).reset_index(drop=True)

    def blocks(self, columns: Sequence[str] | None = None):
        yield 0, self.frame if columns is None else self.frame.loc[:, list(columns)]

    def whole(self):
        return self.frame


#: pandas' default missing-value spellings (its documented ``na_values`` list): every column but the id keeps them.
NA_STRINGS = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>",
              "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null")


def csv_read_options(columns: Sequence[str], id_column: str | None, text: bool) -> dict:
    """``pandas.read_csv`` options: the id column (every column, with ``text``) as the strings written.

    pandas reads ``NA``, ``null``, ``None``, ``NaN`` and an empty cell as missing in
    every column unless told otherwise, and an id spelled so would then be refused
    or written back as ``nan``; the other columns keep those spellings as missing
    values (features are numbers).
    """
    if text:
        return {"dtype": str, "keep_default_na": False}
    if not id_column:
        return {"keep_default_na": True}
    return {"dtype": {id_column: str}, "keep_default_na": False,
            "na_values": {c: list(NA_STRINGS) for c in columns if c != id_column}}


def text_ids(values: Sequence, path: Path | None, column: str) -> list[str]:
    """A file's id column as text; DataError naming the rows where a Parquet id is null (no text to write)."""
    nulls = [n for n, v in enumerate(values) if v is None or (isinstance(v, float) and v != v)]
    if nulls:
        where = path.name if path is not None else "the table"
        raise DataError(
            f"{where}: {len(nulls)} id(s) in column {column!r} are null (rows {', '.join(map(str, nulls[:5]))}"
            f"{' ...' if len(nulls) > 5 else ''}); each row needs an id, written as text in the submission. "
            "Expected a string (or integer) id on every row")
    return [v if isinstance(v, str) else str(v) for v in values]


def _fix_ids(frame, id_column: str | None, text: bool):
    if text:
        return frame.astype(str)
    if id_column and id_column in frame.columns:
        frame[id_column] = frame[id_column].astype(str)
    return frame


class ParquetSource(TableSource):
    """A Parquet file, read by row groups."""

    def __init__(self, path: Path, id_column: str | None = None, text: bool = False, gpu: bool = False):
        import pyarrow.parquet as pq

        self.path, self.id_column, self.text, self.gpu = path, id_column, text, gpu
        try:
            self._file = pq.ParquetFile(path)
        except Exception as exc:
            raise DataError(f"could not read {path}: {exc}") from exc
        meta = self._file.metadata
        self.columns = [c for c in self._file.schema_arrow.names if not c.startswith("__index_level_")]
        self._starts = [0]
        for i in range(meta.num_row_groups):
            self._starts.append(self._starts[-1] + meta.row_group(i).num_rows)
        self.n_rows = self._starts[-1]
        self._lock = threading.Lock()
        self._cached: tuple[tuple[int, ...], tuple[str, ...] | None, Any] | None = None  # (groups, columns, frame)

    def _to_pandas(self, table):
        import pyarrow as pa

        table_pandas(self.gpu)
        frame = _fix_ids(table.to_pandas(), self.id_column, self.text)
        del table
        # Arrow's allocator (mimalloc) keeps freed pages; measured: without this, reading 16 row groups
        # left 110 MB more resident than reading 2. Handing them back keeps memory flat in the row count.
        pa.default_memory_pool().release_unused()
        return frame

    def column(self, name: str) -> list:
        import pyarrow as pa

        try:
            table = self._file.read(columns=[name])
        except Exception as exc:
            raise DataError(f"could not read column {name!r} of {self.path}: {exc}") from exc
        values = table.column(0).to_pylist()
        del table
        pa.default_memory_pool().release_unused()
        return values

    def ids(self) -> list[str]:
        if self.id_column is None:
            raise DataError(f"{self.path}: its ids cannot be read: no id column was named")
        return text_ids(self.column(self.id_column), self.path, self.id_column)

    def _groups(self, start: int, stop: int) -> tuple[int, ...]:
        import bisect

        first = max(0, bisect.bisect_right(self._starts, start) - 1)
        last = max(first, bisect.bisect_left(self._starts, stop) - 1)
        return tuple(range(first, min(last, len(self._starts) - 2) + 1))

    def read(self, start: int, stop: int, columns: Sequence[str] | None = None):
        groups = self._groups(start, stop)
        key = tuple(columns) if columns is not None else None
        with self._lock:  # prefetch threads share the row-group cache
            cached = self._cached
            if cached is None or cached[1] != key or not set(groups) <= set(cached[0]):
                try:
                    table = self._file.read_row_groups(list(groups), columns=list(columns) if columns is not None else None,
                                                      use_pandas_metadata=False)
                except Exception as exc:
                    raise DataError(f"could not read rows {start}-{stop} of {self.path}: {exc}") from exc
                cached = self._cached = (groups, key, self._to_pandas(table))
        first = self._starts[cached[0][0]]
        return cached[2].iloc[start - first:stop - first].reset_index(drop=True)

    def blocks(self, columns: Sequence[str] | None = None):
        for i in range(len(self._starts) - 1):
            table = self._file.read_row_group(i, columns=list(columns) if columns is not None else None,
                                              use_pandas_metadata=False)
            yield self._starts[i], self._to_pandas(table)


#: Readers a CSV keeps open at once, each at its own place in the file (lanes read different members' rows).
CSV_CURSORS = 4


class CsvSource(TableSource):
    """A CSV file, read forward in blocks of :data:`CSV_BLOCK_ROWS` rows.

    Up to :data:`CSV_CURSORS` readers are kept, each where it last read: a
    request goes to the one closest behind its first row (a new one, or the
    one furthest back reopened from the top, when none is behind it), so lanes
    reading different places (different members, or one member's chunks
    split) each read forward instead of restarting the file on every turn.
    """

    def __init__(self, path: Path, id_column: str | None = None, text: bool = False, gpu: bool = False,
                 block_rows: int = CSV_BLOCK_ROWS):
        self.path, self.id_column, self.text, self.gpu, self.block_rows = path, id_column, text, gpu, block_rows
        pd = table_pandas(gpu)
        try:
            self.columns = [str(c) for c in pd.read_csv(path, nrows=0).columns]
        except Exception as exc:
            raise DataError(f"could not read {path}: {exc}") from exc
        self._lock = threading.Lock()
        self._reader: Any = None  # a pandas (or cuDF) chunked CSV reader
        self._block: tuple[int, Any] | None = None  # (first row, frame) of the current block
        self._parked: list[tuple[Any, tuple[int, Any]]] = []  # the other cursors: (reader, block)

    def _open(self, columns: Sequence[str] | None = None, block_rows: int | None = None):
        pd = table_pandas(self.gpu)
        kwargs: dict = {"chunksize": block_rows or self.block_rows}
        if columns is not None:
            kwargs["usecols"] = list(columns)
        kwargs.update(csv_read_options(self.columns, self.id_column, self.text))
        try:
            return pd.read_csv(self.path, **kwargs)
        except Exception as exc:
            raise DataError(f"could not read {self.path}: {exc}") from exc

    def column(self, name: str) -> list:
        out: list = []
        for _, frame in self.blocks([name]):
            out.extend(frame[name].tolist())
        return out

    def ids(self) -> list[str]:
        if self.id_column is None:
            raise DataError(f"{self.path}: its ids cannot be read: no id column was named")
        return [str(x) for x in self.column(self.id_column)]

    def _next_block(self):
        first = 0 if self._block is None else self._block[0] + len(self._block[1])
        try:
            frame = next(self._reader)
        except StopIteration:
            self._drop_current()  # this cursor is at the end; the others stay where they are
            return None
        except Exception as exc:
            raise DataError(f"could not read {self.path} from row {first}: {exc}") from exc
        self._block = (first, frame.reset_index(drop=True))
        return self._block

    def read(self, start: int, stop: int, columns: Sequence[str] | None = None):
        pd = table_pandas(self.gpu)
        parts = []
        with self._lock:
            self._pick(start)
            if self._reader is None or self._block is None or start < self._block[0]:
                self._drop_current()
                self._reader, self._block = self._open(), None  # from the top: a new member, or a resume
                if self._next_block() is None:
                    return self._empty(columns)
            pos = start
            while pos < stop:
                assert self._block is not None, "a block is current: each read above returned one"
                first, frame = self._block
                if pos >= first + len(frame):
                    if self._next_block() is None:
                        break
                    continue
                part = frame.iloc[pos - first:stop - first]
                parts.append(part if columns is None else part.loc[:, list(columns)])
                pos = first + len(frame)
        if not parts:
            return self._empty(columns)
        out = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].reset_index(drop=True)
        return out

    def _pick(self, start: int) -> None:
        """Make current the cursor closest behind ``start`` (parking the current one while there is room)."""
        cursors = ([(self._reader, self._block)] if self._reader is not None and self._block is not None else [])
        cursors += self._parked
        behind = [c for c in cursors if c[1][0] <= start]
        if behind:
            chosen = max(behind, key=lambda c: c[1][0])
        elif len(cursors) < CSV_CURSORS:
            chosen = None  # a new reader from the top, the others kept
        else:
            chosen = min(cursors, key=lambda c: c[1][0])  # the one furthest back: reopened from the top
        rest = [c for c in cursors if c is not chosen]
        if chosen is None or len(rest) >= CSV_CURSORS:
            rest.sort(key=lambda c: c[1][0])
            while len(rest) > (CSV_CURSORS - 1):
                reader, _ = rest.pop(0)
                reader.close()
        self._parked = rest
        self._reader, self._block = chosen if chosen is not None else (None, None)

    def _drop_current(self) -> None:
        reader, self._reader, self._block = self._reader, None, None
        if reader is not None:
            reader.close()

    def close(self) -> None:
        self._drop_current()
        parked, self._parked = getattr(self, "_parked", []), []
        for reader, _ in parked:
            reader.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def _empty(self, columns):
        pd = table_pandas(self.gpu)
        return pd.DataFrame(columns=list(columns) if columns is not None else self.columns)

    def blocks(self, columns: Sequence[str] | None = None):
        first = 0
        with self._open(columns) as reader:
            for frame in reader:
                yield first, frame.reset_index(drop=True)
                first += len(frame)


def open_table(path: Path, *, id_column: str | None = None, text: bool = False, gpu: bool = False) -> TableSource:
    """The source for a .csv or .parquet file (DataError if it is missing or unreadable)."""
    if not path.is_file():
        raise DataError(f"test data file {path} not found (expected a .csv or .parquet file)")
    if path.suffix.lower() in _PARQUET:
        source: TableSource = ParquetSource(path, id_column, text, gpu)
    else:
        source = CsvSource(path, id_column, text, gpu)
    if id_column and id_column not in source.columns:
        raise DataError(
            f"{path.name} has no id column {id_column!r}; its columns are: {', '.join(map(str, source.columns[:20]))}"
        )
    return source


__all__ = ["CSV_BLOCK_ROWS", "NA_STRINGS", "CsvSource", "FrameSource", "ParquetSource", "TableSource",
           "csv_read_options", "open_table", "table_engine", "table_pandas", "text_ids"]
