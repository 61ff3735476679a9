"""A member's guarded CPU rungs made at packaging: int8 files, bf16 and OpenVINO rungs, each measured against fp32.

For each ``[[model.variant]]`` with ``precision = "int8"`` or ``"bf16"``, or ``backend = "openvino"``
(:attr:`~packager.spec.types.VariantSpec.guarded`): the file is made (int8: :mod:`packager.quantize`; bf16 and
OpenVINO fp32 run the member's fp32 file), then the accuracy guard (:mod:`packager.guard`) runs it as it will
run, on the member's real sample rows. A rung that passes becomes a manifest :class:`~runtime.manifest.Variant`
(its value factor the measured agreement unless the spec gives one); one that fails, or that cannot be
measured here (OpenVINO missing, no native bf16 on this CPU), is left out with the reason, as a warning that
report.md and the CLI show.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from packager.guard import GuardResult, guard
from packager.quantize import Int8Result, calibration_feeds, choose_mode, quantize_int8
from packager.spec.types import ModelSpec, VariantSpec
from runtime.backends import available, unavailable
from runtime.manifest import SubmissionSpec, Variant

LOG = logging.getLogger("ninefit.package")

#: Rows per guard batch at most (the member's batch size when smaller).
GUARD_BATCH = 64


@dataclass
class RungWork:
    """What one member's guarded rungs share: its fp32 file and sample rows, and the int8 files made so far."""

    model: ModelSpec
    fp32: Path
    stage: Path
    feeds: list[dict[str, np.ndarray]]  # the sample rows, in batches (a text member's: padded windows)
    samples: str  # where they came from
    submission: SubmissionSpec
    int8: dict[str, Int8Result] = field(default_factory=dict)  # mode -> file
    guards: list[GuardResult] = field(default_factory=list)


def table_feeds(feed: dict[str, np.ndarray], batch_size: int) -> list[dict[str, np.ndarray]]:
    """The sample rows in the member's batches (at most :data:`GUARD_BATCH` rows)."""
    b = max(1, min(batch_size, GUARD_BATCH))
    n = len(next(iter(feed.values())))
    return [{k: np.ascontiguousarray(v[a:a + b]) for k, v in feed.items()} for a in range(0, n, b)]


def _left_out(work: RungWork, v: VariantSpec, why: str) -> None:
    warnings.warn(f"model {work.model.name!r} variant {v.name!r} ({v.precision}"
                  f"{', ' + v.backend if v.backend else ''}) is left out of the bundle: {why}", UserWarning, stacklevel=3)


def _file(work: RungWork, v: VariantSpec) -> tuple[Path, str]:
    """The rung's ONNX file and how it was made ("" for the fp32 file)."""
    if v.precision != "int8":
        return work.fp32, ""
    mode, _ = choose_mode(work.fp32, v.quantize)
    if mode not in work.int8:
        # Static calibration reads the first rows in batches (a text member's padded windows as they come).
        batches = None if mode == "dynamic" else work.feeds if work.model.text is not None \
            else calibration_feeds(_joined(work.feeds))
        work.int8[mode] = quantize_int8(work.fp32, work.fp32.parent / f"int8-{mode}.onnx", work.model.name,
                                        v.quantize, None, feeds=batches, rows_source=work.samples)
    made = work.int8[mode]
    return made.path, made.describe()


def _joined(feeds: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([f[k] for f in feeds]) for k in feeds[0]}


def package_rung(work: RungWork, v: VariantSpec) -> Variant | None:
    """The guarded rung ``v`` as a manifest variant, or None when it is left out (warned, with the reason)."""
    if v.backend == "openvino" and "openvino" not in available():
        _left_out(work, v, f"its accuracy cannot be measured here: the openvino backend "
                           f"{unavailable().get('openvino', 'is not available')} (pip install 'ninefit[openvino]')")
        return None
    if v.precision == "bf16":
        from runtime.backends.openvino import native_bf16

        ok, where = native_bf16()
        if not ok:
            _left_out(work, v, f"this CPU has no native bf16 ({where}), so its accuracy cannot be measured here; "
                               "package on a CPU with AVX-512 BF16 or AMX")
            return None
    path, how = _file(work, v)
    result = guard(work.model.name, v.name, v.precision, v.backend, work.fp32, path, work.feeds, work.model.output,
                   work.model.activation, work.submission, work.samples, v.min_agreement, v.max_mean_abs_diff, how)
    work.guards.append(result)
    if not result.passed:
        _left_out(work, v, f"it fails the accuracy guard on {result.rows} rows ({work.samples}): {result.reason()}. "
                           "Tighten nothing: keep the fp32 rung, try quantize = \"static\"/\"dynamic\", or loosen "
                           "min_agreement / max_mean_abs_diff in its [[model.variant]] if that change is acceptable")
        return None
    factor = v.value_factor if v.value_factor_given else max(result.agreement, 1e-6)
    LOG.info(f"{work.model.name}/{v.name}: {v.precision} on {result.backend}: {result.compared} agreement "
             f"{result.agreement:.2%}, mean abs diff {result.mean_abs_diff:.2g} on {result.rows} rows; value factor "
             f"{factor:.4f}" + ("" if v.value_factor_given else " (measured)"))
    return Variant(name=v.name, file=path.relative_to(work.stage).as_posix(), precision=v.precision, tta=v.tta,
                   image_size=v.image_size, value_factor=factor, backend=v.backend)


__all__ = ["GUARD_BATCH", "RungWork", "package_rung", "table_feeds"]
