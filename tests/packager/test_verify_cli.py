"""`ninefit verify BUNDLE`: 0 when intact, 1 on any damage (naming the file and what it takes out), 2 when no bundle."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from packager.cli import main
from packager.cli.verify import DAMAGED_EXIT
from runtime.manifest import SCHEMA_VERSION
from tests.cli_checks import fails_cleanly
from tests.runtime.test_run_damage import damage

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def bundle(digits_bundle, tmp_path) -> Path:
    b = tmp_path / "bundle"
    shutil.copytree(digits_bundle, b)
    return b


def test_an_intact_bundle_verifies(digits_bundle, capsys):
    assert main(["verify", str(digits_bundle)]) == 0
    out = capsys.readouterr().out
    assert f"manifest schema {SCHEMA_VERSION} ('digits', 2 member(s)" in out and "intact: every file matches its sha256" in out


@pytest.mark.parametrize(("rel", "how", "lines"), [
    ("models/cnn/fp16.onnx", "modify", ["models/cnn/fp16.onnx: modified (sha256 differs from the manifest) -> "
                                        "variant 'fp16' of member 'cnn' (that rung is removed)",
                                        "a run would run member 'cnn' without its rung(s) fp16"]),
    ("models/mlp/fp32.onnx", "delete", ["models/mlp/fp32.onnx: missing -> member 'mlp' (removed from the run)",
                                        "a run would leave out member 'mlp'"]),
    ("runtime/run.py", "modify", ["runtime/run.py: modified", "a run would stop before anything runs (exit 2)"]),
    ("report.md", "delete", ["report.md: missing -> nothing the run reads"]),
])
def test_damage_is_named_with_what_it_affects(bundle, capsys, rel, how, lines):
    damage(bundle, rel, how)
    assert main(["verify", str(bundle)]) == DAMAGED_EXIT == 1
    out = capsys.readouterr().out
    assert "DAMAGED: 1 of" in out and "Re-upload the bundle exactly as `ninefit package` wrote it" in out
    for line in lines:
        assert line in out, out


def test_a_damaged_manifest_is_damage(bundle, capsys):
    (bundle / "manifest.json").write_text("{\"schema_version\": 1, \"members\": [")
    assert main(["verify", str(bundle)]) == 1
    out = capsys.readouterr().out
    assert "DAMAGED - its manifest cannot be trusted" in out and "is not valid JSON" in out


def test_no_bundle_is_a_usage_error(tmp_path, bundle, capsys):
    fails_cleanly(capsys, main, ["verify", str(tmp_path / "nope")], "bundle folder", "does not exist")
    fails_cleanly(capsys, main, ["verify", str(tmp_path)], "manifest.json not found", "is not a ninefit bundle")
    manifest = bundle / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "schema_version": 99}))
    fails_cleanly(capsys, main, ["verify", str(bundle)], "schema version 99")


def test_help_documents_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["verify", "--help"])
    out = capsys.readouterr().out
    assert "0 when the bundle is intact; 1 when any file is missing or modified" in " ".join(out.split())
