"""Parity of a converted model's ONNX file with the library's own predictions, per class, row by row.

Trees compare a float32 input with a threshold: where the library compares in float64 (LightGBM, XGBoost's
host path), a value a hair from a threshold can go the other way in ONNX Runtime and move that row's
prediction by a whole leaf. So the check counts rows: a row differs when any of its values is outside
``|onnx - native| <= atol + rtol * |native|``; the share of rows that differ, per class, is reported, and
above ``rows_tolerance`` (the spec's, default 0.1 %) packaging stops with the worst row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from packager.spec.types import ModelSpec
from packager.verify import OutputCheck, VerifyResult, tolerances
from runtime.backends import get as get_backend
from runtime.backends.base import BackendOptions
from runtime.errors import ToleranceError

#: Rows run one at a time (batch 1) before the whole sample at the member's batch size.
SINGLE_ROWS = 16


def onnx_predict(path: Path, name: str, x: np.ndarray, batch: int) -> np.ndarray:
    """What the runtime's onnxruntime backend computes for ``x``, ``batch`` rows a call, as float64 rows."""
    runner = get_backend("onnxruntime").load(path, name, BackendOptions(providers=("CPUExecutionProvider",)))
    out = []
    with runner:
        for start in range(0, len(x), batch):
            got = runner.infer({"input": x[start:start + batch]})
            out.append(np.asarray(next(iter(got.values())), dtype=np.float64).reshape(len(x[start:start + batch]), -1))
    return np.concatenate(out) if out else np.zeros((0, 1))


def compare_rows(label: str, batch: int, expected: np.ndarray, got: np.ndarray, atol: float, rtol: float,
                 rows_tolerance: float) -> OutputCheck:
    """One column (class) of the output: its errors and the share of rows outside the tolerance."""
    e, g = expected.astype(np.float64), got.astype(np.float64)
    diff = np.abs(e - g)
    both_nan = np.isnan(e) & np.isnan(g)
    diff = np.where(both_nan, 0.0, np.where(np.isnan(diff), np.inf, diff))
    bad = diff > atol + rtol * np.abs(np.nan_to_num(e))
    share = float(bad.mean()) if len(bad) else 0.0
    worst = int(np.argmax(diff)) if len(diff) else 0
    rel = diff / np.maximum(np.abs(np.nan_to_num(e)), 1e-12)
    return OutputCheck(output=label, batch=batch, shape=tuple(e.shape), max_abs=float(diff.max(initial=0.0)),
                       max_rel=float(rel.max(initial=0.0)), worst_index=(worst,), expected=float(e[worst]) if len(e) else 0.0,
                       got=float(g[worst]) if len(g) else 0.0, atol=atol, rtol=rtol, ok=share <= rows_tolerance,
                       rows_differing=share, rows_tolerance=rows_tolerance)


def class_labels(m: ModelSpec, width: int, kind: str) -> list[str]:
    """How the report names each column: the positive class, each class, or the value."""
    if kind == "binary":
        return [f"{m.output} (class 1)"]
    if kind == "multiclass":
        return [f"{m.output}[class {k}]" for k in range(width)]
    return [m.output]


def verify_native(m: ModelSpec, variant: str, path: Path, expected: np.ndarray, x: np.ndarray, library: str,
                  kind: str, source: str) -> VerifyResult:
    """``path`` against the library's ``expected`` predictions for ``x``: the first rows one at a time, then all
    rows at the member's batch size; every class checked. Raises ToleranceError above ``rows_tolerance``."""
    atol, rtol = tolerances(m, "fp32")
    checks = []
    n_single = min(SINGLE_ROWS, len(x))
    for batch, rows in ((1, slice(0, n_single)), (m.batch_size, slice(0, len(x)))):
        got = onnx_predict(path, f"{m.name}/{variant}", x[rows], batch)
        want = expected[rows]
        if got.shape != want.shape:
            raise ToleranceError(f"model {m.name!r} variant {variant!r}: the ONNX file gives {got.shape[1]} value(s) "
                                 f"per row, {library} gives {want.shape[1]}")
        for k, label in enumerate(class_labels(m, want.shape[1], kind)):
            checks.append(compare_rows(label, batch, want[:, k], got[:, k], atol, rtol, m.rows_tolerance))
    result = VerifyResult(m.name, variant, "fp32", path.name, source, tuple(checks), reference=library)
    for c in checks:
        if not c.ok:
            raise ToleranceError(
                f"model {m.name!r} variant {variant!r} ({path.name}) does not match {library}'s own predictions: "
                f"{c.rows_differing:.2%} of the rows differ on {c.output} at batch size {c.batch} (allowed: "
                f"{c.rows_tolerance:.2%}, rows_tolerance), beyond |diff| <= {c.atol:g} + {c.rtol:g}*|{library}|; the "
                f"worst, row {c.worst_index[0]}: ONNX {c.got:.6g} vs {library} {c.expected:.6g} (samples: {source}). "
                "A few rows may flip a split at a threshold in float32; many mean the conversion is wrong. Raise "
                "rows_tolerance (or atol/rtol) only if this difference is acceptable")
    return result


def value_factor(full: np.ndarray, rung: np.ndarray) -> float:
    """The share of the full model's row-to-row variation a cheaper rung reproduces, measured without labels:
    ``1 - SSE / SST`` of the rung's values against the full model's over the public rows (R^2), in [0.01, 1]."""
    full, rung = full.astype(np.float64), rung.astype(np.float64)
    ok = np.isfinite(full).all(axis=1) & np.isfinite(rung).all(axis=1)
    full, rung = full[ok], rung[ok]
    sst = float(((full - full.mean(axis=0)) ** 2).sum())
    if not len(full) or sst <= 0:
        return 1.0 if np.allclose(full, rung) else 0.01
    return float(min(1.0, max(0.01, 1.0 - float(((rung - full) ** 2).sum()) / sst)))


__all__ = ["SINGLE_ROWS", "class_labels", "compare_rows", "onnx_predict", "value_factor", "verify_native"]
