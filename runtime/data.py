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
from pathlib import Path
from typing import Sequence

import numpy as np

from runtime.errors import DataError
from runtime.manifest import DataSpec, InputSpec, Member
from runtime.settings import env_flag
from runtime.text import TextRows, load_tokenizer, tokenize

_NUMERIC_KINDS = "biuf"


def _pandas():
    """pandas, accelerated by cudf.pandas when NINEFIT_CUDF=1 and a GPU is present."""
    try:
        use_cudf = env_flag("NINEFIT_CUDF")
    except ValueError as exc:
        raise DataError(str(exc)) from None
    if use_cudf:
        import warnings

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # it warns and falls back to pandas without a GPU
                import cudf.pandas

                cudf.pandas.install()
        except ImportError:
            pass
    import pandas

    return pandas


def read_table(path: Path, *, id_column: str | None = None, text: bool = False):
    """Read a CSV or Parquet file into a DataFrame, with the id column as strings.

    With ``text``, every cell is read as the string written in the file (empty
    cells stay empty strings), as a submission-shaped file needs.
    """
    pd = _pandas()
    if not path.is_file():
        raise DataError(f"test data file {path} not found (expected a .csv or .parquet file)")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            df = pd.read_parquet(path)
            if text:
                df = df.astype(str)
            elif id_column and id_column in df.columns:
                df[id_column] = df[id_column].astype(str)
        elif text:
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
        else:
            df = pd.read_csv(path, dtype={id_column: str} if id_column else None, keep_default_na=True)
    except Exception as exc:
        raise DataError(f"could not read {path}: {exc}") from exc
    if id_column and id_column not in df.columns:
        raise DataError(
            f"{path.name} has no id column {id_column!r}; its columns are: {', '.join(map(str, df.columns[:20]))}"
        )
    return df


def _dims(spec: InputSpec) -> tuple[int, ...]:
    return tuple(d if isinstance(d, int) else -1 for d in spec.shape[1:])


class TestData:
    """The rows to predict, in file order, and the features each model needs."""

    features = None  # runtime.hooks.FeaturesResult when the bundle's features hook ran on the table

    def __init__(self, ids: Sequence[str], frame, spec: DataSpec, root: Path, assets: Path | None = None):
        self.ids = list(ids)
        self.frame = frame
        self.spec = spec
        self.root = root
        self.assets = assets  # the bundle root: text members' tokenizer files are relative to it
        self._cache: dict[tuple[str, ...], np.ndarray] = {}
        self._bad: dict[tuple[str, ...], np.ndarray | None] = {}  # per column set: rows with a non-finite value
        self._text: dict[object, TextRows] = {}

    @property
    def n_rows(self) -> int:
        return len(self.ids)

    def check(self, member: Member) -> None:
        """Raise DataError if the data lacks a column the member needs, or has the wrong dtype.

        A text member's rows are tokenised here (once per text spec), so any text
        they cannot take is said before anything runs.
        """
        if member.text is not None:
            self.text_rows(member)
            return
        for inp in member.inputs:
            if inp.image is not None:
                continue
            missing = [c for c in inp.columns if c not in self.frame.columns]
            if missing:
                raise DataError(
                    f"test data is missing {len(missing)} column(s) that model {member.name!r} input {inp.name!r} needs: "
                    f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''} "
                    f"(expected {len(inp.columns)} feature columns, as in the spec)"
                )
            bad = [f"{c} ({self.frame[c].dtype})" for c in inp.columns if self.frame[c].dtype.kind not in _NUMERIC_KINDS]
            if bad:
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
                matrix = self._matrix(inp.columns)[start:stop]
                bad = self._bad_rows(inp.columns)
                if bad is not None and bad[start:stop].any():
                    policy, fill = member.missing_policy(self.spec)
                    matrix = np.where(np.isfinite(matrix), matrix, fill if policy == "fill" else 0)
                out[inp.name] = matrix.astype(inp.dtype, copy=False).reshape((stop - start, *_dims(inp)))
        return out

    def text_rows(self, member: Member) -> TextRows:
        """The token windows of every row for a text member (tokenised on first use)."""
        spec = member.text
        if spec not in self._text:
            path = (self.assets or Path(".")) / spec.tokenizer
            self._text[spec] = tokenize(spec, load_tokenizer(path, spec), self.frame, self.ids)
        return self._text[spec]

    def _matrix(self, columns: tuple[str, ...]) -> np.ndarray:
        if columns not in self._cache:
            self._cache[columns] = self.frame.loc[:, list(columns)].to_numpy()
        return self._cache[columns]

    def _bad_rows(self, columns: tuple[str, ...]) -> np.ndarray | None:
        """Rows with a non-finite value in ``columns``; None when there are none (the common case)."""
        if columns not in self._bad:
            matrix = self._matrix(columns)
            bad = None
            if matrix.dtype.kind == "f" and matrix.size:
                rows = ~np.isfinite(matrix).all(axis=1)
                bad = rows if rows.any() else None
            self._bad[columns] = bad
        return self._bad[columns]

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
                matrix = self._matrix(inp.columns)
                per_column = (~np.isfinite(matrix)).sum(axis=0)
                for column, n in zip(inp.columns, per_column.tolist()):
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
        from runtime.loaders import image_loader

        if image_loader() == "dali":  # NINEFIT_LOADER=dali: decode and resize with NVIDIA DALI, on the GPU if any
            from runtime.loaders.dali import load_images

            return load_images(self, inp, start, stop, size)
        from PIL import Image

        img = inp.image
        h, w = size or img.size
        folder = self.root / self.spec.image_dir
        batch = np.empty((stop - start, h, w, img.channels), dtype=np.float32)
        for i, rel in enumerate(self.frame[self.spec.image_column].iloc[start:stop]):
            path = folder / str(rel)
            try:
                with Image.open(path) as im:
                    im = im.convert("L" if img.channels == 1 else "RGB").resize((w, h), Image.BILINEAR)
                    arr = np.asarray(im, dtype=np.float32)
            except (OSError, ValueError) as exc:
                raise DataError(f"could not read image {path}: {exc}") from exc
            batch[i] = arr.reshape(h, w, img.channels)
        batch = (batch * img.scale - np.asarray(img.mean, np.float32)) / np.asarray(img.std, np.float32)
        if img.layout == "NCHW":
            batch = batch.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(batch, dtype=inp.dtype)


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


def open_test_data(data_dir: str | os.PathLike, spec: DataSpec, assets: str | os.PathLike | None = None) -> TestData:
    """Open the test data named by ``spec`` inside ``data_dir`` (a folder, or the table file itself).

    ``assets`` is the bundle root, where text members find their tokenizer.
    """
    root = Path(data_dir)
    path = root if root.is_file() else root / spec.test
    if root.is_file():
        root = root.parent
    elif not root.is_dir():
        raise DataError(f"--data {root} does not exist (expected the competition's data folder holding {spec.test})")
    # Text from a CSV is read as written: an empty cell is an empty string, never NaN.
    as_text = spec.format == "text" and path.suffix.lower() not in (".parquet", ".pq")
    frame = read_table(path, id_column=spec.id_column, text=as_text)
    ids = frame[spec.id_column].tolist()
    if not ids:
        raise DataError(
            f"the test table has no rows: {path} holds a header ({len(frame.columns)} column(s)) and no data. "
            "Expected at least one row to predict; check that the file is the competition's test table."
        )
    if len(set(ids)) != len(ids):
        raise DataError(f"{path.name}: id column {spec.id_column!r} has duplicate ids; each row needs a unique id")
    if spec.format == "images":
        if spec.image_column not in frame.columns:
            raise DataError(f"{path.name} has no image column {spec.image_column!r}; its columns: {', '.join(map(str, frame.columns))}")
        from runtime.loaders import image_loader

        image_loader()  # a bad NINEFIT_LOADER stops the run here, before any model runs
    features = None
    if spec.features:  # the user's features hook, chunk by chunk, before any member takes its columns
        from runtime.hooks import HOOKS_DIR, apply_features

        features = apply_features(frame, spec.features, Path(assets or ".") / HOOKS_DIR, group=spec.features_group,
                                  ids=ids, columns=spec.features_columns)
        frame = features.frame
    data = TestData(ids, frame, spec, root, Path(assets) if assets is not None else None)
    data.features = features
    return data


__all__ = ["TestData", "apply_tta", "open_test_data", "read_table"]
