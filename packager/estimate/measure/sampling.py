"""Rows to measure on: the public test data, tiled, or synthetic rows; and reading them.

:func:`write_synthetic_data` writes a test table (and images) plus a sample
submission of random rows of the declared input shapes, for bundles profiled
without their data. :func:`tile_data` repeats a small public table with fresh
ids, so batches larger than the public test can be measured and reading can
be timed at two sizes; :func:`measure_data` fits that read time as fixed +
per row through the runtime's own read path (``runtime.data.testdata.open_test_data``,
``runtime.output.submission.read_sample`` and ``match_ids``, the member checks and
the first feed, which converts the table to an array once).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from runtime.data.testdata import TestData, open_test_data, read_table
from runtime.errors import DataError
from runtime.manifest import DataSpec, Manifest, SubmissionSpec
from runtime.output.formats import match
from runtime.output.submission import read_sample
from runtime.profile import DataRead

SYNTHETIC_ROWS = 256
_SYNTHETIC_IMAGES = 32
_TILE_MIN, _TILE_MAX = 20000, 20000  # rows of the tiled table (also bounded by _TILE_BYTES): the read is
# fitted out from it (4,320 digits rows read 1.3e-6 s a row; 100,000 rows took about twice that)
_TILE_BYTES = 64 << 20


def fit_line(points: list[tuple[int, float]]) -> tuple[float, float]:
    """(fixed, per_row) of a line through the first and last point, both >= 0."""
    (n0, t0), (n1, t1) = points[0], points[-1]
    if n1 == n0:
        return 0.0, t1 / max(n1, 1)
    per_row = max((t1 - t0) / (n1 - n0), 0.0)
    fixed = max(t0 - per_row * n0, 0.0)
    if fixed == 0.0:
        per_row = t1 / n1
    return fixed, per_row


def _random_column(rng: np.random.Generator, dtype: str, n: int) -> np.ndarray:
    if dtype.startswith(("int", "uint")):
        return rng.integers(0, 2, n)  # 0/1: a valid index for any embedding table
    if dtype == "bool":
        return rng.integers(0, 2, n).astype(bool)
    return rng.standard_normal(n).astype(np.float32)


def write_synthetic_data(manifest: Manifest, folder: Path, rows: int = SYNTHETIC_ROWS) -> Path:
    """Write a test table (and images) plus a sample submission of ``rows`` random rows.

    Values are standard normal for float inputs and 0/1 for integer inputs
    (valid token ids for any vocabulary); images are random RGB/grey PNGs.

    Returns:
        The data folder, laid out as ``manifest.data`` expects.

    Raises:
        DataError: An input has symbolic non-batch dims, or PIL is missing for images.
    """
    import pandas as pd

    spec = manifest.data
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    ids = [f"s{i:07d}" for i in range(rows)]
    columns: dict[str, np.ndarray] = {spec.id_column: np.asarray(ids)}
    for member in manifest.members:
        for inp in member.inputs:
            if inp.image is not None:
                continue
            if not inp.columns:
                raise DataError(f"model {member.name!r} input {inp.name!r} lists no columns; "
                                "synthetic rows need the column names: give the public test data (--data)")
            for col in inp.columns:
                columns.setdefault(col, _random_column(rng, inp.dtype, rows))
    if spec.format == "images":
        images = [i.image for m in manifest.members for i in m.inputs if i.image is not None]
        _write_images(folder / spec.image_dir, images, rng)
        columns[spec.image_column] = np.asarray([f"img{i % _SYNTHETIC_IMAGES}.png" for i in range(rows)])
    frame = pd.DataFrame(columns)
    test = folder / spec.test
    if test.suffix.lower() in (".parquet", ".pq"):
        frame.to_parquet(test, index=False)
    else:
        frame.to_csv(test, index=False)
    sub = manifest.submission
    first = sub.classes[0] if sub.mode == "argmax" and sub.classes else "0"
    pd.DataFrame({sub.id_column: ids, **{c: first for c in sub.columns}}).to_csv(folder / sub.sample, index=False)
    return folder


def _write_images(folder: Path, images, rng: np.random.Generator) -> None:
    try:
        from PIL import Image
    except ImportError as exc:
        raise DataError("synthetic image rows need Pillow (pip install pillow), or give the public "
                        "test data with --data") from exc
    folder.mkdir(parents=True, exist_ok=True)
    h = max(i.size[0] for i in images)
    w = max(i.size[1] for i in images)
    rgb = any(i.channels == 3 for i in images)
    for k in range(_SYNTHETIC_IMAGES):
        arr = rng.integers(0, 256, (h, w, 3) if rgb else (h, w), dtype=np.uint8)
        Image.fromarray(arr).save(folder / f"img{k}.png")


def _table_and_folder(data: Path, spec: DataSpec) -> tuple[Path, Path]:
    """The test table and the folder holding it (and the sample submission and images).

    ``data`` is the data folder or the table file itself, as ``runtime.data.testdata.open_test_data`` takes it.
    """
    return (data, data.parent) if data.is_file() else (data / spec.test, data)


def tile_data(data: Path, spec: DataSpec, sample_name: str, id_column: str, rows: int, dest: Path,
              submission: SubmissionSpec | None = None) -> Path:
    """Copy the test table and sample submission, repeated with fresh ids to ``rows`` rows.

    Args:
        data: The data folder, or the test table itself (its folder then holds
            the sample submission and the images).
        spec: The bundle's data section.
        sample_name: The sample submission's file name.
        id_column: The sample submission's id column.
        rows: Rows of the tiled table.
        dest: Folder to write ``spec.test`` and ``sample_name`` into.
        submission: The bundle's submission spec: with ``long``, the tiled
            sample holds the formed id of each tiled test id and target; with
            ``postprocess`` (whose hook names its rows) the sample's rows are
            repeated with the tiled ids' suffixes. None: one sample row per test id.

    Returns:
        ``dest``. Image paths of the tiled index are absolute, into the
        original image folder, so the images are read where they are.

    Raises:
        DataError: A test id is not in the sample submission.
    """
    import pandas as pd

    table, folder = _table_and_folder(data, spec)
    frame = read_table(table, id_column=spec.id_column)
    sample = read_table(folder / sample_name, id_column=id_column)
    if spec.format == "images":
        images = (folder / spec.image_dir).resolve()
        frame[spec.image_column] = [str(images / str(rel)) for rel in frame[spec.image_column]]
    reps = math.ceil(rows / len(frame))
    tiled = pd.concat([frame] * reps, ignore_index=True).iloc[:rows].copy()
    new_ids = [f"{i}~{k}" for k in range(reps) for i in frame[spec.id_column]][:rows]
    tiled[spec.id_column] = new_ids
    mode = submission.mode if submission is not None else "values"
    if mode in ("long", "postprocess") and submission is not None:  # (mode is "values" without one)
        _tile_sample(sample, frame[spec.id_column].tolist(), new_ids, reps, submission, dest / sample_name)
        return _write_tiled(tiled, dest, spec)
    # The sample's row of each test id, in the test's order, so the tiled ids match the tiled table's.
    position = {i: n for n, i in enumerate(sample[id_column])}
    missing = [i for i in frame[spec.id_column] if i not in position]
    if missing:
        raise DataError(f"{len(missing)} test id(s) are not in {sample_name} (e.g. {', '.join(missing[:3])}); "
                        "the sample submission and the test data must list the same ids")
    base = sample.iloc[[position[i] for i in frame[spec.id_column]]]
    tiled_sample = pd.concat([base] * reps, ignore_index=True).iloc[:rows].copy()
    tiled_sample[id_column] = new_ids
    dest.mkdir(parents=True, exist_ok=True)
    tiled_sample.to_csv(dest / sample_name, index=False)
    return _write_tiled(tiled, dest, spec)


def _write_tiled(tiled, dest: Path, spec: DataSpec) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / spec.test
    if out.suffix.lower() in (".parquet", ".pq"):
        tiled.to_parquet(out, index=False)
    else:
        tiled.to_csv(out, index=False)
    return dest


def _tile_sample(sample, test_ids: list[str], new_ids: list[str], reps: int, submission: SubmissionSpec,
                 path: Path) -> None:
    """The tiled sample of a format whose sample rows are not one per test id."""
    import pandas as pd

    from runtime.output.formats import form_id

    path.parent.mkdir(parents=True, exist_ok=True)
    id_column = submission.id_column
    if submission.mode == "long":
        values = sample.iloc[0, 1:].tolist()  # the cells do not matter to a timing: the first row's for all
        rows = [[form_id(submission, i, t), *values] for i in new_ids for t in submission.targets]
        pd.DataFrame(rows, columns=list(sample.columns)).to_csv(path, index=False)
        return
    parts = []
    for k in range(reps):
        part = sample.copy()
        part[id_column] = [f"{i}~{k}" for i in sample[id_column]]
        parts.append(part)
    pd.concat(parts, ignore_index=True).to_csv(path, index=False)


def read_once(data_dir: Path, manifest: Manifest, assets: Path | None = None) -> tuple[float, TestData]:
    """Seconds for the runtime's read path: table, sample, id match, checks (text: tokenising), first feeds."""
    t0 = time.perf_counter()
    test = open_test_data(data_dir, manifest.data, assets=assets)
    sample = read_sample(_table_and_folder(data_dir, manifest.data)[1] / manifest.submission.sample,
                         manifest.submission)
    match(manifest.submission, sample, test.ids, sample_name=manifest.submission.sample)
    for member in manifest.members:
        test.check(member)
        if not any(i.image is not None for i in member.inputs):
            test.feed(member, 0, 1)  # converts the member's columns to an array, once per run
    # The features hook is a stage of its own (the profile's "hooks"), not reading.
    hook_s = test.features.seconds if test.features is not None else 0.0
    return time.perf_counter() - t0 - hook_s, test


def held_bytes_per_row(ids: list[str], sample) -> float:
    """Bytes per row a run holds whole, whatever the table: the id strings and the sample submission's rows."""
    import sys

    n = max(1, len(ids))
    total = sys.getsizeof(ids) + sum(sys.getsizeof(i) for i in ids)
    total += sys.getsizeof(sample.rows) + sys.getsizeof(sample.ids)
    total += sum(sys.getsizeof(r) + sum(sys.getsizeof(c) for c in r) for r in sample.rows.values())
    return total / n


def measure_data(manifest: Manifest, data_dir: Path, work: Path, max_batch: int,
                 assets: Path | None = None) -> tuple[DataRead, TestData, Any]:
    """Read at the public size and at a tiled size; returns (its cost, tiled TestData, sample).

    ``data_dir`` is the data folder or the test table itself; the tiled copy is
    written to ``work / "tiled"``. ``assets`` is the bundle root (text members' tokenizers).
    """
    spec = manifest.data
    t_small, test_small = read_once(data_dir, manifest, assets)
    t_small = min(t_small, read_once(data_dir, manifest, assets)[0])  # the first read also warms the disk cache
    n0 = test_small.n_rows
    if n0 == 0:
        raise DataError(f"the test data in {data_dir} has no rows; profiling needs at least one")
    bytes_per_row = _table_and_folder(data_dir, spec)[0].stat().st_size / n0
    n1 = int(min(max(8 * n0, _TILE_MIN, 2 * max_batch), _TILE_MAX, max(_TILE_BYTES / bytes_per_row, n0)))
    n1 = max(n1, max_batch, n0)
    tiled_dir = tile_data(data_dir, spec, manifest.submission.sample, manifest.submission.id_column, n1,
                          work / "tiled", manifest.submission)
    t_big, test_big = read_once(tiled_dir, manifest, assets)
    t_big = min(t_big, read_once(tiled_dir, manifest, assets)[0])  # one-time lazy imports are startup's
    fixed, per_row = fit_line([(n0, t_small), (n1, t_big)])
    memory = int(test_big.frame.memory_usage(deep=True).sum())
    sample = read_sample(tiled_dir / manifest.submission.sample, manifest.submission)
    data = DataRead.from_dict({
        "rows": n0, "format": spec.format, "table_bytes_per_row": bytes_per_row,
        "memory_bytes_per_row": memory / n1, "ids_bytes_per_row": held_bytes_per_row(test_big.ids, sample),
        "read_fixed_s": fixed, "read_s_per_row": per_row, "points": [[n0, t_small], [n1, t_big]],
    })
    return data, test_big, sample


__all__ = ["SYNTHETIC_ROWS", "fit_line", "held_bytes_per_row", "measure_data", "read_once", "tile_data", "write_synthetic_data"]
