"""The digits example packaged as an evaluation-API bundle (a ``[serve]`` table), shared by the serving tests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

#: Appended to the digits spec: predict(test, sample), 100-row batches in random order, a generous deadline.
SERVE_TABLE = """

[serve]
arguments = ["test", "sample"]
sample = "sample"
response_timeout_s = 60
batch_rows = 100
order = "random"
"""


@pytest.fixture(scope="session")
def served_bundle(digits_dir: Path, tmp_path_factory) -> Path:
    """digits packaged with SERVE_TABLE (read it, do not modify it: :func:`serve_variant` copies it)."""
    from packager.build import package

    spec_dir = tmp_path_factory.mktemp("served") / "spec"
    shutil.copytree(digits_dir, spec_dir, ignore=shutil.ignore_patterns("work"))
    spec = spec_dir / "ninefit.toml"
    spec.write_text(spec.read_text() + SERVE_TABLE)
    out = tmp_path_factory.mktemp("served") / "digits-served"
    package(spec, out)
    return out


def serve_variant(bundle: Path, dest: Path, **serve: object) -> Path:
    """A copy of ``bundle`` whose manifest's ``serve`` table has ``serve`` changed (the manifest is not
    checksummed: the bundle stays intact)."""
    shutil.copytree(bundle, dest)
    path = dest / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["serve"].update(serve)
    path.write_text(json.dumps(manifest, indent=1))
    return dest
