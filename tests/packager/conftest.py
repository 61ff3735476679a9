"""Fixtures shared by the packager tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from packager.build import PackageOptions, package
from packager.estimate.measure.profile import ProfileOptions, profile_bundle, store_profile
from packager.offline import dataset_step, wheelhouse_step
from packager.offline.image import image_facts
from tests.fixtures.estimates import copy_bundle
from tests.packager.wheels import A, B, C, make_wheel


@pytest.fixture()
def index(tmp_path: Path) -> Path:
    """A local 'index': a needs b and c (c stands for a package Kaggle's image has)."""
    src = tmp_path / "index"
    make_wheel(src, A, requires=(B, f"{C}>=1.0"), code="import ninefit_demo_b\nVALUE = 'a+' + ninefit_demo_b.VALUE\n")
    make_wheel(src, B)
    make_wheel(src, C)
    return src


#: The image's CPython tag (cp312) and a compiled wheel's full tag for it.
CP = "cp" + image_facts().python_version.replace(".", "")
COMPILED_TAG = f"{CP}-{CP}-manylinux_2_17_x86_64"


def ort_index(folder: Path, tag: str = COMPILED_TAG) -> Path:
    """A local index with an ``onnxruntime-gpu`` wheel (module ``onnxruntime``) built for ``tag``."""
    make_wheel(folder, "onnxruntime-gpu", "1.22.0", requires=("numpy>=1.21",), tag=tag, module="onnxruntime")
    return folder


@pytest.fixture(scope="session")
def wheel_bundle(digits_dir: Path, tmp_path_factory) -> Path:
    """digits packaged for t4x2 with a wheelhouse and dataset-metadata.json (owner alice); copy before changing.

    The wheelhouse is resolved offline (no network) from a local folder holding a
    stand-in ``onnxruntime-gpu`` wheel tagged for the image's Python (cp312
    manylinux), so the bundle is what `ninefit package` writes for t4x2.
    """
    root = tmp_path_factory.mktemp("push")
    steps = (wheelhouse_step(None, target="t4x2", find_links=[ort_index(root / "index")], index=False),
             dataset_step(owner="alice"))
    out = root / "digits"
    package(digits_dir / "ninefit.toml", out, PackageOptions(steps=steps, target="t4x2"))
    return out


@pytest.fixture(scope="session")
def profiled(digits_bundle, digits_dir, tmp_path_factory) -> Path:
    """The digits bundle, profiled here (quickly). Read-only: copy before editing."""
    bundle = copy_bundle(digits_bundle, tmp_path_factory.mktemp("profiled") / "digits")
    options = ProfileOptions(seconds_per_member=0.3, batch_sizes=(64, 256))
    store_profile(bundle, profile_bundle(bundle, digits_dir / "data", options))
    return bundle
