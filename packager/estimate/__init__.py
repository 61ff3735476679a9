"""Static cost and hardware model behind ``ninefit estimate``.

:func:`count_graph` prices an ONNX graph in FLOPs and bytes at a batch size,
:mod:`.hardware` describes the Kaggle targets and this machine, and
:func:`translate` turns a time measured here into a time on a target, which a
:class:`Calibration` corrects with real runs.
"""

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
from packager.estimate.roofline import Calibration, Estimate, translate

__all__ = [
    "TARGETS",
    "Calibration",
    "Estimate",
    "GraphCost",
    "Hardware",
    "NodeCost",
    "check_precision",
    "count_graph",
    "detect_local",
    "fingerprint",
    "get_target",
    "parse_cpuinfo",
    "translate",
]
