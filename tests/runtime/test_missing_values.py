"""Non-finite inputs and outputs cost only their rows; the missing-value policy; an empty test table.

Everything through the command lines: ``ninefit package`` and ``python -m
runtime run`` (in-process, through their ``main``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from packager.cli import main as ninefit
from runtime.cli import main as runtime_main
from tests.cli_checks import fails_cleanly
from tests.fixtures.bundles import check_valid, read

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

#: Rows (0-based, of the test table) given a non-finite value, and in which column.
BAD = {3: ("px4", "nan"), 10: ("px5", ""), 50: ("px6", "nan"), 51: ("px4", ""), 200: ("px5", "inf"), 333: ("px39", "-inf")}


def edit_cells(csv_path: Path, cells: dict[int, tuple[str, str]]) -> list[str]:
    """Set ``{row: (column, text)}`` in a CSV; returns the ids of those rows."""
    lines = csv_path.read_text().splitlines()
    header = lines[0].split(",")
    ids = []
    for row, (column, text) in cells.items():
        parts = lines[row + 1].split(",")
        parts[header.index(column)] = text
        lines[row + 1] = ",".join(parts)
        ids.append(parts[0])
    csv_path.write_text("\n".join(lines) + "\n")
    return ids


def package(spec: Path, out: Path, capsys) -> None:
    code = ninefit(["package", str(spec), "-o", str(out), "--no-wheels", "--no-profile", "--kaggle-owner", "someone"])
    assert code == 0, capsys.readouterr().err


def run(bundle: Path, data: Path, out: Path, *extra: str) -> int:
    return runtime_main(["run", str(bundle), "--data", str(data), "--out", str(out), "--quiet", *extra])


@pytest.fixture
def work(digits_dir, tmp_path) -> Path:
    d = tmp_path / "digits"
    shutil.copytree(digits_dir, d)
    return d


def set_policy(spec: Path, data_lines: str = "", cnn_lines: str = "") -> None:
    text = spec.read_text()
    text = text.replace('sample_submission = "data/sample_submission.csv"\n',
                        'sample_submission = "data/sample_submission.csv"\n' + data_lines, 1)
    text = text.replace('name = "cnn"\n', 'name = "cnn"\n' + cnn_lines, 1)
    spec.write_text(text)


def test_nan_rows_cost_only_those_rows(work, digits_bundle, tmp_path, capsys):
    """6 rows of 540 with NaN / empty / inf cells: both members cover the other 534, as on clean data."""
    clean = tmp_path / "clean" / "submission.csv"
    assert run(digits_bundle, work / "data", clean) == 0  # the reference: the clean table
    capsys.readouterr()
    bad_ids = edit_cells(work / "data" / "test.csv", BAD)
    bundle = tmp_path / "bundle"
    package(work / "ninefit.toml", bundle, capsys)  # verification uses the rows with finite inputs
    verification = json.loads((bundle / "verification.json").read_text())
    assert all(c["passed"] for c in verification)
    assert "with finite inputs" in verification[0]["samples"]
    capsys.readouterr()

    out = tmp_path / "submission.csv"
    assert run(bundle, work / "data", out) == 0
    printed = capsys.readouterr()
    sub, ref = check_valid(out, work), read(clean)
    sample = read(work / "data" / "sample_submission.csv")
    assert {i: sub[i] for i in sub if i not in bad_ids} == {i: ref[i] for i in ref if i not in bad_ids}
    assert {i: sub[i] for i in bad_ids} == {i: sample[i] for i in bad_ids}  # no member covered them: fallback

    report = json.loads((tmp_path / "submission.run_report.json").read_text())
    assert report["covered_rows"] == 534
    for m in report["members"]:
        assert (m["status"], m["rows"], m["rows_skipped_input"], m["rows_nonfinite_output"]) == ("done", 534, 6, 0)
        assert m["missing_columns"] == {"px4": 2, "px5": 2, "px6": 1, "px39": 1}
    assert "cnn: non-finite inputs in px4 (2 rows), px5 (2 rows), px6 (1 row), px39 (1 row): 6 row(s) skipped" in printed.out
    assert "534/540 rows covered" in printed.out
    assert "cnn: 6 row(s) have non-finite inputs" in printed.err

    # A run killed after some chunks resumes to the same bytes; saved NaN rows stay skipped, not recomputed.
    work_dir = tmp_path / "submission.ninefit-work"
    chunks = sorted(work_dir.rglob("*.npy"))
    assert any(np.isnan(np.load(p)).all(axis=1).any() for p in chunks)
    chunks[0].unlink()
    again = tmp_path / "again" / "submission.csv"
    assert run(bundle, work / "data", again, "--work-dir", str(work_dir)) == 0
    assert again.read_bytes() == out.read_bytes()
    resumed = json.loads((again.parent / "submission.run_report.json").read_text())
    assert resumed["chunks_resumed"] == len(chunks) - 1
    assert [m["rows_skipped_input"] for m in resumed["members"]] == [6, 6]


def test_rows_one_member_skips_are_covered_by_the_other(work, tmp_path, capsys):
    """cnn fills (with 0), mlp skips: the 6 rows take cnn's prediction alone, renormalised per row."""
    edit_cells(work / "data" / "test.csv", BAD)
    set_policy(work / "ninefit.toml", cnn_lines='missing = "fill"\nfill_value = 0\n')
    bundle = tmp_path / "bundle"
    package(work / "ninefit.toml", bundle, capsys)
    out = tmp_path / "submission.csv"
    assert run(bundle, work / "data", out) == 0
    report = json.loads((tmp_path / "submission.run_report.json").read_text())
    assert report["covered_rows"] == 540
    cnn, mlp = report["members"]
    assert (cnn["rows"], cnn["missing_policy"], cnn["rows_skipped_input"]) == (540, "fill", 0)
    assert (mlp["rows"], mlp["missing_policy"], mlp["rows_skipped_input"]) == (534, "skip", 6)
    assert "filled (missing = fill)" in capsys.readouterr().out

    # Filling is exactly the model on the table with zeros written in those cells.
    zeros = tmp_path / "zeros"
    shutil.copytree(work / "data", zeros)
    edit_cells(zeros / "test.csv", {row: (column, "0") for row, (column, _) in BAD.items()})
    cnn_only = work / "cnn-only.toml"
    text = (work / "ninefit.toml").read_text()
    cnn_only.write_text(text[:text.index('[[model]]\nname = "mlp"')])
    package(cnn_only, tmp_path / "cnn-bundle", capsys)
    for data, name in ((work / "data", "filled.csv"), (zeros, "zeros.csv")):
        assert run(tmp_path / "cnn-bundle", data, tmp_path / name) == 0
    assert (tmp_path / "filled.csv").read_bytes() == (tmp_path / "zeros.csv").read_bytes()
    mixed, filled = read(out), read(tmp_path / "filled.csv")
    bad_ids = [i for n, i in enumerate(mixed) if n in BAD]
    assert {i: mixed[i] for i in bad_ids} == {i: filled[i] for i in bad_ids}


def test_policy_error_stops_package_and_run(work, digits_dir, tmp_path, capsys):
    set_policy(work / "ninefit.toml", data_lines='missing = "error"\n')
    bundle = tmp_path / "bundle"
    package(work / "ninefit.toml", bundle, capsys)  # the public table is clean here
    bad_ids = edit_cells(work / "data" / "test.csv", BAD)
    out = tmp_path / "submission.csv"
    fails_cleanly(capsys, runtime_main, ["run", str(bundle), "--data", str(work / "data"), "--out", str(out)],
                        "non-finite values", "6 of 540 row(s)", "model 'cnn'", "px4 (2 rows)", "px39 (1 row)",
                        f"{bad_ids[0]}, {bad_ids[1]}", 'missing = "error"', 'missing = "skip"')
    assert not out.exists()
    again = tmp_path / "again"
    fails_cleanly(capsys, ninefit, ["package", str(work / "ninefit.toml"), "-o", str(again)],
                  "non-finite values", "px5 (2 rows)", bad_ids[2])
    assert not again.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".again.")]


def test_nan_outputs_drop_only_their_rows(work, tmp_path, capsys):
    """A model that returns NaN for some rows (finite inputs): only those rows lose it."""
    (work / "nanmodel.py").write_text(  # the project's mlp, NaN where px0 is brighter than any real pixel
        "from models import make_mlp\n"
        "from tests.fixtures.models import nan_above\n\n"
        "def make():\n"
        "    return nan_above(make_mlp(), threshold=100.0)\n"
    )
    import torch

    model_sd = torch.load(work / "checkpoints" / "mlp.pt")
    torch.save({f"inner.{k}": v for k, v in model_sd.items()}, work / "checkpoints" / "nan.pt")
    spec = work / "ninefit.toml"
    text = spec.read_text()
    mlp = text[text.index('[[model]]\nname = "mlp"'):]
    spec.write_text(text + "\n" + mlp.replace('name = "mlp"', 'name = "nanny"')
                    .replace('factory = "models:make_mlp"', 'factory = "nanmodel:make"').replace("mlp.pt", "nan.pt"))
    rows = {300: ("px0", "1000"), 301: ("px0", "1000"), 450: ("px0", "1000")}  # after the rows verified
    edit_cells(work / "data" / "test.csv", rows)
    bundle = tmp_path / "bundle"
    package(spec, bundle, capsys)
    out = tmp_path / "submission.csv"
    assert run(bundle, work / "data", out) == 0
    printed = capsys.readouterr()
    report = json.loads((tmp_path / "submission.run_report.json").read_text())
    assert report["covered_rows"] == 540
    nanny = report["members"][2]
    assert (nanny["status"], nanny["rows"], nanny["rows_nonfinite_output"]) == ("done", 537, 3)
    assert "nanny: non-finite outputs in 3 row(s)" in printed.out
    assert "nanny/fp32: non-finite outputs in row(s) 300, 301, 450" in printed.err
    check_valid(out, work)

    # Not one finite output: that is a broken member, and the report says so.
    edit_cells(work / "data" / "test.csv", {row: ("px0", "1000") for row in range(540)})
    assert run(bundle, work / "data", tmp_path / "all" / "submission.csv") == 0
    nanny = json.loads((tmp_path / "all" / "submission.run_report.json").read_text())["members"][2]
    assert (nanny["status"], nanny["rows"]) == ("failed", 0)
    assert "non-finite outputs in every one of the 540 rows" in nanny["reason"]


def test_empty_test_table(work, digits_bundle, tmp_path, capsys):
    for name in ("test.csv", "sample_submission.csv"):
        path = work / "data" / name
        path.write_text(path.read_text().splitlines()[0] + "\n")
    out = tmp_path / "bundle"
    fails_cleanly(capsys, ninefit, ["package", str(work / "ninefit.toml"), "-o", str(out)], "the test table has no rows")
    assert not out.exists()
    sub = tmp_path / "submission.csv"
    fails_cleanly(capsys, runtime_main, ["run", str(digits_bundle), "--data", str(work / "data"), "--out", str(sub)],
                  "the test table has no rows")
    assert not sub.exists()


@pytest.mark.parametrize("data_lines, cnn_lines, needle", [
    ('missing = "fill"\n', "", 'missing = "fill" needs fill_value'),
    ('fill_value = 1\n', "", "fill_value = 1 is only used with missing = \"fill\""),
    ('missing = "drop"\n', "", "`missing` in [data] is \"drop\" (a string); expected one of: \"skip\", \"error\", \"fill\""),
    ("", 'missing = "fill"\nfill_value = nan\n', "`fill_value` in [[model]] 'cnn' is nan"),
    ('missing = "fill"\nfill_value = -1\n', 'fill_value = 2\n', ""),  # a member's own fill value: fine
])
def test_policy_keys_are_checked(work, tmp_path, capsys, data_lines, cnn_lines, needle):
    from packager.spec import load_spec

    set_policy(work / "ninefit.toml", data_lines, cnn_lines)
    if needle:
        fails_cleanly(capsys, ninefit, ["package", str(work / "ninefit.toml"), "-o", str(tmp_path / "b")], needle)
    else:
        spec = load_spec(work / "ninefit.toml")
        assert (spec.data.missing, spec.data.fill_value) == ("fill", -1.0)
        assert [(m.missing, m.fill_value) for m in spec.models] == [("", 2.0), ("", None)]
