"""Opening a bundle: checksums and schema version are checked before anything runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from runtime.bundle import BundleDamage, check_files, checksum_tree, open_bundle
from runtime.errors import BundleError, ChecksumError, SchemaVersionError
from runtime.manifest import DataSpec, InputSpec, Manifest, Member, SubmissionSpec, Variant

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
    (bundle / "runtime" / "output" / "ensemble.py").unlink()
    with pytest.raises(ChecksumError, match="missing: runtime/output/ensemble.py"):
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


def _member(name: str, *variants: Variant) -> Member:
    return Member(name=name, weight=1.0, inputs=(InputSpec("x", "float32", ("batch", 4)),), output="y", variants=variants)


def test_each_damaged_file_is_charged_to_what_it_belongs_to(tmp_path):
    """External data files travel with their model; a member's folder belongs to it; a shared file to both."""
    files = ["models/a/fp32.onnx", "models/a/fp32.onnx.data", "models/a/fp16.onnx", "models/a/fp16.onnx.data",
             "models/a/notes.txt", "models/b/fp32.onnx", "shared/weights.bin", "runtime/run.py", "report.md"]
    for rel in files:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    a = _member("a", Variant("fp32", "models/a/fp32.onnx", data_files=("models/a/fp32.onnx.data",)),
                Variant("fp16", "models/a/fp16.onnx", precision="fp16", data_files=("models/a/fp16.onnx.data",)),
                Variant("tta", "models/a/fp16.onnx", precision="fp16", tta=("none", "hflip"),
                        data_files=("models/a/fp16.onnx.data", "shared/weights.bin")))
    b = _member("b", Variant("fp32", "models/b/fp32.onnx", data_files=("shared/weights.bin",)))
    manifest = Manifest(name="t", members=(a, b), data=DataSpec("table", "test.csv", "id"),
                        submission=SubmissionSpec("id", ("y",)), files=checksum_tree(tmp_path))
    assert not check_files(tmp_path, manifest)

    def damaged(*rels: str) -> BundleDamage:
        for rel in rels:
            (tmp_path / rel).write_text("changed")
        try:
            return check_files(tmp_path, manifest)
        finally:
            for rel in rels:
                (tmp_path / rel).write_text(rel)

    d = damaged("models/a/fp16.onnx.data")
    assert d.removed_variants == {"a": ("fp16", "tta")} and d.removed_members == {} and not d.fatal
    assert [[v.name for v in m.variants] for m in d.usable(manifest).members] == [["fp32"], ["fp32"]]
    d = damaged("models/a/fp32.onnx.data")
    assert d.removed_members == {"a": "damaged bundle file: models/a/fp32.onnx.data modified"}
    assert damaged("models/a/notes.txt").removed_members.keys() == {"a"}
    d = damaged("shared/weights.bin")
    assert d.removed_members.keys() == {"b"} and d.removed_variants == {"a": ("tta",)}
    d = damaged("report.md")
    assert d and not d.removed_members and not d.removed_variants and "nothing the run reads" in d.lines()[0]
    assert damaged("runtime/run.py").fatal
    with pytest.raises(ChecksumError, match="vendored runtime is damaged"):
        (tmp_path / "runtime/run.py").unlink()
        open_bundle_with(tmp_path, manifest)


def open_bundle_with(root, manifest):
    (root / "manifest.json").write_text(manifest.to_json())
    return open_bundle(root, allow_damage=True)


def test_a_damaged_member_opens_only_when_damage_is_allowed(bundle):
    (bundle / "models" / "mlp" / "fp32.onnx").unlink()
    with pytest.raises(ChecksumError, match="missing: models/mlp/fp32.onnx"):
        open_bundle(bundle)
    b = open_bundle(bundle, allow_damage=True)
    assert b.damage.removed_members == {"mlp": "damaged bundle file: models/mlp/fp32.onnx missing"}
