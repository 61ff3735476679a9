"""Opening a bundle: checksums and schema version are checked before anything runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from runtime.bundle import checksum_tree, open_bundle
from runtime.errors import BundleError, ChecksumError, SchemaVersionError

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def bundle(digits_bundle, tmp_path) -> Path:
    b = tmp_path / "bundle"
    shutil.copytree(digits_bundle, b)
    return b


def test_intact_bundle_opens(bundle):
    b = open_bundle(bundle)
    assert b.manifest.files == checksum_tree(bundle)


def test_modified_file_is_named(bundle):
    onnx = bundle / "models" / "mlp" / "fp32.onnx"
    data = bytearray(onnx.read_bytes())
    data[-10] ^= 0xFF
    onnx.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match=r"modified \(sha256 differs from the manifest\): models/mlp/fp32.onnx"):
        open_bundle(bundle)


def test_missing_file_is_named(bundle):
    (bundle / "runtime" / "ensemble.py").unlink()
    with pytest.raises(ChecksumError, match="missing: runtime/ensemble.py"):
        open_bundle(bundle)


def test_newer_schema_refused(bundle):
    p = bundle / "manifest.json"
    d = json.loads(p.read_text())
    d["schema_version"] = 99
    p.write_text(json.dumps(d))
    with pytest.raises(SchemaVersionError, match="schema version 99"):
        open_bundle(bundle)


def test_not_a_bundle(tmp_path):
    with pytest.raises(BundleError, match="does not exist"):
        open_bundle(tmp_path / "nope")
    with pytest.raises(BundleError, match="not a ninefit bundle"):
        open_bundle(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        open_bundle(tmp_path)
