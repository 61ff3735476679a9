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
    for item in items:
        if "gpu" in item.keywords and not gpu_available():
            item.add_marker(skip_gpu)
        if "trt" in item.keywords and not has_trt:
            item.add_marker(skip_trt)


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory) -> Path:
    """A prepared copy of examples/digits: data/ and checkpoints/ written, models trained."""
    dest = tmp_path_factory.mktemp("digits") / "digits"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("data", "checkpoints", "work", "__pycache__"))
    subprocess.run([sys.executable, "prepare.py", "--epochs", "15"], cwd=dest, check=True, capture_output=True)
    return dest


@pytest.fixture(scope="session")
def digits_bundle(digits_dir, tmp_path_factory) -> Path:
    """The digits example packaged into a bundle (read it, do not modify it: copy first)."""
    from packager.build import package

    out = tmp_path_factory.mktemp("bundles") / "digits"
    package(digits_dir / "ninefit.toml", out)
    return out
