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

from packager.estimate.calibrate import CalibrationStore, calibrate, default_calibration_path
from packager.estimate.chart import write_chart
from packager.estimate.estimator import (
    STAGES,
    VERDICTS,
    BudgetEstimate,
    Check,
    EstimateOptions,
    FitPlan,
    Item,
    estimate_bundle,
    verdict,
)
from packager.estimate.flops import GraphCost, NodeCost, count_graph
from packager.estimate.hardware import (
    TARGETS,
    Hardware,
    check_precision,
    detect_local,
    fingerprint,
    get_target,
    parse_cpuinfo,
)
from packager.estimate.profile import ProfileOptions, profile_bundle, profile_hook, store_profile
from packager.estimate.render import format_table
from packager.estimate.roofline import Calibration, Estimate, translate

__all__ = [
    "STAGES",
    "TARGETS",
    "VERDICTS",
    "BudgetEstimate",
    "Calibration",
    "CalibrationStore",
    "Check",
    "Estimate",
    "EstimateOptions",
    "FitPlan",
    "GraphCost",
    "Hardware",
    "Item",
    "NodeCost",
    "ProfileOptions",
    "calibrate",
    "check_precision",
    "count_graph",
    "default_calibration_path",
    "detect_local",
    "estimate_bundle",
    "fingerprint",
    "format_table",
    "get_target",
    "parse_cpuinfo",
    "profile_bundle",
    "profile_hook",
    "store_profile",
    "translate",
    "verdict",
    "write_chart",
]
