"""Fixtures of the push tests: the digits example packaged with a wheelhouse, and Kaggle on loopback.

The bundle is tests/packager/conftest.py's ``wheel_bundle`` (digits with a
wheelhouse resolved offline for the image's Python).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.packager.push.kaggle_standin import KaggleStandIn


@pytest.fixture()
def bundle(wheel_bundle: Path, tmp_path: Path) -> Path:
    """A private copy of :func:`wheel_bundle`."""
    dest = tmp_path / "bundle"
    shutil.copytree(wheel_bundle, dest)
    return dest


@pytest.fixture()
def kaggle(tmp_path: Path, monkeypatch):
    """Kaggle on loopback, the real CLI pointed at it, with fake credentials of its own (alice / good-key)."""
    with KaggleStandIn() as standin:
        for key, value in standin.env().items():
            monkeypatch.setenv(key, value)
        for name in ("cfg", "home", "tmp"):
            (tmp_path / name).mkdir()
        monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "cfg"))
        monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.kaggle/access_token of the machine's
        monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))  # the CLI's resumable-upload state
        monkeypatch.delenv("KAGGLE_API_TOKEN", raising=False)
        monkeypatch.setenv("KAGGLE_USERNAME", "alice")
        monkeypatch.setenv("KAGGLE_KEY", "good-key")
        yield standin
