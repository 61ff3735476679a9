"""A damaged bundle file costs only what it belongs to: the run goes on, writes its submission and says so.

Through ``python -m runtime run``: a damaged rung is left out, a damaged member
is left out, every member damaged still writes the fallback; a damaged
runtime or manifest stops the run before anything is written (exit 2).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from runtime.cli import main
from tests.cli_checks import fails_cleanly
from tests.fixtures.bundles import read
from tests.runtime.test_run import with_fallback

pytestmark = pytest.mark.timeout(120)


def damage(bundle: Path, rel: str, how: str = "modify") -> None:
    path = bundle / rel
    if how == "delete":
        path.unlink()
    else:
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))


@pytest.fixture
def bundle(digits_bundle, tmp_path) -> Path:
    b = tmp_path / "bundle"
    shutil.copytree(digits_bundle, b)
    return b


def run_cli(bundle: Path, digits_dir: Path, out: Path, capsys, *extra: str) -> tuple[int, str, str, dict]:
    code = main(["run", str(bundle), "--data", str(digits_dir / "data"), "--out", str(out), "--quiet", *extra])
    captured = capsys.readouterr()
    report = json.loads(out.with_name(f"{out.stem}.run_report.json").read_text())
    return code, captured.out, captured.err, report


def test_a_damaged_rung_removes_that_rung_only(bundle, digits_bundle, digits_dir, tmp_path, capsys):
    intact = tmp_path / "intact.csv"
    assert main(["run", str(digits_bundle), "--data", str(digits_dir / "data"), "--out", str(intact), "--quiet"]) == 0
    capsys.readouterr()
    damage(bundle, "models/cnn/fp16.onnx")
    out = tmp_path / "submission.csv"
    code, printed, err, report = run_cli(bundle, digits_dir, out, capsys)
    assert code == 1  # a submission, but not from the bundle that was packaged
    assert out.read_bytes() == intact.read_bytes()  # no limit: the full rungs ran, as with the intact bundle
    assert "DAMAGED BUNDLE FILE models/cnn/fp16.onnx: modified" in err and "variant 'fp16' of member 'cnn'" in err
    assert [(m["name"], m["status"]) for m in report["members"]] == [("cnn", "done"), ("mlp", "done")]
    assert report["damage"] == [{"file": "models/cnn/fp16.onnx", "problem": "modified (sha256 differs from the manifest)",
                                 "effect": "variant 'fp16' of member 'cnn' (that rung is removed)"}]
    assert "DAMAGED BUNDLE: 1 file(s)" in printed and "models/cnn/fp16.onnx" in printed


@pytest.mark.parametrize("how", ["modify", "delete"])
def test_a_damaged_member_removes_that_member_and_the_run_goes_on(bundle, digits_dir, tmp_path, capsys, how):
    damage(bundle, "models/mlp/fp32.onnx", how)
    out = tmp_path / "submission.csv"
    code, printed, err, report = run_cli(bundle, digits_dir, out, capsys)
    assert code == 1
    problem = "missing" if how == "delete" else "modified"
    assert f"DAMAGED BUNDLE FILE models/mlp/fp32.onnx: {problem}" in err and "member 'mlp' (removed from the run)" in err
    cnn, mlp = report["members"]
    assert cnn["status"] == "done" and cnn["rows"] == 540
    assert mlp["status"] == "failed" and mlp["reason"] == f"damaged bundle file: models/mlp/fp32.onnx {problem}"
    assert report["covered_rows"] == 540 and report["weight_delivered"] == pytest.approx(0.6)  # cnn's weight alone
    assert len(read(out)) == 540
    assert "damaged bundle file: models/mlp/fp32.onnx" in printed and "DAMAGED BUNDLE" in printed


def test_a_damaged_base_model_removes_the_member_even_with_an_intact_cheaper_rung(bundle, digits_dir, tmp_path, capsys):
    damage(bundle, "models/cnn/fp32.onnx")
    code, _printed, _err, report = run_cli(bundle, digits_dir, tmp_path / "submission.csv", capsys)
    assert code == 1
    assert [m["status"] for m in report["members"]] == ["failed", "done"]


def test_every_member_damaged_still_writes_the_fallback(digits_bundle, digits_dir, tmp_path, capsys):
    ids = list(read(digits_dir / "data" / "sample_submission.csv"))
    bundle = with_fallback(digits_bundle, tmp_path / "bundle", {i: "7" for i in ids})
    damage(bundle, "models/cnn/fp32.onnx")
    damage(bundle, "models/mlp/fp32.onnx", "delete")
    out = tmp_path / "submission.csv"
    code, printed, err, report = run_cli(bundle, digits_dir, out, capsys)
    assert code == 1
    assert set(read(out).values()) == {"7"} and list(read(out)) == ids  # the fallback, in the sample's order
    assert [m["status"] for m in report["members"]] == ["failed", "failed"] and report["covered_rows"] == 0
    assert "no member could run: every member's files are damaged" in printed
    assert err.count("DAMAGED BUNDLE FILE") == 2


def test_a_damaged_fallback_gives_the_sample_values(digits_bundle, digits_dir, tmp_path, capsys):
    sample = read(digits_dir / "data" / "sample_submission.csv")
    bundle = with_fallback(digits_bundle, tmp_path / "bundle", {i: "7" for i in sample})
    damage(bundle, "fallback.csv")
    damage(bundle, "models/cnn/fp32.onnx")
    damage(bundle, "models/mlp/fp32.onnx")
    out = tmp_path / "submission.csv"
    code, _printed, err, _report = run_cli(bundle, digits_dir, out, capsys)
    assert code == 1 and read(out) == sample
    assert "fallback.csv: modified" in err and "the fallback (rows no member covers get the sample" in err


def test_a_damaged_runtime_stops_the_run(bundle, digits_dir, tmp_path, capsys):
    damage(bundle, "runtime/output/ensemble.py", "delete")
    out = tmp_path / "submission.csv"
    fails_cleanly(capsys, main, ["run", str(bundle), "--data", str(digits_dir / "data"), "--out", str(out)],
                  "its vendored runtime is damaged (runtime/output/ensemble.py missing)", "Re-upload the bundle")
    assert not out.exists()


@pytest.mark.parametrize(("edit", "needle"), [
    (lambda text: text[:-20], "is not valid JSON"),
    (lambda text: json.dumps({**json.loads(text), "files": {}}), "lists no files"),
    (lambda text: text.replace('"models/mlp/fp32.onnx"', '"models/mlp/other.onnx"', 1),
     "has no checksum for models/mlp/fp32.onnx (member 'mlp')"),
])
def test_a_damaged_manifest_stops_the_run(bundle, digits_dir, tmp_path, capsys, edit, needle):
    manifest = bundle / "manifest.json"
    manifest.write_text(edit(manifest.read_text()))
    out = tmp_path / "submission.csv"
    fails_cleanly(capsys, main, ["run", str(bundle), "--data", str(digits_dir / "data"), "--out", str(out)], needle)
    assert not out.exists()
