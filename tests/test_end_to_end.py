"""The digits example end to end through the real `ninefit` command, and bad inputs at run time."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from packager.cli import main
from tests.cli_checks import fails_cleanly

pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parents[1]


def ninefit(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "packager.cli", *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.slow
def test_digits_package_run_accuracy(digits_dir, tmp_path):
    bundle = tmp_path / "bundle"
    p = ninefit("package", str(digits_dir / "ninefit.toml"), "-o", str(bundle), "--no-wheels")
    assert p.returncode == 0, p.stderr
    assert "bundle written to" in p.stdout
    assert json.loads((bundle / "manifest.json").read_text())["target"] == "t4x2"  # the --target default, recorded
    sub = tmp_path / "submission.csv"
    r = ninefit("run", str(bundle), "--data", str(digits_dir / "data"), "--out", str(sub))
    assert r.returncode == 0, r.stderr
    assert "[cnn]" in r.stderr and "onnxruntime (CPUExecutionProvider)" in r.stderr  # progress + backend log
    from tests.fixtures.modules import load_module

    accuracy = load_module(digits_dir, "score").accuracy
    assert accuracy(sub, digits_dir / "data" / "test_labels.csv") >= 0.95
    rows = sub.read_text().splitlines()
    sample = (digits_dir / "data" / "sample_submission.csv").read_text().splitlines()
    assert rows[0] == "id,label" and len(rows) == len(sample)
    assert [r.split(",")[0] for r in rows] == [s.split(",")[0] for s in sample]  # sample order
    report = json.loads((tmp_path / "submission.run_report.json").read_text())
    assert {m["name"]: m["status"] for m in report["members"]} == {"cnn": "done", "mlp": "done"}


def run_fails(capsys, bundle: Path, data: Path, out: Path, *needles: str) -> None:
    fails_cleanly(capsys, main, ["run", str(bundle), "--data", str(data), "--out", str(out), "--quiet"], *needles)
    assert not out.exists(), "a failed run must not leave a submission"


@pytest.fixture
def data(digits_dir, tmp_path) -> Path:
    d = tmp_path / "data"
    shutil.copytree(digits_dir / "data", d)
    return d


@pytest.mark.parametrize("case, needles", [
    ("missing_column", ["missing 1 column(s)", "px17", "input 'pixels'"]),
    ("wrong_dtype", ["not numeric", "px3 ("]),
    ("ids_mismatch", ["not in the test data", "bogus"]),
    ("sample_columns", ["has columns ['id', 'digit']", "['id', 'label']"]),
    ("no_test", ["test data file", "not found"]),
])
def test_bad_data_at_run_time(capsys, digits_bundle, data, tmp_path, case, needles):
    test = data / "test.csv"
    if case == "missing_column":
        import pandas as pd

        pd.read_csv(test, dtype=str).drop(columns=["px17"]).to_csv(test, index=False)
    elif case == "wrong_dtype":
        lines = test.read_text().splitlines()
        lines[1] = lines[1].replace(",", ",x", 4).replace(",x", ",", 3)  # one cell of px3 becomes text
        test.write_text("\n".join(lines) + "\n")
    elif case == "ids_mismatch":
        sample = data / "sample_submission.csv"
        lines = sample.read_text().splitlines()
        lines[2] = "bogus,0"
        sample.write_text("\n".join(lines) + "\n")
    elif case == "sample_columns":
        sample = data / "sample_submission.csv"
        sample.write_text(sample.read_text().replace("id,label", "id,digit", 1))
    elif case == "no_test":
        test.unlink()
    run_fails(capsys, digits_bundle, data, tmp_path / "out" / "submission.csv", *needles)


def test_tampered_runtime_at_run_time(capsys, digits_bundle, data, tmp_path):
    """A tampered model costs only its member or rung (tests/runtime/test_run_damage.py); a tampered runtime is fatal."""
    bundle = tmp_path / "bundle"
    shutil.copytree(digits_bundle, bundle)
    (bundle / "runtime" / "output" / "ensemble.py").write_bytes(b"tampered")
    run_fails(capsys, bundle, data, tmp_path / "submission.csv", "vendored runtime is damaged",
              "runtime/output/ensemble.py modified")


def test_newer_schema_at_run_time(capsys, digits_bundle, data, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(digits_bundle, bundle)
    m = json.loads((bundle / "manifest.json").read_text())
    m["schema_version"] += 1
    (bundle / "manifest.json").write_text(json.dumps(m))
    run_fails(capsys, bundle, data, tmp_path / "submission.csv", "schema version", "Re-package")


def test_bad_arguments(capsys, digits_bundle, data, tmp_path):
    code = main(["run", str(digits_bundle), "--data", str(data), "--batch-size", "0"])
    assert code == 2 and "--batch-size 0" in capsys.readouterr().err
    code = main(["run", str(digits_bundle), "--data", str(data), "--backend", "tpu", "--out", str(tmp_path / "s.csv"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "no backend 'tpu'" in err and "onnxruntime" in err
