"""Static cost and hardware model, measured profiles and the run-time estimate.

:func:`count_graph` prices an ONNX graph in FLOPs and bytes at a batch size,
:mod:`.hardware` describes the Kaggle targets and this machine, and
:func:`translate` turns a time measured here into a time on a target, which a
:class:`Calibration` corrects with real runs.

:func:`profile_bundle` measures a bundle's members here (stored as
``manifest.profile``); :func:`estimate_bundle` adds up every stage of a run on
a target for the hidden test set's rows, gives a verdict against the time
limit and, when it does not fit, the best plan that does; :func:`calibrate`
folds a real run's report into a :class:`CalibrationStore`.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Each public name and the module it lives in: imported when first used (``import packager.estimate.x``
#: must stay cheap, e.g. for the CLI's help).
_EXPORTS = {
    "BudgetEstimate": "packager.estimate.estimator",
    "Calibration": "packager.estimate.roofline",
    "CalibrationStore": "packager.estimate.calibrate",
    "Check": "packager.estimate.estimator",
    "Estimate": "packager.estimate.roofline",
    "EstimateOptions": "packager.estimate.estimator",
    "FitPlan": "packager.estimate.estimator",
    "GraphCost": "packager.estimate.flops",
    "Hardware": "packager.estimate.hardware",
    "Item": "packager.estimate.estimator",
    "NodeCost": "packager.estimate.flops",
    "ProfileOptions": "packager.estimate.profile",
    "STAGES": "packager.estimate.estimator",
    "TARGETS": "packager.estimate.hardware",
    "VERDICTS": "packager.estimate.estimator",
    "calibrate": "packager.estimate.calibrate",
    "check_precision": "packager.estimate.hardware",
    "count_graph": "packager.estimate.flops",
    "default_calibration_path": "packager.estimate.calibrate",
    "detect_local": "packager.estimate.hardware",
    "estimate_bundle": "packager.estimate.estimator",
    "fingerprint": "packager.estimate.hardware",
    "format_table": "packager.estimate.render",
    "get_target": "packager.estimate.hardware",
    "parse_cpuinfo": "packager.estimate.hardware",
    "profile_bundle": "packager.estimate.profile",
    "profile_hook": "packager.estimate.profile",
    "store_profile": "packager.estimate.profile",
    "translate": "packager.estimate.roofline",
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
