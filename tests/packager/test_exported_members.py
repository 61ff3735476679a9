"""The packager's public API: exactly these names, each importable (httpx's test_exported_members)."""

from __future__ import annotations

import importlib

import pytest

import packager
import packager.estimate

pytestmark = pytest.mark.timeout(60)

PACKAGER = {
    "ModelSpec", "PackageOptions", "PackageResult", "Spec", "VariantSpec", "add_dataset_metadata", "build_notebook",
    "dataset_hook", "load_spec", "package", "wheelhouse_hook", "write_notebook",
}
ESTIMATE = {
    "STAGES", "TARGETS", "VERDICTS", "BudgetEstimate", "Calibration", "CalibrationStore", "Check", "Estimate",
    "EstimateOptions", "FitPlan", "GraphCost", "Hardware", "Item", "NodeCost", "ProfileOptions", "calibrate",
    "check_precision", "count_graph", "default_calibration_path", "detect_local", "estimate_bundle", "fingerprint",
    "format_table", "get_target", "parse_cpuinfo", "profile_bundle", "profile_hook", "store_profile", "translate",
    "verdict", "write_chart",
}


@pytest.mark.parametrize("module, names", [(packager, PACKAGER), (packager.estimate, ESTIMATE)])
def test_exported_names(module, names):
    assert set(module.__all__) == names
    assert len(module.__all__) == len(names)  # no duplicates
    assert all(hasattr(module, name) for name in module.__all__)


@pytest.mark.parametrize("name", ["flops", "hardware", "roofline"])
def test_estimate_modules_declare_their_api(name):
    module = importlib.import_module(f"packager.estimate.{name}")
    assert module.__all__ and all(hasattr(module, n) for n in module.__all__)
    assert not [n for n in module.__all__ if n.startswith("_")]


def test_exported_names_do_not_hide_submodules():
    """``import packager.simulate as sim`` must give the module (an exported ``simulate`` would shadow it)."""
    import pkgutil

    submodules = {m.name for m in pkgutil.iter_modules(packager.__path__)}
    assert not submodules & set(packager.__all__)
