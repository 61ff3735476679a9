"""How long a bundle's run takes on a Kaggle target: measured here, priced there, judged.

* :mod:`.measure`: the bundle measured on this machine (:func:`profile_bundle`,
  stored as ``manifest.profile``);
* :mod:`.price`: the profile priced on a target, stage by stage:
  :func:`count_graph` prices an ONNX graph in FLOPs and bytes at a batch size,
  :mod:`.price.hardware` describes the Kaggle targets and this machine, and
  :func:`translate` turns a time measured here into a time on a target, which a
  :class:`Calibration` corrects with real runs;
* the estimate itself: :func:`estimate_bundle` (:mod:`.estimator`) adds up every
  stage of a run on a target for the hidden test set's rows, with the pre-flight
  checks of :mod:`.preflight`, gives a verdict against the time limit and, when
  it does not fit, the best plan that does (:mod:`.fitplan`); :func:`calibrate`
  folds a real run's report into a :class:`CalibrationStore`; :mod:`.render` and
  :mod:`.chart` show it;
* a bundle that serves Kaggle's evaluation API (``[serve]``): :func:`estimate_serve`
  (:mod:`.serve`) prices its startup, first call and every batch against its
  response deadline, and paces the whole as the runtime does; :func:`format_serve` shows it.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Each public name and the module it lives in: imported when first used (``import packager.estimate.x``
#: must stay cheap, e.g. for the CLI's help).
_EXPORTS = {
    "BudgetEstimate": "packager.estimate.estimator",
    "Calibration": "packager.estimate.price.roofline",
    "CalibrationStore": "packager.estimate.calibrate",
    "Check": "packager.estimate.estimator",
    "Estimate": "packager.estimate.price.roofline",
    "EstimateOptions": "packager.estimate.estimator",
    "FitPlan": "packager.estimate.estimator",
    "GraphCost": "packager.estimate.price.flops",
    "Hardware": "packager.estimate.price.hardware",
    "Item": "packager.estimate.estimator",
    "NodeCost": "packager.estimate.price.flops",
    "ProfileOptions": "packager.estimate.measure.profile",
    "STAGES": "packager.estimate.estimator",
    "ServeEstimate": "packager.estimate.serve",
    "TARGETS": "packager.estimate.price.hardware",
    "VERDICTS": "packager.estimate.estimator",
    "calibrate": "packager.estimate.calibrate",
    "check_precision": "packager.estimate.price.hardware",
    "count_graph": "packager.estimate.price.flops",
    "default_calibration_path": "packager.estimate.calibrate",
    "detect_local": "packager.estimate.price.hardware",
    "declared_batches": "packager.estimate.serve",
    "estimate_bundle": "packager.estimate.estimator",
    "estimate_serve": "packager.estimate.serve",
    "fingerprint": "packager.estimate.measure.machine",
    "format_serve": "packager.estimate.serve",
    "format_table": "packager.estimate.render",
    "get_target": "packager.estimate.price.hardware",
    "parse_cpuinfo": "packager.estimate.measure.machine",
    "profile_bundle": "packager.estimate.measure.profile",
    "profile_step": "packager.estimate.measure.profile",
    "store_profile": "packager.estimate.measure.profile",
    "translate": "packager.estimate.price.roofline",
    "verdict": "packager.estimate.estimator",
    "write_chart": "packager.estimate.chart",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


__all__ = sorted(_EXPORTS)
