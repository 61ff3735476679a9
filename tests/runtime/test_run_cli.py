"""``python -m runtime run`` flags for the deadline, and NINEFIT_PLUGINS."""

from __future__ import annotations

import json
import sys
import time

import pytest

from runtime.backends.registry import PLUGINS_ENV, load_plugins
from runtime.cli import main
from runtime.errors import BudgetError, UsageError
from runtime.run import RunOptions, run
from tests.cli_checks import fails_cleanly

pytestmark = pytest.mark.timeout(60)


def args(bundle, data, out, *extra):
    return ["run", str(bundle), "--data", str(data), "--out", str(out), "--quiet", *extra]


@pytest.mark.parametrize("limit", ["9h", "540m", "32400s", "8h60m"])
def test_run_with_a_time_limit(digits_bundle, digits_dir, tmp_path, capsys, limit):
    out = tmp_path / "submission.csv"
    start = time.time() - 12.5
    assert main(args(digits_bundle, digits_dir / "data", out, "--time-limit", limit, "--start-time", str(start))) == 0
    printed = capsys.readouterr().out
    # The margin: its floor (0.25 s + 1 % of 9 h); the chunks here are far too steady to raise it.
    assert "limit 9h00m00s (margin 5m24s" in printed and "ensemble weight delivered 100.0%" in printed
    report = json.loads((tmp_path / "submission.run_report.json").read_text())
    assert report["time_limit_s"] == 32400 and report["margin_s"] == pytest.approx(324.25)
    assert report["started_at_s"] >= 12.5 and report["slack_s"] > 32400 - 325 - 60
    assert [d["decision"] for d in report["members"][0]["decisions"]][0] == "probe"
    assert [m["status"] for m in report["members"]] == ["done", "done"]


def test_run_without_a_limit_and_with_a_margin(digits_bundle, digits_dir, tmp_path, capsys):
    out = tmp_path / "a.csv"
    assert main(args(digits_bundle, digits_dir / "data", out)) == 0
    assert "slack" not in capsys.readouterr().out
    out2 = tmp_path / "b.csv"
    assert main(args(digits_bundle, digits_dir / "data", out2, "--time-limit", "2m", "--margin", "10s",
                     "--work-dir", str(tmp_path / "w2"))) == 0
    assert "margin 10.0s" in capsys.readouterr().out
    assert out.read_bytes() == out2.read_bytes()


@pytest.mark.parametrize(("extra", "needle"), [
    (["--time-limit", "9 hours"], "cannot read duration '9 hours'"),
    (["--margin=-5m", "--time-limit", "1h"], "cannot read duration '-5m'"),
    (["--start-time", "yesterday"], "cannot read start time 'yesterday'"),
    (["--time-limit", "10s", "--margin", "10s"], "leave nothing of the 10.0s time limit"),
    (["--time-limit", "9"], "duration '9' has no unit; write the one you mean: 9h, 9m or 9s (9h is 540m or 32400s)"),
    (["--time-limit", "1h", "--margin", "30"], "duration '30' has no unit"),
    (["--time-limit", "1h", "--reserve", "2"], "duration '2' has no unit"),
    (["--time-limit", "0"], "time limit 0.0: expected a positive number"),
])
def test_bad_budget_flags_are_user_errors(digits_bundle, digits_dir, tmp_path, capsys, extra, needle):
    out = tmp_path / "submission.csv"
    fails_cleanly(capsys, main, args(digits_bundle, digits_dir / "data", out, *extra), needle)
    assert not out.exists()


def test_plugins_are_imported_and_bad_ones_are_user_errors(digits_bundle, digits_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "nf_plugin_probe", None)  # makes the import fail
    assert load_plugins({PLUGINS_ENV: ""}) == []
    assert load_plugins({PLUGINS_ENV: " tests.runtime.slow_backend , json"}) == ["tests.runtime.slow_backend", "json"]
    with pytest.raises(UsageError, match="not a module name"):
        load_plugins({PLUGINS_ENV: "tests/runtime/slow_backend.py"})
    monkeypatch.setenv(PLUGINS_ENV, "nf_plugin_probe")
    fails_cleanly(capsys, main, args(digits_bundle, digits_dir / "data", tmp_path / "s.csv"),
                  "cannot import plugin module 'nf_plugin_probe'", "PYTHONPATH")


def test_unknown_backend_is_a_user_error(digits_bundle, digits_dir, tmp_path, capsys):
    fails_cleanly(capsys, main, args(digits_bundle, digits_dir / "data", tmp_path / "s.csv", "--backend", "nope"), "no backend 'nope'")


def test_budget_error_from_the_library(digits_bundle, digits_dir, tmp_path):
    with pytest.raises(BudgetError, match="margin"):
        run(digits_bundle, digits_dir / "data", tmp_path / "s.csv", RunOptions(time_limit_s=5, margin_s=5))
    import numpy as np

    with pytest.raises(BudgetError, match=r"^margin -2.0194: expected a positive number of seconds$"):  # not np.float64(...)
        run(digits_bundle, digits_dir / "data", tmp_path / "s.csv", RunOptions(margin_s=np.float64(-2.0194)))


def test_exported_names_and_import_weight():
    import importlib
    import subprocess

    for name in ("run", "execute.executor", "execute.predict", "execute.checkpoint", "execute.memory", "output.report",
                 "schedule.costs", "schedule.budget"):
        mod = importlib.import_module(f"runtime.{name}")
        for attr in mod.__all__:
            assert hasattr(mod, attr), f"runtime.{name}.{attr}"
    run_module = importlib.import_module("runtime.run")  # (the attribute runtime.run is the function)
    # Used by the notebook generator and the packager's profiler: keep them.
    assert {"RunOptions", "RunReport", "run", "load_runner", "member_width", "predict_rows"} <= set(run_module.__all__)
    code = ("import sys, runtime.run, runtime.execute.executor, runtime.execute.checkpoint, runtime.execute.memory, runtime.schedule.costs, runtime.schedule.budget\n"
            "print(','.join(m for m in ('pandas', 'onnxruntime', 'psutil', 'pynvml', 'torch') if m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == ""


@pytest.mark.parametrize("threads", ["0", "-2"])
def test_threads_below_one_are_user_errors(digits_bundle, digits_dir, tmp_path, capsys, threads):
    out = tmp_path / "submission.csv"
    fails_cleanly(capsys, main, args(digits_bundle, digits_dir / "data", out, "--threads", threads),
                  f"--threads {threads}: expected a positive number of CPU threads")
    assert not out.exists()


def test_out_naming_a_folder_is_a_user_error(digits_bundle, digits_dir, tmp_path, capsys):
    out = tmp_path / "submission.csv"
    out.mkdir()
    fails_cleanly(capsys, main, args(digits_bundle, digits_dir / "data", out, "--work-dir", str(tmp_path / "w")),
                  f"{out}: Is a directory", "--out must name a file")
    assert out.is_dir() and not list(out.iterdir())


def test_unusable_work_dir_is_a_user_error(digits_bundle, digits_dir, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    out = tmp_path / "submission.csv"
    fails_cleanly(capsys, main, args(digits_bundle, digits_dir / "data", out, "--work-dir", str(blocker / "sub")),
                  f"error: {blocker / 'sub'}/", ": Not a directory.", "--work-dir a writable folder")
    assert not out.exists()


@pytest.mark.timeout(300)  # the session's digits bundle may be built here
def test_each_members_rows_per_second_is_printed_once(digits_bundle, digits_dir, tmp_path, capsys):
    """The final progress line and the table gave two different rows/s for one member (wall time with the
    warm-up batch, against the steady batches): the table's is the one figure now."""
    out = tmp_path / "submission.csv"
    assert main(["run", str(digits_bundle), "--data", str(digits_dir / "data"), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    finals = [line for line in captured.err.splitlines() if line.startswith("[") and " done in " in line]
    assert {line.split("]")[0][1:] for line in finals} == {"cnn", "mlp"}
    assert not [line for line in finals if "rows/s" in line], finals
    assert "rows/s" in captured.out.splitlines()[0]  # the table's header


def test_short_limits_are_printed_to_their_precision(digits_bundle, digits_dir, tmp_path, capsys):
    """``--time-limit 0.3s`` was printed as "limit 0s"."""
    out = tmp_path / "submission.csv"
    main(args(digits_bundle, digits_dir / "data", out, "--time-limit", "0.3s", "--margin", "50ms"))
    printed = capsys.readouterr().out
    assert "limit 0.30s (margin 50ms, reserve " in printed and "limit 0s" not in printed


def test_o_names_the_submission_as_for_package_and_notebook(digits_bundle, digits_dir, tmp_path, capsys):
    out = tmp_path / "named" / "mine.csv"
    assert main(["run", str(digits_bundle), "--data", str(digits_dir / "data"), "-o", str(out), "--quiet"]) == 0
    assert out.is_file() and (tmp_path / "named" / "mine.run_report.json").is_file()
    assert f"-> {out}" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["ninefit.toml", "notes.txt"])
def test_a_spec_given_for_the_bundle_is_named_as_a_file(digits_dir, tmp_path, capsys, name):
    given = digits_dir / "ninefit.toml" if name == "ninefit.toml" else tmp_path / name
    given.touch()
    err = fails_cleanly(capsys, main, ["run", str(given), "--data", str(digits_dir / "data"), "-o",
                                       str(tmp_path / "s.csv")], f"{given} is a file", "not a bundle folder",
                        "ninefit package ", " -o DIR")
    assert "does not exist" not in err
    if name == "ninefit.toml":
        assert f"`ninefit package {given} -o DIR`" in err and "(a spec, by its name)" in err


def test_quiet_prints_the_result_lines_only(digits_bundle, digits_dir, tmp_path, capsys):
    out = tmp_path / "submission.csv"
    assert main(args(digits_bundle, digits_dir / "data", out, "--time-limit", "2m")) == 0  # args() has --quiet
    captured = capsys.readouterr()
    assert captured.err == ""  # no progress, no facts of a healthy run
    lines = captured.out.splitlines()
    assert len(lines) == 4, captured.out
    assert lines[0].startswith("540/540 rows covered by a model") and lines[0].endswith(f"-> {out}")
    assert lines[1].startswith("limit 2m00s (margin ") and lines[2] == f"run report: {tmp_path / 'submission.run_report.json'}"
    assert lines[3].startswith(f"work folder: {tmp_path / 'submission.ninefit-work'} ")


def test_quiet_still_says_what_went_wrong(digits_bundle, digits_dir, tmp_path, capsys):
    out = tmp_path / "submission.csv"
    # Started 10 s ago with a 5 s limit: nothing may run; the members are dropped and the fallback written.
    code = main(args(digits_bundle, digits_dir / "data", out, "--time-limit", "5s", "--start-time", str(time.time() - 10)))
    captured = capsys.readouterr()
    assert code == 1 and out.is_file()
    err = captured.err.splitlines()
    assert err[0].startswith("ninefit: warning: 10.") and "past the 5.0s limit" in err[0], captured.err
    assert all(line.startswith(("ninefit: warning", "ninefit: cnn: dropped", "ninefit: mlp: dropped")) for line in err), err
    printed = captured.out.splitlines()
    assert printed[0].startswith("cnn: dropped: ") and printed[1].startswith("mlp: dropped: ")
    assert any(line.startswith("0/540 rows covered by a model") for line in printed)
    assert any(line.startswith("ON KAGGLE THIS RUN WOULD FAIL: Notebook Timeout") for line in printed), captured.out


@pytest.mark.timeout(120)
def test_the_machine_factor_says_it_rests_on_tiny_batches(digits_bundle, digits_dir, tmp_path, capsys, monkeypatch):
    """First batches under 20 ms: the factor is said to be a guess, in the report, its table and the log.

    The batches take 20 us a row on a fake clock (256 rows: 5 ms), so they are short on any machine; the
    digits members' real batches are too, but a busy machine can stall one past 20 ms.
    """
    import shutil

    from packager.estimate.measure.profile import ProfileOptions, profile_bundle, store_profile
    from tests.fixtures.clock import LaneClock
    from tests.runtime import slow_backend

    bundle = tmp_path / "profiled"
    shutil.copytree(digits_bundle, bundle)  # a profile is what the machine factor compares with
    store_profile(bundle, profile_bundle(bundle, digits_dir / "data", ProfileOptions(
        seconds_per_member=0.3, batch_sizes=(256,), startup=False, check_run=False)))
    monkeypatch.setenv(slow_backend.CONFIG_ENV, str(tmp_path / "slow.json"))
    slow_backend.write_config(tmp_path / "slow.json", s_per_row={"*": 2e-5})
    out = tmp_path / "submission.csv"
    clock = LaneClock()
    with slow_backend.fake_time(clock):
        report = run(bundle, digits_dir / "data", out, RunOptions(backend="slow", time_limit_s=120.0, lanes=1,
                                                                  progress=False), clock=clock)
    captured = capsys.readouterr()
    factor = json.loads((tmp_path / "submission.run_report.json").read_text())["machine_factor"]
    assert factor["value"] > 0 and set(factor["ratios"]) <= {"cnn", "mlp"} and factor["ratios"]
    assert factor["caveat"].startswith("noisy: first batch"), factor
    table = report.table()  # what `ninefit run` prints
    assert f"machine factor {factor['value']:.2f} (first batches: " in table and "is a guess" in table
    assert "machine factor" in captured.err and "(noisy: first batch" in captured.err
