"""End to end on CPU: the three-member digits bundle run to a deadline, its costs set by the "slow" test backend.

The decisions are checked on a fake clock: the slow backend advances the run's
clock by each batch's cost instead of sleeping (``runtime.run(..., clock=)``,
:func:`tests.runtime.slow_backend.fake_time`), so which members fit, how many
are probed and which one is degraded follow from the costs alone, exactly, on
any machine. One run on the real clock (slow suite) shows the same run ending
before its limit with real sleeps, asserting only what holds on a busy machine.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from runtime.output.report import TIMEOUT
from runtime.run import RunOptions, run
from tests.fixtures.bundles import build_three, check_valid, read, with_profile
from tests.fixtures.clock import LaneClock
from tests.runtime import slow_backend

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


def fake_time_run(tmp_path, monkeypatch, bundle, digits_dir, config: dict, **options):
    """Run ``bundle`` on the slow backend with ``config``, on a fake clock that only its costs move."""
    monkeypatch.setenv(slow_backend.CONFIG_ENV, str(tmp_path / "slow.json"))
    slow_backend.write_config(tmp_path / "slow.json", **config)
    out = tmp_path / "out" / "submission.csv"
    options.setdefault("lanes", 1)  # these tests are about one lane's decisions (two lanes: test_run_lanes.py)
    clock = LaneClock()
    with slow_backend.fake_time(clock):
        report = run(bundle, digits_dir / "data", out,
                     RunOptions(backend="slow", progress=False, work_dir=tmp_path / "work", **options), clock=clock)
    return report, out


COSTS = {"cnn": {"fp32": 0.005, "fp16": 0.005}, "mlp": {"fp32": 0.005}, "cnn2": {"fp32": 0.005}}


@pytest.mark.parametrize("profiled", [True, False], ids=["profiled", "measured-live"])
def test_only_two_of_three_fit_the_limit(three_bundle, digits_dir, reference, tmp_path, monkeypatch, profiled):
    bundle = with_profile(three_bundle, tmp_path / "bundle", COSTS) if profiled else three_bundle
    # 2.7 s per member: two fit in 9 s - 1 s margin - 0.5 s reserve, three do not.
    report, out = fake_time_run(tmp_path, monkeypatch, bundle, digits_dir, {"s_per_row": {"*": 0.005}},
                                time_limit_s=9.0, margin_s=1.0, reserve_s=0.5)
    assert report.finished_at_s <= 9.0 - 1.0 - 0.5 and report.slack_s >= 1.5, report.table()
    st = {m.name: m.status for m in report.members}
    assert st["cnn"] == "done" and st["mlp"] == "done", report.table()
    # The time left after the two goes to a partial run of the third (its rows count), not wasted.
    assert st["cnn2"] == "partial" and 0 < report.member("cnn2").rows < 540, report.table()
    kinds = [d["decision"] for d in report.member("cnn2").decisions]
    assert "run partial" in kinds and kinds[-1] == "stop", report.table()
    # cnn2 ran until the next chunk would not have fit: less than one chunk (32 rows, 0.16 s) of time is idle.
    assert report.finished_at_s > 9.0 - 1.0 - 0.5 - 0.16, report.table()
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
    report, out = fake_time_run(tmp_path, monkeypatch, bundle, digits_dir, config, time_limit_s=10.0, margin_s=1.0)
    assert report.finished_at_s < 10.0 - 1.0, report.table()
    cnn = report.member("cnn")
    assert cnn.status == "degraded" and cnn.variants == ["fp32", "fp16"], report.table()
    assert any("cnn: degraded to fp16" in e for e in report.events)
    assert report.member("mlp").status == "done" and report.member("cnn2").status == "done"
    check_valid(out, digits_dir)


def test_a_member_that_raises_is_skipped_and_oom_halves_the_batch(three_bundle, digits_dir, tmp_path, monkeypatch):
    config = {"fail": {"mlp": "boom"}, "oom": {"cnn": 8}}
    report, out = fake_time_run(tmp_path, monkeypatch, three_bundle, digits_dir, config)
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
    report = run(three_bundle, digits_dir / "data", out, opts)  # the real clock: 100 s past a 50 s limit on any machine
    assert {m.status for m in report.members} == {"dropped"}
    assert check_valid(out, digits_dir) == read(digits_dir / "data" / "sample_submission.csv")
    assert report.failure == TIMEOUT and "limit is 50.0s" in report.failure_reason
    assert "ON KAGGLE THIS RUN WOULD FAIL: Notebook Timeout" in report.table()


@pytest.mark.slow
def test_on_the_real_clock_what_does_not_fit_is_left_out_and_the_run_ends_in_time(three_bundle, digits_dir, tmp_path,
                                                                                   monkeypatch):
    """The same run with real sleeps, checked by the wall clock.

    Only what a busy machine cannot change is asserted: the sleeps alone make
    three members (3 x 540 rows x 8 ms = 13 s) longer than the 9.5 s the limit
    leaves, so at least one is left out or cut short whatever the speed; the run
    ends before its 12 s limit (its 2 s margin is four times the jitter this
    run shows on an idle machine, for the final write and report under load);
    the submission is whole. Which members fit, and the probes, depend on the
    machine here: their exact values are checked on the fake clock above.
    """
    monkeypatch.setenv(slow_backend.CONFIG_ENV, str(tmp_path / "slow.json"))
    slow_backend.write_config(tmp_path / "slow.json", s_per_row={"*": 0.008})
    out = tmp_path / "out" / "submission.csv"
    start = time.time()
    report = run(three_bundle, digits_dir / "data", out, RunOptions(
        backend="slow", progress=False, start_time=start, work_dir=tmp_path / "work", time_limit_s=12.0, margin_s=2.0,
        reserve_s=0.5, lanes=1))
    wall = time.time() - start
    assert wall < 12.0 and report.finished_at_s < 12.0, report.table()
    statuses = [m.status for m in report.members]
    assert statuses.count("done") < 3 and set(statuses) <= {"done", "partial", "dropped", "stopped"}, report.table()
    assert report.covered_rows == 540 or "done" not in statuses, report.table()  # a member done covers every row
    assert report.failure == "", report.table()
    check_valid(out, digits_dir)
