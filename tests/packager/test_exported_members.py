"""The packager's public API: exactly these names, each importable (httpx's test_exported_members)."""

from __future__ import annotations

import importlib

import pytest

import packager
import packager.estimate
import packager.offline
import packager.push

pytestmark = pytest.mark.timeout(60)

PACKAGER = {
    "ModelSpec", "PackageOptions", "PackageResult", "Spec", "VariantSpec", "add_dataset_metadata", "build_notebook",
    "dataset_step", "load_spec", "package", "wheelhouse_step", "write_notebook",
}
OFFLINE = {
    "DEFAULT_OWNER_HINT", "DEFAULT_REQUIREMENTS", "WHEELHOUSE_JSON", "WHEELS_DIR", "Step", "add_dataset_metadata",
    "dataset_step", "default_requirements", "install_command", "offline_summary", "wheelhouse_step",
}
ESTIMATE = {
    "STAGES", "TARGETS", "VERDICTS", "BudgetEstimate", "Calibration", "CalibrationStore", "Check", "Estimate",
    "EstimateOptions", "FitPlan", "GraphCost", "Hardware", "Item", "NodeCost", "ProfileOptions", "calibrate",
    "check_precision", "count_graph", "default_calibration_path", "detect_local", "estimate_bundle", "fingerprint",
    "format_table", "get_target", "parse_cpuinfo", "profile_bundle", "profile_step", "store_profile", "translate",
    "verdict", "write_chart",
    # a bundle that serves the evaluation API (packager.estimate.serve)
    "ServeEstimate", "declared_batches", "estimate_serve", "format_serve",
}

PUSH = {
    "KERNEL_METADATA", "PINNED_CLI", "SUBMISSION_FILE", "Accelerator", "KernelMetadata", "PushOptions", "PushResult",
    "accelerator", "check_kernel_metadata", "plan", "push", "submit_command",
}


@pytest.mark.parametrize("module, names", [
    (packager, PACKAGER), (packager.offline, OFFLINE), (packager.estimate, ESTIMATE), (packager.push, PUSH)])
def test_exported_names(module, names):
    assert set(module.__all__) == names
    assert len(module.__all__) == len(names)  # no duplicates
    assert all(hasattr(module, name) for name in module.__all__)


def _estimate_modules() -> list[str]:
    import pkgutil

    return sorted(m.name for m in pkgutil.walk_packages(packager.estimate.__path__, "packager.estimate.") if not m.ispkg)


@pytest.mark.parametrize("name", _estimate_modules())
def test_estimate_modules_declare_their_api(name):
    module = importlib.import_module(name)
    assert module.__all__ and all(hasattr(module, n) for n in module.__all__)
    assert not [n for n in module.__all__ if n.startswith("_")]


def test_estimate_is_grouped_into_measuring_and_pricing():
    """Measuring (the profile) apart from pricing (a target's costs); the estimate's assembly at the root."""
    names = set(_estimate_modules())
    assert {"packager.estimate.measure.profile", "packager.estimate.measure.overheads",
            "packager.estimate.measure.sampling", "packager.estimate.price.costing",
            "packager.estimate.price.roofline", "packager.estimate.price.flops",
            "packager.estimate.price.hardware", "packager.estimate.estimator"} <= names
    for group in ("measure", "price"):
        assert importlib.import_module(f"packager.estimate.{group}").__doc__


@pytest.mark.parametrize("module", [packager, packager.offline, packager.push])
def test_exported_names_do_not_hide_submodules(module):
    """``import packager.offline.simulate as sim`` must give the module (an exported ``simulate`` would shadow it)."""
    import pkgutil

    submodules = {m.name for m in pkgutil.iter_modules(module.__path__)}
    assert submodules and not submodules & set(module.__all__)
