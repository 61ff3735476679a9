"""The batches Kaggle's gateway sends a bundle that serves, as its ``[serve]`` table declares them.

How many rows each call brings, and how many calls, on the hidden test:

* ``batch_by`` (one batch per value of a test column): the public test's
  groups (read from ``data``: the data folder or the table), scaled so that a
  batch holds ``expected_rows / expected_batches`` rows on average where both
  are declared (the hidden groups may be larger than the public ones); their
  spread kept. Without the public test, where both are declared, every batch
  is priced at that mean.
* ``batch_rows`` (rows per batch): that many rows per batch, the last one the
  rest; where ``expected_rows`` and ``expected_batches`` are both declared they
  win (``batch_rows`` is the rehearsal's cut) and the rows are split evenly.

The hidden rows are ``rows`` (``ninefit estimate --rows``), else
``expected_rows``, else ``expected_batches`` times the rows per batch; the
number of batches ``expected_batches``, else the rows over the rows per batch.
Batch sizes are kept as (rows, how many); past :data:`MAX_SHAPES` distinct
sizes they are bucketed, each bucket at its largest size (a cautious price).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from runtime.errors import UsageError
from runtime.manifest import Manifest, ServeSpec

#: Distinct batch sizes priced at most: past this, sizes are bucketed (each bucket priced at its largest).
MAX_SHAPES = 40


@dataclass(frozen=True)
class Batches:
    """The hidden test's batches: ``shapes`` is (rows, batches of that many rows), fewest rows first."""

    shapes: tuple[tuple[int, int], ...]
    source: str  # where the sizes come from, in words
    notes: tuple[str, ...] = ()

    @property
    def rows(self) -> int:
        return sum(r * c for r, c in self.shapes)

    @property
    def count(self) -> int:
        return sum(c for _, c in self.shapes)

    @property
    def largest(self) -> int:
        return self.shapes[-1][0]

    @property
    def typical(self) -> int:
        """The rows of the middle batch (by batch, sizes in order): the first call is priced at it."""
        half, seen = (self.count + 1) // 2, 0
        for rows, count in self.shapes:
            seen += count
            if seen >= half:
                return rows
        return self.largest

    def describe(self) -> str:
        """``5,400 rows in 54 batches of 100 rows`` (or ``... of 12-310 rows, 108 on average``)."""
        sizes = f"{self.shapes[0][0]:,}" if len(self.shapes) == 1 else (
            f"{self.shapes[0][0]:,}-{self.largest:,} ({self.rows / self.count:,.0f} on average)")
        return (f"{self.rows:,} rows in {self.count:,} batch{'es' if self.count != 1 else ''} of {sizes} "
                f"row{'s' if self.largest != 1 else ''}")

    def to_dict(self) -> dict:
        return {"rows": self.rows, "batches": self.count, "source": self.source, "notes": list(self.notes),
                "shapes": [{"rows": r, "batches": c} for r, c in self.shapes]}


def declared_batches(serve: ServeSpec, manifest: Manifest, rows: int | None = None,
                     data: Path | None = None) -> Batches:
    """The hidden test's batches (see the module docstring).

    Args:
        serve: The bundle's ``[serve]`` spec.
        manifest: The bundle's manifest (the test table's name, for ``data``).
        rows: The hidden test's rows, where the caller knows them (overrides ``expected_rows``).
        data: The public test (its folder, or the table): read for ``batch_by``'s groups.

    Raises:
        UsageError: Nothing says how many rows the hidden test has; ``batch_by`` with neither the public
            test nor both expected counts; a table without the column; fewer rows than batches.
    """
    if rows is not None and rows < 1:
        raise UsageError(f"rows = {rows!r}: expected the hidden test's number of rows, at least 1")
    declared_rows = rows or serve.expected_rows or None
    declared_batches_ = serve.expected_batches or None
    both = declared_rows is not None and declared_batches_ is not None
    if serve.batch_by and data is not None:
        groups = _group_sizes(_table(data, manifest), serve.batch_by)
        public_mean = sum(groups) / len(groups)
        mean = (declared_rows / declared_batches_ if declared_rows is not None and declared_batches_ is not None
                else public_mean)  # (both)
        count = declared_batches_ or max(1, round(_need_rows(declared_rows, serve) / public_mean))
        scale = mean / public_mean
        source = (f"the public test's {len(groups):,} groups of {serve.batch_by} ({public_mean:,.1f} rows on average)"
                  + (f", scaled x{scale:.3g} to expected_rows / expected_batches" if both and scale != 1 else ""))
        return _bucketed(_spread(sorted(max(1, round(g * scale)) for g in groups), count), source)
    if serve.batch_by and not both:
        raise UsageError(f"[serve] batch_by = {serve.batch_by!r}: the estimate needs the public test to count its "
                         "rows per group (ninefit estimate --data DATA: the data folder or the test table), or "
                         "both expected_rows and expected_batches in [serve]")
    if declared_rows is not None and declared_batches_ is not None:  # (both)
        if declared_rows < declared_batches_:
            raise UsageError(f"{declared_rows:,} rows in expected_batches = {declared_batches_:,} batches: expected "
                             "at least one row per batch")
        q, r = divmod(declared_rows, declared_batches_)
        notes: tuple[str, ...] = ()
        if serve.batch_by:
            notes = (f"batch_by = {serve.batch_by!r}: the public test's groups were not read (no --data): every "
                     "batch is priced at expected_rows / expected_batches rows",)
        elif serve.batch_rows not in (q, q + 1):
            notes = (f"batch_rows = {serve.batch_rows} (the rehearsal's cut) differs from expected_rows / "
                     f"expected_batches = {declared_rows / declared_batches_:,.1f}: priced at the latter",)
        return _bucketed({q + 1: r, q: declared_batches_ - r}, "expected_rows / expected_batches", notes)
    per = serve.batch_rows
    total = declared_rows if declared_rows is not None else (declared_batches_ or 0) * per
    if not total:
        _need_rows(None, serve)
    full, rest = divmod(total, per)
    return _bucketed({per: full, rest: 1}, f"batch_rows = {per}")


def _need_rows(rows: int | None, serve: ServeSpec) -> int:
    if rows is None:
        raise UsageError("how many rows does the hidden test have? Give --rows (from the competition's data page), "
                         "or declare expected_rows (or expected_batches) in the spec's [serve] table")
    return rows


def _table(data: Path, manifest: Manifest) -> Path:
    path = Path(data)
    table = path if path.is_file() else path / manifest.data.test
    if not table.is_file():
        raise UsageError(f"--data {data}: no test table there (expected {table}, or the table itself)")
    return table


def _group_sizes(table: Path, column: str) -> list[int]:
    """Rows per value of ``column`` in the public test table (CSV or Parquet)."""
    import pandas as pd

    try:
        if table.suffix.lower() in (".parquet", ".pq"):
            values = pd.read_parquet(table, columns=[column])[column]
        else:
            values = pd.read_csv(table, usecols=[column])[column]
    except (KeyError, ValueError) as exc:
        raise UsageError(f"[serve] batch_by = {column!r} is not a column of {table} ({exc})") from None
    sizes = [int(n) for n in values.value_counts(dropna=False, sort=False).to_numpy()]
    if not sizes:
        raise UsageError(f"{table} has no rows: the public test cannot tell the rows per {column}")
    return sizes


def _spread(sizes: list[int], count: int) -> Counter:
    """``count`` batches whose sizes follow ``sizes`` (sorted): batch i takes the size at its quantile."""
    g = len(sizes)
    out: Counter = Counter()
    for j, size in enumerate(sizes):
        n = math.ceil((j + 1) * count / g) - math.ceil(j * count / g)
        if n:
            out[size] += n
    return out


def _bucketed(counts: dict[int, int], source: str, notes: tuple[str, ...] = ()) -> Batches:
    shapes = sorted((r, c) for r, c in counts.items() if r > 0 and c > 0)
    if len(shapes) > MAX_SHAPES:
        total = sum(c for _, c in shapes)
        buckets: list[tuple[int, int]] = []
        seen = 0
        for r, c in shapes:  # batches in order of size, cut into MAX_SHAPES runs of about equal count
            k = min(MAX_SHAPES - 1, seen * MAX_SHAPES // total)
            if len(buckets) <= k:
                buckets.append((r, c))
            else:
                buckets[-1] = (r, buckets[-1][1] + c)  # the bucket priced at its largest size
            seen += c
        notes = (*notes, f"{len(shapes)} distinct batch sizes priced as {len(buckets)}, each at its largest")
        shapes = buckets
    return Batches(tuple(shapes), source, notes)


__all__ = ["MAX_SHAPES", "Batches", "declared_batches"]
