"""Fixtures shared by the packager tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.packager.wheels import A, B, C, make_wheel


@pytest.fixture()
def index(tmp_path: Path) -> Path:
    """A local 'index': a needs b and c (c stands for a package Kaggle's image has)."""
    src = tmp_path / "index"
    make_wheel(src, A, requires=(B, f"{C}>=1.0"), code="import ninefit_demo_b\nVALUE = 'a+' + ninefit_demo_b.VALUE\n")
    make_wheel(src, B)
    make_wheel(src, C)
    return src
