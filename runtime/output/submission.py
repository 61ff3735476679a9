"""The sample submission, id matching, and atomic writing of ``submission.csv``.

The sample submission fixes the columns and the row order. It is also the
fallback of last resort: a row no model covered gets the declared fallback's
value, or else the sample's own, so the file on disk is always complete.
"""

from __future__ import annotations

import contextlib
import csv
import gc
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence, cast

import numpy as np

from runtime.data.testdata import read_table
from runtime.errors import DataError
from runtime.fileio import atomic_write
from runtime.manifest import SubmissionSpec


@dataclass(frozen=True)
class SampleSubmission:
    ids: list[str]
    header: list[str]
    rows: dict[str, tuple[str, ...]]  # id -> the non-id cells, exactly as written


def read_sample(path: Path, spec: SubmissionSpec) -> SampleSubmission:
    """Read a submission-shaped CSV (sample or fallback) and check its columns.

    Every cell is kept as the string written. A CSV is read row by row with the
    csv module (a million-row sample through a pandas frame of strings left
    ~90 MB more resident than the ids and cells it yields); Parquet through pandas.
    """
    if not path.is_file():
        raise DataError(f"sample submission {path} not found (expected {spec.sample} in the data folder)")
    expected = [spec.id_column, *spec.columns]
    if path.suffix.lower() in (".parquet", ".pq"):
        df = read_table(path, id_column=spec.id_column, text=True)
        header = _checked_header(path, [str(c) for c in df.columns], expected)
        ids: list[str] = df[spec.id_column].tolist()
        cells = zip(*(df[c].tolist() for c in spec.columns))
        rows: dict[str, tuple[str, ...]] = dict(zip(ids, cells))
        if len(rows) != len(ids):
            _refuse_duplicates(path, ids, lambda n: f"row {n}")
        return SampleSubmission(ids=ids, header=header, rows=rows)
    ids = []
    rows = {}
    lines: list[int] = []  # each id's line, for a duplicate's message
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = _checked_header(path, next(reader, []), expected)
            width = len(header)
            for record in reader:
                if len(record) != width:
                    if not record or record == [""]:
                        continue  # a blank line, as pandas skips it
                    raise DataError(f"{path.name} line {reader.line_num}: {len(record)} field(s), expected {width} "
                                    f"({', '.join(header)})")
                ids.append(record[0])
                rows[record[0]] = tuple(record[1:])
                lines.append(reader.line_num)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"could not read {path}: {exc}") from exc
    if len(rows) != len(ids):
        _refuse_duplicates(path, ids, lambda n: f"line {lines[n]}")
    return SampleSubmission(ids=ids, header=header, rows=rows)


def _refuse_duplicates(path: Path, ids: Sequence[str], where) -> None:
    """DataError naming the ids listed more than once and where (a submission has one row per id)."""
    first: dict[str, int] = {}
    repeats = []
    for n, rid in enumerate(ids):
        if rid in first:
            repeats.append(f"{rid!r} ({where(first[rid])} and {where(n)})")
        else:
            first[rid] = n
    raise DataError(
        f"{path.name} lists {len(repeats)} id(s) more than once: {', '.join(repeats[:3])}"
        f"{' ...' if len(repeats) > 3 else ''}. Expected one row per id, as the submission has; "
        "check the file (a duplicated row would be scored twice or refused by Kaggle)")


def _checked_header(path: Path, header: list[str], expected: list[str]) -> list[str]:
    if header != expected:
        raise DataError(f"{path.name} has columns {header}; the bundle was packaged for {expected}")
    return header


def match_ids(sample: SampleSubmission, test_ids: Sequence[str], *, sample_name: str = "sample_submission.csv") -> np.ndarray:
    """Index into the test rows for each sample row, in sample order; DataError on mismatch."""
    if len(sample.ids) == len(test_ids) and sample.ids == list(test_ids):
        # The usual case, the sample in the test table's order: no index of a million ids to build and drop.
        return np.arange(len(test_ids), dtype=np.int64)
    position = {i: n for n, i in enumerate(test_ids)}
    in_sample = set(sample.ids)
    extra = [i for i in sample.ids if i not in position]
    missing = [i for i in test_ids if i not in in_sample]
    if extra or missing:
        parts = []
        if extra:
            parts.append(f"{len(extra)} id(s) of {sample_name} are not in the test data (e.g. {', '.join(extra[:3])})")
        if missing:
            parts.append(f"{len(missing)} test id(s) are not in {sample_name} (e.g. {', '.join(missing[:3])})")
        raise DataError("; ".join(parts) + ". The sample submission and the test data must list the same ids.")
    return np.fromiter((position[i] for i in sample.ids), dtype=np.int64, count=len(sample.ids))


@contextlib.contextmanager
def gc_paused():
    """Suspend the cyclic garbage collector (restoring its state after).

    Formatting a submission builds a small list per row; on the large heap of
    a run (test table, model sessions) each allocation burst triggers full
    collections that cost several times the formatting itself (measured:
    a 54,000-row write 264-336 ms with it, 12-74 ms without). The lists hold
    no cycles, so nothing is lost by collecting later.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def format_rows(
    values: np.ndarray, covered: np.ndarray, order: np.ndarray, test_ids: Sequence[str],
    spec: SubmissionSpec, fallback: SampleSubmission,
) -> list[list[str]]:
    """Submission rows (id first) in sample order; uncovered rows come from ``fallback``."""
    vals = np.nan_to_num(values[order])  # uncovered rows are NaN; they are replaced below
    with gc_paused():
        if spec.mode == "argmax":
            cells = np.asarray(spec.classes, dtype=object)[np.argmax(vals, axis=1)][:, None].tolist()
        else:
            cells = np.char.mod("%.9g", vals).tolist()
        ids = [test_ids[i] for i in order]
        return [[rid, *c] if ok else [rid, *fallback.rows[rid]] for rid, c, ok in zip(ids, cells, covered[order].tolist())]


def write_atomic(path: str | os.PathLike, header: Sequence[str],
                 rows: Iterable[Sequence[str]] | Iterable[Iterable[Sequence[str]]], *, blocks: bool = False) -> None:
    """Write a CSV so that ``path`` is at every moment absent, the old file, or the complete new file.

    ``rows`` may be a generator; with ``blocks``, it yields lists of rows (as
    :meth:`runtime.output.formats.Formatter.blocks` does), each written as it comes, so
    the whole submission is never held as text.
    """
    def write(f) -> None:
        text = io.TextIOWrapper(f, encoding="utf-8", newline="", write_through=False)
        text.write(csv_text([header]))
        for part in (rows if blocks else (rows,)):
            text.write(csv_text(cast("Iterable[Sequence[str]]", part)))  # with blocks, a part is a block of rows
        text.flush()
        text.detach()  # leave the binary file to atomic_write, which syncs and closes it

    atomic_write(path, write, what="the submission",
                 remedy="Give --out a path in a writable folder on a disk with room, or free some space there.")


def csv_text(rows: Iterable[Sequence[str]]) -> str:
    """Rows as CSV text, ``\n``-terminated, with every field a reader would split quoted.

    The csv module quotes a field holding the delimiter, the quote or a character
    of the line terminator, so with ``\n`` lines a bare carriage return (an id
    such as ``"cr\rret"``) goes out unquoted, and every CSV reader then splits the
    row there (Python 3.11 and 3.12 alike). The rare rows holding one are written
    again with a ``\r\n`` terminator, which makes the csv module quote the CR
    too, and given back their ``\n``.
    """
    rows = rows if isinstance(rows, list) else list(rows)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    out = buf.getvalue()
    if "\r" not in out:  # one C-level scan of the block: the usual case costs nothing more
        return out
    buf, crlf = io.StringIO(), io.StringIO()
    plain, quoting = csv.writer(buf, lineterminator="\n"), csv.writer(crlf, lineterminator="\r\n")
    for row in rows:
        if any("\r" in str(cell) for cell in row):
            crlf.seek(0)
            crlf.truncate()
            quoting.writerow(row)
            buf.write(crlf.getvalue()[:-2] + "\n")
        else:
            plain.writerow(row)
    return buf.getvalue()


__all__ = ["SampleSubmission", "csv_text", "format_rows", "match_ids", "read_sample", "write_atomic"]
