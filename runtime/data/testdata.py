"""Test data: a table of features (CSV / Parquet), a folder of images with an index, or text.

pandas (and, when asked, cudf.pandas) and PIL are imported lazily here so that
``import runtime`` needs numpy alone. Row ids are kept as strings, exactly as
written in the files, so the submission reproduces them byte for byte.

Non-finite input values (NaN, an empty cell, inf) follow each member's
missing-value policy (:meth:`runtime.manifest.Member.missing_policy`):
"skip" feeds those rows with zeros in place of the bad values and
:meth:`TestData.skipped` marks them, so the member's predictions for them are
dropped and the other members cover them; "fill" feeds ``fill_value``
instead; "error" stops the run (:meth:`TestData.check_missing`).
"""

from __future__ import annotations

import os
import shutil
import threading
import weakref
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from runtime.data.tables import FrameSource, TableSource, csv_read_options, open_table, table_pandas, text_ids
from runtime.data.text import TextRows, load_tokenizer, tokenize
from runtime.errors import DataError
from runtime.fileio import SCRATCH_REMEDY, full_write, guarded, scratch_dir, scratch_room
from runtime.manifest import DataSpec, InputSpec, Member

_NUMERIC_KINDS = "biuf"
#: Rows read at once for a table input, as one array (at most this many bytes, at least the chunk asked for):
#: the chunks of a member are then slices of it, without pandas' per-call work on every chunk
#: (measured on the 64-column digits table: 2.3 ms a chunk through pandas, five times the inference).
SPAN_BYTES = 16 << 20
_SPANS_KEPT = 2  # per column set: two lanes splitting one member's rows read neighbouring chunks


def _pandas():
    """pandas, accelerated by cudf.pandas when NINEFIT_CUDF=1 and a GPU is present."""
    return table_pandas()


def read_table(path: Path, *, id_column: str | None = None, text: bool = False):
    """Read a whole CSV or Parquet file into a DataFrame, with the id column as strings.

    With ``text``, every cell is read as the string written in the file (empty
    cells stay empty strings), as a submission-shaped file needs. The run reads
    the test table in pieces instead (:mod:`runtime.data.tables`); this is for
    small files (the sample submission) and tools.
    """
    pd = _pandas()
    if not path.is_file():
        raise DataError(f"test data file {path} not found (expected a .csv or .parquet file)")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            df = pd.read_parquet(path)
            if id_column and id_column in df.columns:
                df[id_column] = text_ids(df[id_column].tolist(), path, id_column)
            if text:
                df = df.astype(str)
        else:
            columns = [str(c) for c in pd.read_csv(path, nrows=0).columns]
            df = pd.read_csv(path, **csv_read_options(columns, id_column, text))
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"could not read {path}: {exc}") from exc
    if id_column and id_column not in df.columns:
        raise DataError(
            f"{path.name} has no id column {id_column!r}; its columns are: {', '.join(map(str, df.columns[:20]))}"
        )
    return df


def _dims(spec: InputSpec) -> tuple[int, ...]:
    return tuple(d if isinstance(d, int) else -1 for d in spec.shape[1:])


class _Scan:
    """What one pass over a column set found: rows with a non-finite value, counts per column, dtypes.

    With ``spool`` (a file path), the pass also writes the columns' values
    there, row after row, as one array of the table's dtype: the table is then
    parsed once per run, and every chunk of every member and lane reads its
    rows back with one ``pread`` (:meth:`read`) in place of re-parsing a CSV or
    re-reading a Parquet row group (the 3-member digits ensemble on a 216,000-
    row CSV parsed it 3 times on one lane, and spent 2.2 s reading on two).
    A column set whose blocks differ in dtype (an int column with a gap in one
    Parquet row group) is not spooled: it is read from the table as before.
    """

    def __init__(self, n_rows: int, columns: tuple[str, ...], spool: Path | None = None):
        self.n_rows = n_rows
        self.bad = np.zeros(n_rows, dtype=bool)
        self.counts = dict.fromkeys(columns, 0)
        self.kinds = dict.fromkeys(columns, "")  # a column's dtype kinds across blocks, e.g. "if"
        self.dtypes: dict[str, str] = {}
        self.width = len(columns)
        self.spool, self.spooled = spool, False
        self.spool_dtype: np.dtype | None = None
        with guarded(spool or ".", "the table spool", SCRATCH_REMEDY):
            self._fd = os.open(spool, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600) if spool is not None else None
        self._written = 0

    def _write(self, first: int, matrix: np.ndarray) -> None:
        if self._fd is None:
            return
        if self.spool_dtype is None:
            self.spool_dtype = matrix.dtype
        if matrix.dtype != self.spool_dtype or first != self._written or matrix.dtype.kind not in _NUMERIC_KINDS:
            self.drop()
            return
        data = np.ascontiguousarray(matrix).tobytes()
        assert self.spool is not None, "a spool file is open only where a spool path was given"
        with guarded(self.spool, "the table spool", SCRATCH_REMEDY):
            full_write(self._fd, data, first * self.width * matrix.dtype.itemsize)
        self._written += len(matrix)

    def finish(self) -> None:
        """The pass is over: the spool holds every row, or it is dropped."""
        if self._fd is not None and self._written == self.n_rows:
            self.spooled = True
        else:
            self.drop()

    def drop(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self.spool is not None:
            self.spool.unlink(missing_ok=True)
        self.spooled = False

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)`` from the spool (read-only)."""
        assert self._fd is not None and self.spool_dtype is not None, "read only once spooled"
        size = self.width * self.spool_dtype.itemsize
        buf = os.pread(self._fd, (stop - start) * size, start * size)
        if len(buf) != (stop - start) * size:
            raise DataError(f"the table spool {self.spool} is short ({len(buf)} of {(stop - start) * size} bytes): "
                            "was it deleted?")
        return np.frombuffer(buf, dtype=self.spool_dtype).reshape(stop - start, self.width)

    def add(self, first: int, frame, columns: tuple[str, ...]) -> None:
        for c in columns:
            dtype = frame[c].dtype
            if dtype.kind not in self.kinds[c]:
                self.kinds[c] += dtype.kind
                self.dtypes.setdefault(c, str(dtype))
                if dtype.kind not in _NUMERIC_KINDS:
                    self.dtypes[c] = str(dtype)
        if not all(self.kinds[c] and set(self.kinds[c]) <= set(_NUMERIC_KINDS) for c in columns):
            self.drop()
            return
        matrix = frame.loc[:, list(columns)].to_numpy()
        self._write(first, matrix)
        if matrix.dtype.kind == "f" and matrix.size:
            finite = np.isfinite(matrix)
            self.bad[first:first + len(matrix)] = ~finite.all(axis=1)
            for c, n in zip(columns, (~finite).sum(axis=0).tolist()):
                self.counts[c] += int(n)


class TestData:
    """The rows to predict, in file order, and the features each model needs.

    The table is read in pieces (:class:`runtime.data.tables.TableSource`): only the
    ids (and an image index's file column) are held whole. :meth:`rows` gives
    one chunk's rows as a DataFrame; :attr:`frame` reads the whole table, for
    text members and tools that need it.

    Args:
        ids: Row ids, in file order.
        frame: The table in memory, or None to read it from ``source``.
        spec: The bundle's data spec.
        root: The data folder (images are under ``root / spec.image_dir``).
        assets: The bundle root: text members' tokenizer files are relative to it.
        source: Where rows are read from (default: ``frame``).
    """

    features = None  # runtime.hooks.FeaturesResult when the bundle's features hook ran on the table

    def __init__(self, ids: Sequence[str], frame, spec: DataSpec, root: Path, assets: Path | None = None, *,
                 source: TableSource | None = None):
        self.ids = list(ids)
        self._frame = frame
        self.source = source if source is not None else FrameSource(frame, spec.id_column)
        self.spec = spec
        self.root = root
        self.assets = assets  # the bundle root: text members' tokenizer files are relative to it
        self._scans: dict[tuple[str, ...], _Scan] = {}
        self._text: dict[object, TextRows] = {}
        self._files: list | None = None  # an image index's file column, read whole once
        self._lock = threading.Lock()
        self._spans: dict[tuple[str, ...], list[tuple[int, int, np.ndarray]]] = {}
        self._spool_dir: str | None = None  # the table spool's folder (local disk), made at the first scan
        self._span_lock = threading.Lock()

    @property
    def n_rows(self) -> int:
        return len(self.ids)

    def close(self) -> None:
        """Release the table's open files and remove its spool."""
        self.source.close()
        for scan in self._scans.values():
            scan.drop()
        if self._spool_dir is not None:
            shutil.rmtree(self._spool_dir, ignore_errors=True)
            self._spool_dir = None

    @property
    def frame(self):
        """The whole table in memory, read on first use (text members, tools; a run reads :meth:`rows`)."""
        if self._frame is None:
            self._frame = self.source.whole()
        return self._frame

    def rows(self, start: int, stop: int, columns: Sequence[str] | None = None):
        """Rows ``[start, stop)`` (of ``columns``, default all) as a DataFrame indexed from 0."""
        return self.source.read(start, stop, columns)

    def image_files(self, start: int, stop: int) -> list[Path]:
        """The image files of rows ``[start, stop)``."""
        if self._files is None:
            self._files = self.source.column(self.spec.image_column)
        folder = self.root / self.spec.image_dir
        return [folder / str(rel) for rel in self._files[start:stop]]

    def _scan(self, columns: tuple[str, ...]) -> _Scan:
        """One pass over the table for ``columns`` (once per column set): non-finite rows, dtypes, and
        the values spooled to local disk where the table is a file (:class:`_Scan`)."""
        with self._lock:
            if columns not in self._scans:
                scan = _Scan(self.n_rows, columns, self._spool_path(columns))
                try:
                    for first, frame in self.source.blocks(list(columns)):
                        scan.add(first, frame, columns)
                except BaseException:
                    scan.drop()
                    raise
                scan.finish()
                self._scans[columns] = scan
            return self._scans[columns]

    def _spool_path(self, columns: tuple[str, ...]) -> Path | None:
        """A file for the spool of ``columns``; None for a table in memory, or when local disk is short."""
        if isinstance(self.source, FrameSource) or not columns:
            return None
        if not scratch_room(self.n_rows * len(columns) * 8)[0]:
            return None
        try:
            if self._spool_dir is None:
                self._spool_dir = str(scratch_dir("table"))
                weakref.finalize(self, shutil.rmtree, self._spool_dir, True)
        except OSError:
            return None
        return Path(self._spool_dir) / f"{len(self._scans)}.bin"

    @property
    def features_pending(self) -> bool:
        """The bundle has a features hook that has not run on this table yet (:meth:`run_features`)."""
        return bool(self.spec.features) and self.features is None

    def run_features(self, time_left: Callable[[], float | None] | None = None) -> None:
        """Run the bundle's features hook over the table and add its columns (:func:`runtime.hooks.apply_features`).

        The table is read whole for it (a chunk follows ``features_group``, whose
        groups may span any rows) and stays in memory: the unbounded path.
        ``time_left``: seconds the hook may still take; a call still running then is abandoned.
        """
        from runtime.hooks import HOOKS_DIR, apply_features

        frame = self.source.whole()
        self.source.close()
        spec = self.spec
        self.features = apply_features(frame, spec.features, Path(self.assets or ".") / HOOKS_DIR,
                                       group=spec.features_group, ids=self.ids, columns=spec.features_columns,
                                       time_left=time_left)
        self._frame = self.features.frame
        self.source = FrameSource(self._frame, spec.id_column)

    def check(self, member: Member) -> None:
        """Raise DataError if the data lacks a column the member needs, or has the wrong dtype.

        A text member's rows are tokenised here (once per text spec), so any text
        they cannot take is said before anything runs. While the features hook has
        not run (:attr:`features_pending`), its declared columns count as present
        and are not scanned: check again after it ran.
        """
        if member.text is not None:
            self.text_rows(member)
            return
        have = set(self.source.columns)
        pending = {c for c, _ in self.spec.features_columns} if self.features_pending else set()
        for inp in member.inputs:
            if inp.image is not None:
                continue
            missing = [c for c in inp.columns if c not in have | pending]
            if missing:
                raise DataError(
                    f"test data is missing {len(missing)} column(s) that model {member.name!r} input {inp.name!r} needs: "
                    f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''} "
                    f"(expected {len(inp.columns)} feature columns, as in the spec)"
                )
            if pending & set(inp.columns):
                continue
            scan = self._scan(inp.columns)
            bad = [f"{c} ({scan.dtypes.get(c, '?')})" for c in inp.columns
                   if not scan.kinds[c] or not set(scan.kinds[c]) <= set(_NUMERIC_KINDS)]
            if bad and self.n_rows:
                raise DataError(
                    f"test data column(s) {', '.join(bad[:5])} for model {member.name!r} are not numeric; "
                    f"expected numbers convertible to {inp.dtype}"
                )

    def feed(self, member: Member, start: int, stop: int, *, image_size: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
        """Model inputs for rows ``[start, stop)``, keyed by ONNX input name.

        Non-finite values are replaced: by the fill value under ``missing =
        "fill"``, else by zeros (the rows :meth:`skipped` marks).
        A text member gets the windows of those rows, in row order, padded to the longest.
        """
        if member.text is not None:
            rows = self.text_rows(member)
            return rows.feed(member.text, np.arange(rows.first[start], rows.first[stop]))
        out = {}
        for inp in member.inputs:
            if inp.image is not None:
                out[inp.name] = self._images(inp, start, stop, image_size)
            else:
                out[inp.name] = self.table_input(member, inp, start, stop)
        return out

    def table_matrix(self, start: int, stop: int, columns: Sequence[str]) -> np.ndarray:
        """Rows ``[start, stop)`` of ``columns`` as one array (a view: copy before writing to it).

        Read a span of up to :data:`SPAN_BYTES` at a time and kept (:data:`_SPANS_KEPT` spans per
        column set), so consecutive chunks are slices of one read.
        """
        key = tuple(columns)
        scan = self._scan(key)
        if scan.spooled:
            return scan.read(start, stop)
        with self._span_lock:
            for first, last, matrix in self._spans.get(key, ()):
                if first <= start and stop <= last:
                    return matrix[start - first:stop - first]
            last = min(self.n_rows, max(stop, start + SPAN_BYTES // (8 * max(1, len(key)))))
            matrix = self.rows(start, last, key).loc[:, list(key)].to_numpy()
            self._spans[key] = [(start, last, matrix), *self._spans.get(key, [])][:_SPANS_KEPT]
            return matrix[:stop - start]

    def table_input(self, member: Member, inp: InputSpec, start: int, stop: int,
                    matrix: np.ndarray | None = None) -> np.ndarray:
        """One table input of ``member`` for rows ``[start, stop)`` (from ``matrix``, those rows of the
        input's columns, if given), as a new array of the input's dtype."""
        if matrix is None:
            matrix = self.table_matrix(start, stop, inp.columns)
        bad = self._bad_rows(inp.columns)
        if bad is not None and bad[start:stop].any():
            policy, fill = member.missing_policy(self.spec)
            if policy != "model":  # "model": the member's own handling of missing values (tree ensembles)
                matrix = np.where(np.isfinite(matrix), matrix, fill if policy == "fill" else 0)
        return np.array(matrix, dtype=inp.dtype).reshape((stop - start, *_dims(inp)))

    def text_rows(self, member: Member) -> TextRows:
        """The token windows of every row for a text member (tokenised on first use)."""
        spec = member.text
        if spec is None:
            raise ValueError(f"{member.name} is not a text member: it has no token windows")
        if spec not in self._text:
            path = (self.assets or Path(".")) / spec.tokenizer
            tokenizer = load_tokenizer(path, spec)
            if self._frame is not None:
                self._text[spec] = tokenize(spec, tokenizer, self._frame, self.ids)
            else:  # a block at a time: the text is never held whole, only its tokens
                have = list(self.source.columns)
                blocks = self.source.blocks([c for c in spec.columns if c in have]) \
                    if all(c in have for c in spec.columns) else []
                self._text[spec] = tokenize(spec, tokenizer, blocks, self.ids, columns=have)
        return self._text[spec]

    def _bad_rows(self, columns: tuple[str, ...]) -> np.ndarray | None:
        """Rows with a non-finite value in ``columns``; None when there are none (the common case)."""
        bad = self._scan(columns).bad
        return bad if bad.any() else None

    def nonfinite(self, member: Member) -> np.ndarray | None:
        """Rows where any table input of ``member`` has a non-finite value; None when none has."""
        bad = None
        for inp in member.inputs:
            rows = self._bad_rows(inp.columns) if inp.image is None else None
            if rows is not None:
                bad = rows if bad is None else bad | rows
        return bad

    def skipped(self, member: Member, start: int, stop: int) -> np.ndarray | None:
        """Rows of ``[start, stop)`` the member's predictions are dropped for (policy "skip"); None if none."""
        bad = self.nonfinite(member)
        if bad is None or member.missing_policy(self.spec)[0] != "skip":
            return None
        part = bad[start:stop]
        return part if part.any() else None

    def missing_columns(self, member: Member) -> dict[str, int]:
        """Column -> number of rows with a non-finite value, for the member's columns that have any."""
        counts: dict[str, int] = {}
        for inp in member.inputs:
            if inp.image is None and self._bad_rows(inp.columns) is not None:
                for column, n in self._scan(inp.columns).counts.items():
                    if n:
                        counts[column] = int(n)
        return counts

    def check_missing(self, member: Member) -> None:
        """Raise DataError when the member's policy is "error" and its inputs have non-finite values."""
        if member.missing_policy(self.spec)[0] != "error":
            return
        bad = self.nonfinite(member)
        if bad is None:
            return
        rows = np.flatnonzero(bad)
        columns = self.missing_columns(member)
        shown = ", ".join(f"{c} ({n} row{'s' if n > 1 else ''})" for c, n in list(columns.items())[:10])
        ids = ", ".join(str(self.ids[i]) for i in rows[:8])
        raise DataError(
            f"test data has non-finite values (NaN, empty or inf) in {len(rows)} of {self.n_rows} row(s) for model "
            f"{member.name!r}, in column(s) {shown}{' ...' if len(columns) > 10 else ''}; rows (ids) "
            f"{ids}{' ...' if len(rows) > 8 else ''}. The policy is missing = \"error\"; set missing = \"skip\" "
            "to leave those rows to the other members (or the fallback), or missing = \"fill\" with a fill_value, "
            "in [data] or in this [[model]]."
        )

    def _images(self, inp: InputSpec, start: int, stop: int, size: tuple[int, int] | None) -> np.ndarray:
        """Rows ``[start, stop)`` of an image input, decoded here (no prefetch: :mod:`runtime.data.pipeline` does that)."""
        from runtime.data.loaders import image_loader

        paths = self.image_files(start, stop)
        if image_loader() == "dali":  # NINEFIT_LOADER=dali: decode and resize with NVIDIA DALI, on the GPU if any
            from runtime.data.loaders.dali import load_images

            return load_images(self, paths, inp, size)
        from runtime.data.loaders.pil import decode, form, normalise

        assert inp.image is not None, "called for image inputs only"
        want = form(inp.image, size)
        pixels = np.empty((stop - start, want[1], want[2], inp.image.channels), dtype=np.uint8)
        for i, path in enumerate(paths):
            pixels[i] = decode(path, (want,), where=self.where(start + i))[want]
        return normalise(pixels, inp.image, inp.dtype)

    def where(self, row: int) -> str:
        """A row named for a message: its number and its id."""
        return f"row {row}, id {self.ids[row]}" if 0 <= row < self.n_rows else f"row {row}"


def apply_tta(feed: dict[str, np.ndarray], transform: str, member: Member) -> dict[str, np.ndarray]:
    """Apply one test-time-augmentation transform to the image inputs of a feed."""
    if transform == "none":
        return feed
    out = dict(feed)
    for inp in member.inputs:
        if inp.image is None:
            continue
        w_axis = -1 if inp.image.layout == "NCHW" else -2
        axis = w_axis if transform == "hflip" else w_axis - 1
        out[inp.name] = np.ascontiguousarray(np.flip(feed[inp.name], axis=axis))
    return out


def open_test_data(data_dir: str | os.PathLike, spec: DataSpec, assets: str | os.PathLike | None = None, *,
                   gpu: bool = False, defer_features: bool = False) -> TestData:
    """Open the test data named by ``spec`` inside ``data_dir`` (a folder, or the table file itself).

    Only the id column is read here; rows are read per chunk. ``assets`` is
    the bundle root, where text members find their tokenizer. ``gpu``: the
    bundle targets a GPU, so the table's pandas calls go through cudf.pandas
    where cuDF is installed (:func:`runtime.data.tables.table_pandas`). The
    features hook runs here unless ``defer_features`` (a run calls
    :meth:`TestData.run_features` once its fallback submission is on disk).
    """
    root = Path(data_dir)
    path = root if root.is_file() else root / spec.test
    if root.is_file():
        root = root.parent
    elif not root.is_dir():
        raise DataError(f"--data {root} does not exist (expected the competition's data folder holding {spec.test})")
    # Text from a CSV is read as written: an empty cell is an empty string, never NaN.
    as_text = spec.format == "text" and path.suffix.lower() not in (".parquet", ".pq")
    source = open_table(path, id_column=spec.id_column, text=as_text, gpu=gpu)
    try:
        ids = source.ids()
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"could not read the id column {spec.id_column!r} of {path}: {exc}") from exc
    if not ids:
        raise DataError(
            f"the test table has no rows: {path} holds a header ({len(source.columns)} column(s)) and no data. "
            "Expected at least one row to predict; check that the file is the competition's test table."
        )
    if len(set(ids)) != len(ids):
        raise DataError(f"{path.name}: id column {spec.id_column!r} has duplicate ids; each row needs a unique id")
    if spec.format == "images":
        if spec.image_column not in source.columns:
            raise DataError(f"{path.name} has no image column {spec.image_column!r}; its columns: {', '.join(map(str, source.columns))}")
        from runtime.data.loaders import image_loader

        image_loader()  # a bad NINEFIT_LOADER stops the run here, before any model runs
    data = TestData(ids, None, spec, root, Path(assets) if assets is not None else None, source=source)
    if spec.features and not defer_features:
        data.run_features()
    return data


__all__ = ["TestData", "apply_tta", "open_test_data", "read_table"]
