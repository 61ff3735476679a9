"""End to end on CPU: the three-member digits bundle, slowed by the "slow" test
backend so that what fits a limit is set by the test, checked by the wall clock."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from runtime.output.report import TIMEOUT
from runtime.run import RunOptions, run
from tests.runtime import slow_backend
from tests.runtime.deadline_fixtures import build_three, check_valid, read, with_profile

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="session")
def three_bundle(digits_dir, tmp_path_factory) -> Path:
    return build_three(digits_dir, tmp_path_factory.mktemp("three"))


@pytest.fixture(scope="session")
def reference(digits_bundle, digits_dir, tmp_path_factory) -> dict[str, str]:
    """Labels of the plain two-member digits bundle (cnn 0.6 + mlp 0.4), run with no limit."""
    out = tmp_path_factory.mktemp("reference") / "submission.csv"
    run(digits_bundle, digits_dir / "data", out, RunOptions(progress=False))
    return read(out)


def slow_run(tmp_path, monkeypatch, bundle, digits_dir, config: dict, **options):
    monkeypatch.setenv(slow_backend.CONFIG_ENV, str(tmp_path / "slow.json"))
    slow_backend.write_config(tmp_path / "slow.json", **config)
    out = tmp_path / "out" / "submission.csv"
    start = time.time()
    options.setdefault("lanes", 1)  # these tests are about one lane's decisions (two lanes: test_run_lanes.py)
    opts = RunOptions(backend="slow", progress=False, start_time=start, work_dir=tmp_path / "work", **options)
    report = run(bundle, digits_dir / "data", out, opts)
    return report, time.time() - start, out


COSTS = {"cnn": {"fp32": 0.005, "fp16": 0.005}, "mlp": {"fp32": 0.005}, "cnn2": {"fp32": 0.005}}


@pytest.mark.parametrize("profiled", [True, False], ids=["profiled", "measured-live"])
def test_only_two_of_three_fit_the_limit(three_bundle, digits_dir, reference, tmp_path, monkeypatch, profiled):
    bundle = with_profile(three_bundle, tmp_path / "bundle", COSTS) if profiled else three_bundle
    # 2.7 s per member: two fit in 9 s - 1 s margin - 0.5 s reserve, three do not. The reserve is fixed
    # above its 0.2 s floor so that the final write on a busy 2-core CI machine never reaches the margin.
    report, wall, out = slow_run(tmp_path, monkeypatch, bundle, digits_dir, {"s_per_row": {"*": 0.005}},
                                 time_limit_s=9.0, margin_s=1.0, reserve_s=0.5)
    assert wall < 9.0, report.table()
    assert report.finished_at_s < 9.0 - 1.0 and report.slack_s > 1.0
    st = {m.name: m.status for m in report.members}
    assert st["cnn"] == "done" and st["mlp"] == "done", report.table()
    # The time left after the two goes to a partial run of the third (its rows count), not wasted.
    assert st["cnn2"] == "partial" and 0 < report.member("cnn2").rows < 540, report.table()
    kinds = [d["decision"] for d in report.member("cnn2").decisions]
    assert "run partial" in kinds and kinds[-1] == "stop", report.table()
    probes = sum("measured" in e for e in report.events)
    assert probes == (1 if profiled else 3)  # the probe share (10 % of 9 s) fits one profiled member's probe
    sub = check_valid(out, digits_dir)
    if profiled:  # the two best, and cnn2 (the cnn's checkpoint again) on part of the rows
        agree = sum(sub[i] == reference[i] for i in sub) / len(sub)
        assert agree > 0.97
    assert report.failure == ""
    saved = json.loads((out.parent / "submission.run_report.json").read_text())
    assert saved["members"][2]["status"] == st["cnn2"] and saved["slack_s"] == pytest.approx(report.slack_s)


def test_a_member_slowing_down_mid_run_is_degraded_in_time(three_bundle, digits_dir, tmp_path, monkeypatch):
    costs = {"cnn": {"fp32": 0.004, "fp16": 0.001}, "mlp": {"fp32": 0.002}, "cnn2": {"fp32": 0.002}}
    bundle = with_profile(three_bundle, tmp_path / "bundle", costs)
    config = {"s_per_row": {"cnn/fp32": 0.004, "cnn/fp16": 0.001, "*": 0.002},
              "slowdown": {"cnn/fp32": {"after_rows": 128, "factor": 10}}}
    # Everything fits at the profiled speed (4.3 s); after 128 rows cnn's fp32 needs 16 s more.
    report, wall, out = slow_run(tmp_path, monkeypatch, bundle, digits_dir, config, time_limit_s=10.0, margin_s=1.0)
    assert wall < 10.0, report.table()
    cnn = report.member("cnn")
    assert cnn.status in ("degraded", "partial"), report.table()
    assert cnn.status == "degraded" and cnn.variants == ["fp32", "fp16"], report.table()
    assert any("cnn: degraded to fp16" in e for e in report.events)
    assert report.member("mlp").status == "done" and report.member("cnn2").status == "done"
    check_valid(out, digits_dir)


def test_a_member_that_raises_is_skipped_and_oom_halves_the_batch(three_bundle, digits_dir, tmp_path, monkeypatch):
    config = {"fail": {"mlp": "boom"}, "oom": {"cnn": 8}}
    report, _, out = slow_run(tmp_path, monkeypatch, three_bundle, digits_dir, config)
    mlp, cnn = report.member("mlp"), report.member("cnn")
    assert mlp.status == "failed" and "boom" in mlp.reason and mlp.rows == 0
    assert (cnn.status, cnn.batch_size, cnn.oom_retries) == ("done", 8, 2)
    assert report.member("cnn2").status == "done"
    assert report.covered_rows == 540 and report.failure == ""
    assert report.weight_delivered == pytest.approx(0.8 / 1.2)
    check_valid(out, digits_dir)
    assert "failed" in report.table() and "boom" in report.table()


def test_past_the_deadline_only_the_fallback_is_written(three_bundle, digits_dir, tmp_path, monkeypatch):
    monkeypatch.setenv(slow_backend.CONFIG_ENV, str(tmp_path / "slow.json"))
    slow_backend.write_config(tmp_path / "slow.json")
    out = tmp_path / "submission.csv"
    opts = RunOptions(backend="slow", progress=False, start_time=time.time() - 100, time_limit_s=50, work_dir=tmp_path / "w")
    report = run(three_bundle, digits_dir / "data", out, opts)
    assert {m.status for m in report.members} == {"dropped"}
    assert check_valid(out, digits_dir) == read(digits_dir / "data" / "sample_submission.csv")
    assert report.failure == TIMEOUT and "limit is 50.0s" in report.failure_reason
    assert "ON KAGGLE THIS RUN WOULD FAIL: Notebook Timeout" in report.table()
