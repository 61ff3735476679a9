"""Where a run's outputs go: the report and work folder are named after --out or set by flags, printed at the end;
a resume says what it resumed from, --fresh starts over; outputs get the modes of plainly created files."""

from __future__ import annotations

import json
import os
import stat

import pytest

from runtime.cli import main
from runtime.fileio import atomic_write
from tests.cli_checks import fails_cleanly

pytestmark = pytest.mark.timeout(120)


def run_args(bundle, digits_dir, out, *extra):
    return ["run", str(bundle), "--data", str(digits_dir / "data"), "--out", str(out), "--quiet", *extra]


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_report_and_work_folder_are_named_after_out(digits_bundle, digits_dir, tmp_path, capsys):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    assert main(run_args(digits_bundle, digits_dir, a)) == 0
    printed = capsys.readouterr().out
    assert f"run report: {tmp_path / 'a.run_report.json'}" in printed
    assert f"work folder: {tmp_path / 'a.ninefit-work'}" in printed
    assert main(run_args(digits_bundle, digits_dir, b)) == 0
    capsys.readouterr()
    for name in ("a", "b"):  # two submissions in one folder share neither report nor checkpoints
        report = json.loads((tmp_path / f"{name}.run_report.json").read_text())
        assert report["submission"] == str(tmp_path / f"{name}.csv")
        assert report["report_path"] == str(tmp_path / f"{name}.run_report.json")
        assert report["chunks_resumed"] == 0
        assert list((tmp_path / f"{name}.ninefit-work" / "checkpoints").glob("*/*/*/*.npy"))
    assert not (tmp_path / "run_report.json").exists() and not (tmp_path / "ninefit-work").exists()


def test_report_and_work_folder_set_by_flags(digits_bundle, digits_dir, tmp_path, capsys):
    report, work = tmp_path / "reports" / "r.json", tmp_path / "w"
    assert main(run_args(digits_bundle, digits_dir, tmp_path / "s.csv", "--report", str(report),
                         "--work-dir", str(work))) == 0
    printed = capsys.readouterr().out
    assert f"run report: {report}" in printed and f"work folder: {work}" in printed
    assert json.loads(report.read_text())["covered_rows"] == 540
    assert list(work.glob("checkpoints/*/*/*/*.npy"))
    assert not (tmp_path / "s.run_report.json").exists() and not (tmp_path / "s.ninefit-work").exists()


def test_a_report_over_the_submission_is_a_user_error(digits_bundle, digits_dir, tmp_path, capsys):
    out = tmp_path / "s.csv"
    fails_cleanly(capsys, main, run_args(digits_bundle, digits_dir, out, "--report", str(out)),
                  "would overwrite the submission")
    assert not out.exists()


def test_a_resume_says_from_where_and_fresh_starts_over(digits_bundle, digits_dir, tmp_path, capsys):
    out = tmp_path / "s.csv"
    assert main(run_args(digits_bundle, digits_dir, out)) == 0
    first = out.read_bytes()
    capsys.readouterr()
    assert main(run_args(digits_bundle, digits_dir, out)) == 0
    err = capsys.readouterr().err
    work = tmp_path / "s.ninefit-work"
    assert f"resuming from the checkpoints in {work / 'checkpoints'}/" in err
    assert "chunks done per member: cnn 3/3, mlp 3/3" in err and "rerun with --fresh" in err
    report = json.loads((tmp_path / "s.run_report.json").read_text())
    assert report["chunks_resumed"] == 6 and out.read_bytes() == first

    assert main(run_args(digits_bundle, digits_dir, out, "--fresh")) == 0
    err = capsys.readouterr().err
    assert f"--fresh: discarded 6 checkpointed chunk(s) in {work / 'checkpoints'}" in err and "resuming" not in err
    report = json.loads((tmp_path / "s.run_report.json").read_text())
    assert report["chunks_resumed"] == 0 and {m["chunks_computed"] for m in report["members"]} == {3}
    assert out.read_bytes() == first


def test_outputs_are_readable_like_any_file(digits_bundle, digits_dir, tmp_path, capsys, umask_022):
    out = tmp_path / "s.csv"
    assert main(run_args(digits_bundle, digits_dir, out)) == 0
    assert mode(out) == mode(tmp_path / "s.run_report.json") == 0o644
    assert {mode(p) for p in (tmp_path / "s.ninefit-work").rglob("*.npy")} == {0o644}


def test_atomic_write_follows_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        path = atomic_write(tmp_path / "x.txt", "hello")
    finally:
        os.umask(old)
    assert mode(path) == 0o640 and path.read_text() == "hello"
