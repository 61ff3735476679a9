"""Packaging the user's hooks: copy them into the bundle and check them on the public test.

* :func:`stage_hooks`: the hook modules and the declared side files go into
  the staged bundle's ``hooks/`` folder (checksummed like every file).
* :func:`check_features`: the features hook run on the public test table
  as one whole call and chunk by chunk, which must agree (it is called per
  chunk at run time); its columns against the members' inputs; its cost.
* :func:`check_postprocess`: the postprocess hook on the public test ids
  with values of the ensemble's width: its rows against the sample
  submission (columns, ids, every sample row written once); its cost.
* :func:`check_imports`: every module a hook imports is in the standard
  library, Kaggle's image (``packager/data/kaggle_image.txt``), the bundle's
  ``wheels/`` or the ``hooks/`` folder itself.

A hook that raises stops packaging with a :class:`~runtime.errors.HookError`
that shows the traceback of the user's code; the staged bundle is removed.
"""

from __future__ import annotations

import ast
import inspect
import logging
import math
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from runtime.errors import HookError, SpecError
from runtime.hooks import (
    FEATURES_CHUNK_ROWS,
    HOOKS_DIR,
    apply_features,
    call_hook,
    feature_chunks,
    features_output,
    load_hook,
)
from runtime.manifest import DataSpec, Member
from runtime.profile import HookCost

#: What the hooks' checks say (the CLI shows it, as the rest of packaging).
LOG = logging.getLogger("ninefit.package")

#: Chunks the public test is cut into for the row-wise check.
CHECK_CHUNKS = 4


def _hook_sources(spec) -> list[tuple[Path, str]]:
    """The user's hook files and where each goes under ``hooks/`` (module files flat, side files as declared)."""
    sources: list[tuple[Path, str]] = []
    if spec.hooks.module is not None:
        sources.append((spec.hooks.module, spec.hooks.module.name))
        sources += [(spec.root / f, Path(f).as_posix()) for f in spec.hooks.files]
    post = spec.submission.postprocess_path
    if post is not None:
        sources.append((post, post.name))
    return sources


def in_user_files(text: str, spec, stage: Path) -> str:
    """``text`` (a hook's traceback) with each staged copy's path replaced by the user's own file.

    The hooks run from the bundle being staged, a folder that is gone once
    packaging stops: a traceback must name the file the user edits.
    """
    for src, rel in _hook_sources(spec):
        for staged in {str(stage / HOOKS_DIR / rel), str(stage.resolve() / HOOKS_DIR / rel)}:
            text = text.replace(staged, str(src))
    return text


def stage_hooks(spec, stage: Path) -> list[str]:
    """Copy the hook modules and side files into ``stage/hooks/``; returns the copied paths (bundle-relative)."""
    copied = []
    for src, rel in _hook_sources(spec):
        dest = stage / HOOKS_DIR / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        copied.append(f"{HOOKS_DIR}/{rel}")
    return copied


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per element: equal (floats within 1e-6 relative, NaN equal to NaN)."""
    if a.dtype.kind == "f" or b.dtype.kind == "f":
        a, b = a.astype(np.float64), b.astype(np.float64)
        return np.isclose(a, b, rtol=1e-6, atol=1e-12, equal_nan=True)
    return a == b


def check_features(spec, stage: Path, members: tuple[Member, ...] = ()) -> tuple[DataSpec, HookCost]:
    """Run the features hook on the public test, whole and chunked; returns the data spec with its columns, and its cost.

    Raises:
        HookError: The hook raised (its traceback shown), returned something
            else than numeric columns of one value per row, or is not row-wise.
        SpecError: The public test is not here, or a member names a column
            neither the table nor the hook gives, or a dtype that would lose values.
    """
    from runtime.data.testdata import read_table

    data, ref = spec.data, spec.data.features
    if not spec.test_path.is_file():
        raise SpecError(f"[data] features = {ref!r}: the hook is checked on the public test table, and "
                        f"{spec.test_path} is not here")
    folder = stage / HOOKS_DIR
    frame = read_table(spec.test_path, id_column=data.id_column)
    ids = frame[data.id_column].tolist()
    n = len(frame)
    fn = load_hook(ref, folder)
    t0 = time.perf_counter()
    try:
        whole = features_output(call_hook(fn, ref, frame.reset_index(drop=True)), n)
    except HookError as exc:
        raise HookError(f"features hook {ref!r} failed on the public test table ({n} rows): {exc}") from exc
    seconds = time.perf_counter() - t0
    if not inspect.isfunction(fn):
        # A hook that keeps state (a class: one instance, called batch by batch in order) is not row-wise by
        # design: what it gives a row may depend on the batches before. It is called in order at run time.
        LOG.info(f"features hook {ref}: a class, called in order with its state (not compared whole vs chunked)")
    else:
        _check_row_wise(ref, folder, frame, ids, whole, data.features_group)
    columns = tuple((c, str(v.dtype)) for c, v in whole.items())
    available = {str(c): frame[c].dtype for c in frame.columns if c not in whole}
    available.update({c: v.dtype for c, v in whole.items()})
    for m in members:
        for inp in m.inputs:
            missing = [c for c in inp.columns if c not in available]
            if missing:
                raise SpecError(
                    f"model {m.name!r} input {inp.name!r} names column(s) {', '.join(missing[:8])}, which neither the "
                    f"test table nor the features hook {ref!r} gives (the hook returns: {', '.join(whole) or 'nothing'})")
            want = np.dtype(inp.dtype)
            for c in inp.columns:
                try:
                    have = np.dtype(getattr(available[c], "numpy_dtype", available[c]))
                except TypeError:  # a pandas extension dtype (strings...): the data check names it
                    continue
                if want.kind in "iub" and have.kind == "f":
                    raise SpecError(f"model {m.name!r} input {inp.name!r} is {inp.dtype}, but column {c!r} is {have}: "
                                    "its values would be truncated; return integers from the hook, or make the "
                                    "input float32")
    cost = _features_cost(fn, ref, frame, seconds)
    chunks = len(feature_chunks(frame, data.features_group, max(1, math.ceil(n / CHECK_CHUNKS))))
    how = (f"row-wise on {n} rows in {chunks} chunk(s)"
           f"{' kept whole by ' + repr(data.features_group) if data.features_group else ''}"
           if inspect.isfunction(fn) else f"stateful, on {n} rows")
    LOG.info(f"features hook {ref}: {len(columns)} column(s), {how} "
        f"({(cost.fixed_s or 0.0) * 1e3:.2f} ms per call + {(cost.s_per_row or 0.0) * 1e6:.2f} us/row)")
    return replace(data, features_columns=columns), cost


def _features_cost(fn, ref: str, frame, seconds: float) -> HookCost:
    """Seconds per call and per row: the public table's whole call, and one on a tiled copy (up to 64x, 50k rows)."""
    import pandas as pd

    from packager.estimate.measure.sampling import fit_line

    n = len(frame)
    reps = max(2, min(64, 50_000 // max(n, 1)))
    big = pd.concat([frame] * reps, ignore_index=True)
    points = []
    try:
        for table in (frame.reset_index(drop=True), big):  # the first call (the check's) warmed up its imports
            t0 = time.perf_counter()
            call_hook(fn, ref, table)
            points.append((len(table), time.perf_counter() - t0))
    except HookError:  # a tiled copy it refuses (duplicate ids...): the public table's figure alone
        points = [(n, min([seconds, *(t for _, t in points)]))]
    fixed, per_row = fit_line(points) if len(points) > 1 else (0.0, seconds / n)
    return HookCost.from_dict({"hook": ref, "rows": n, "seconds": seconds, "fixed_s": max(fixed, 0.0),
                               "s_per_row": max(per_row, 0.0), "points": points, "chunk_rows": FEATURES_CHUNK_ROWS})


def _check_row_wise(ref: str, folder: Path, frame, ids: list, whole: dict[str, np.ndarray], group: str) -> None:
    """The hook gives the same values chunk by chunk as on the whole table (groups kept whole); HookError else."""
    n = len(frame)
    chunk_rows = max(1, math.ceil(n / CHECK_CHUNKS))
    chunked = apply_features(frame, ref, folder, group=group, ids=ids, chunk_rows=chunk_rows, strict=True)
    for c, v in whole.items():
        got = chunked.frame[c].to_numpy()
        same = _same(v, got)
        if not same.all():
            bad = np.flatnonzero(~same)
            grouping = (f"groups of features_group = {group!r} were kept whole" if group
                        else "no features_group is declared")
            raise HookError(
                f"features hook {ref!r} is not row-wise: called on the whole public test table ({n} rows) and on "
                f"chunks of about {chunk_rows} rows ({grouping}), it gives different values in column {c!r} for "
                f"{len(bad)} row(s) (e.g. id {ids[bad[0]]}: {_shown(v[bad[0]])} whole, {_shown(got[bad[0]])} "
                "chunked). The runtime calls it chunk by chunk, so a row's features may depend only on its own row, or, for a "
                "groupby-aggregate, only on the rows of its group: declare that column with [data] features_group = "
                "\"<column>\" (a chunk then never splits a group). A statistic over the whole test table cannot be "
                "computed chunk by chunk: compute it on the training data and ship it as a side file "
                "(features_files).")


def _shown(x) -> str:
    """A value as a message shows it: a number as a number (never ``np.float64(...)``)."""
    return repr(x.item()) if isinstance(x, np.generic) else repr(x)


def check_postprocess(manifest, sample, test_ids, stage: Path) -> HookCost:
    """Run the postprocess hook over the public test ids with values of the ensemble's width (uniform in [0, 1)).

    Every sample row must be written exactly once, with the sample's columns.
    """
    from runtime.output.formats import Formatter, match, width

    sub = manifest.submission
    hook = load_hook(sub.postprocess, stage / HOOKS_DIR)
    fmt = Formatter(sub, sample, test_ids, match(sub, sample, test_ids), sample, hook=hook, strict=True)
    values = np.random.default_rng(0).random((len(test_ids), width(sub)))
    t0 = time.perf_counter()
    rows = fmt.rows(values, np.ones(len(test_ids), dtype=bool))
    seconds = time.perf_counter() - t0
    unwritten = [i for i in sample.ids if i not in fmt.produced]
    if unwritten:
        raise HookError(f"postprocess hook {sub.postprocess!r} left {len(unwritten)} of the sample submission's "
                        f"{len(sample.ids)} row(s) unwritten on the public test (e.g. {', '.join(unwritten[:3])}); "
                        "expected one row per sample row, the sample's id first")
    assert len(rows) == len(sample.ids)
    LOG.info(f"postprocess hook {sub.postprocess}: {len(sample.ids)} sample row(s) written from {len(test_ids)} test "
        f"row(s) ({seconds / max(len(test_ids), 1) * 1e6:.1f} us/row)")
    return HookCost.from_dict({"hook": sub.postprocess, "rows": len(test_ids), "seconds": seconds,
                               "s_per_row": seconds / max(len(test_ids), 1)})


def _imports(path: Path) -> set[str]:
    """Top-level names of the modules a file imports (absolute imports, anywhere in it)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def check_imports(stage: Path, provided: dict[str, Any] | None = None) -> list[str]:
    """Refuse a hook importing a module neither Python, Kaggle's image, the bundle's wheels nor hooks/ provide.

    Returns the modules found, each with where it comes from.
    """
    from importlib.metadata import packages_distributions

    from packager.offline.wheelmeta import canonicalize_name, load_provided, scan_wheels

    folder = stage / HOOKS_DIR
    if not folder.is_dir():
        return []
    provided = load_provided() if provided is None else provided
    wheels = {w.project for w in scan_wheels(stage / "wheels")} if (stage / "wheels").is_dir() else set()
    local = {p.stem for p in folder.rglob("*.py")}
    dists = packages_distributions()
    found, bad = [], []
    for path in sorted(folder.rglob("*.py")):
        try:
            names = _imports(path)
        except SyntaxError as exc:
            raise HookError(f"hook module {path.name} is not valid Python: {exc}") from exc
        for name in sorted(names):
            if name in sys.stdlib_module_names or name == "__future__":
                found.append(f"{name} (standard library)")
            elif name in local:
                found.append(f"{name} (hooks/)")
            else:
                projects = {canonicalize_name(d) for d in dists.get(name, [name])}
                where = ("Kaggle's image" if projects & set(provided) else "the bundle's wheels" if projects & wheels
                         else "")
                if where:
                    found.append(f"{name} ({where})")
                else:
                    bad.append(f"{name} (in {path.name}; distribution {', '.join(sorted(projects))})")
    if bad:
        raise HookError(
            f"the hooks import {len(bad)} module(s) that the Kaggle notebook will not have: {'; '.join(bad)}. "
            "Kaggle's image provides those listed in packager/data/kaggle_image.txt; anything else must come as a "
            "wheel in the bundle (ninefit package --requirement NAME, with the wheelhouse on) or be dropped")
    return found


__all__ = ["CHECK_CHUNKS", "check_features", "check_imports", "check_postprocess", "stage_hooks"]
