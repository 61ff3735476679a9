"""Shared fixtures: the digits example, prepared and packaged once per session.

The example is copied into a temporary folder first, so parallel runs and the
user's own `make demo` never write into each other's files.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "digits"
#: Seconds the first test to ask for the digits example may spend more, building it (training, packaging):
#: well under a minute on an idle 2-core machine, minutes on a loaded one. A test's own timeout is for its body.
EXAMPLE_BUILD_S = 600
EXAMPLE_FIXTURES = {"digits_dir", "digits_bundle"}


def gpu_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU (none here); run on a GPU machine")
    try:
        import tensorrt  # noqa: F401

        has_trt = True
    except ImportError:
        has_trt = False
    skip_trt = pytest.mark.skip(reason="needs TensorRT, which is not installed here (NVIDIA's index only)")
    default = float(config.getini("timeout") or 0)
    for item in items:
        marker = item.get_closest_marker("timeout")
        own = float((marker.args[0] if marker.args else marker.kwargs.get("timeout", default)) if marker else default)
        if own and EXAMPLE_FIXTURES & set(item.fixturenames):  # it may be the one that builds the example
            item.add_marker(pytest.mark.timeout(own + EXAMPLE_BUILD_S), append=False)
        if "gpu" in item.keywords and not gpu_available():
            item.add_marker(skip_gpu)
        if "trt" in item.keywords and not has_trt:
            item.add_marker(skip_trt)


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory) -> Path:
    """A prepared copy of examples/digits: data/ and checkpoints/ written, models trained."""
    dest = tmp_path_factory.mktemp("digits") / "digits"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("data", "checkpoints", "work", "__pycache__"))
    subprocess.run([sys.executable, "prepare.py", "--epochs", "15"], cwd=dest, check=True, capture_output=True,
                   timeout=EXAMPLE_BUILD_S)
    return dest


@pytest.fixture(scope="session")
def digits_bundle(digits_dir, tmp_path_factory) -> Path:
    """The digits example packaged into a bundle (read it, do not modify it: copy first)."""
    from packager.build import package

    out = tmp_path_factory.mktemp("bundles") / "digits"
    package(digits_dir / "ninefit.toml", out)
    return out
