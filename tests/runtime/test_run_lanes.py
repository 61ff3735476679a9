"""Whole runs on two lanes: what one lane cannot fit in the limit, two do; a run
killed on 2 lanes resumes on 1 (and the other way round) and writes the same bytes.

Which members fit is checked on a fake clock on which the lanes' sleeps overlap
(:class:`tests.fixtures.clock.LaneClock`), so it follows from the costs alone;
one run on the real clock (slow suite) shows two lanes doing more than one
lane's sleeps could, asserting only what holds on a busy machine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from runtime.run import RunOptions, run
from tests.fixtures.bundles import MEMBERS, build_three, check_valid
from tests.fixtures.clock import LaneClock
from tests.runtime import slow_backend
from tests.runtime.test_run_resume import REPO, chunk_files, command, environment


@pytest.fixture(scope="session")
def three_bundle(digits_dir, tmp_path_factory):
    return build_three(digits_dir, tmp_path_factory.mktemp("three-lanes"))


def fake_time_run(bundle, digits_dir, tmp_path, monkeypatch, lanes: int):
    """As test_run_deadline's "only two of three fit": 2.7 s per member, a 9 s limit, 1 s margin; on fake time."""
    monkeypatch.setenv(slow_backend.CONFIG_ENV, str(tmp_path / "slow.json"))
    slow_backend.write_config(tmp_path / "slow.json", s_per_row={"*": 0.005})
    out = tmp_path / f"lanes{lanes}" / "submission.csv"
    clock = LaneClock(lanes=lanes)
    with slow_backend.fake_time(clock):
        report = run(bundle, digits_dir / "data", out, RunOptions(
            backend="slow", progress=False, work_dir=tmp_path / f"work{lanes}", time_limit_s=9.0, margin_s=1.0,
            lanes=lanes, threads=1), clock=clock)
    return report, out


@pytest.mark.timeout(120)
def test_two_lanes_fit_all_three_members_where_one_lane_fits_two(three_bundle, digits_dir, tmp_path, monkeypatch):
    one, _ = fake_time_run(three_bundle, digits_dir, tmp_path, monkeypatch, lanes=1)
    assert [m.status for m in one.members][:2] == ["done", "done"] and one.member("cnn2").status != "done", one.table()
    report, out = fake_time_run(three_bundle, digits_dir, tmp_path, monkeypatch, lanes=2)
    assert [m.status for m in report.members] == ["done"] * 3, report.table()
    # 8.1 s of work over two lanes: each busy nearly all of the run, which ends near half of one lane's 8.1 s.
    assert report.finished_at_s < 9.0 - 1.0 and report.finished_at_s < 0.55 * 3 * 2.7, report.table()
    assert [lane["name"] for lane in report.lanes] == ["cpu0", "cpu1"]
    for lane in report.lanes:
        assert lane["threads"] == 1 and lane["busy_share"] > 0.9 and lane["rows"] > 0, report.table()
        assert all(s["end_s"] >= s["start_s"] for s in lane["steps"])
    assert sum(lane["rows"] for lane in report.lanes) == 3 * 540  # every row of every member, once (probe included)
    assert "2 lanes (--lanes)" in report.table() and "lane cpu1: busy" in report.table()
    saved = json.loads((out.parent / "submission.run_report.json").read_text())
    assert saved["lanes"][0]["steps"] and saved["lane_rule"] == "--lanes"
    check_valid(out, digits_dir)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_on_the_real_clock_two_lanes_do_more_than_one_lanes_sleeps_could(three_bundle, digits_dir, tmp_path,
                                                                          monkeypatch):
    """Two lanes with real sleeps, checked by the wall clock.

    Each row sleeps 10 ms: in the 13 s the limit leaves (15 s, less a 1.5 s
    margin and a 0.5 s reserve) one lane's sleeps cover 1,300 rows at most, the
    three members have 1,620. More rows than that shows the lanes slept at once,
    whatever the machine's speed; the two lanes need about 8.1 s for them all,
    so a busy machine has 5 s of overhead to spend before the bound is missed.
    The run ends before its limit, and the submission is whole.
    """
    monkeypatch.setenv(slow_backend.CONFIG_ENV, str(tmp_path / "slow.json"))
    slow_backend.write_config(tmp_path / "slow.json", s_per_row={"*": 0.01})
    out = tmp_path / "out" / "submission.csv"
    start = time.time()
    report = run(three_bundle, digits_dir / "data", out, RunOptions(
        backend="slow", progress=False, start_time=start, work_dir=tmp_path / "work", time_limit_s=15.0,
        margin_s=1.5, reserve_s=0.5, lanes=2, threads=1))
    wall = time.time() - start
    assert wall < 15.0 and report.finished_at_s < 15.0, report.table()
    rows = [lane["rows"] for lane in report.lanes]
    assert len(rows) == 2 and min(rows) > 0 and sum(rows) > (15.0 - 1.5 - 0.5) / 0.01, report.table()
    assert report.failure == "", report.table()
    check_valid(out, digits_dir)


def _kill_mid_run(three_bundle, digits_dir, tmp_path, name: str, lanes: int):
    env, log = environment(tmp_path, name)
    out, work = tmp_path / name / "submission.csv", tmp_path / f"w-{name}"
    proc = subprocess.Popen([*command(three_bundle, digits_dir, out, work), "--lanes", str(lanes)], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while sum(map(len, chunk_files(work).values())) < 20 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    saved = chunk_files(work)
    assert 20 <= sum(map(len, saved.values())) < 3 * 17
    log.unlink()
    return out, work, saved


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_killed_on_two_lanes_resumes_on_one_and_back_byte_identical(three_bundle, digits_dir, tmp_path):
    env, _ = environment(tmp_path, "reference")
    ref = tmp_path / "reference" / "submission.csv"
    done = subprocess.run([*command(three_bundle, digits_dir, ref, tmp_path / "w-ref"), "--lanes", "1"], env=env,
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for name, first, then in (("two-then-one", 2, 1), ("one-then-two", 1, 2)):
        out, work, saved = _kill_mid_run(three_bundle, digits_dir, tmp_path, name, first)
        env, log = environment(tmp_path, name)
        again = subprocess.run([*command(three_bundle, digits_dir, out, work), "--lanes", str(then)], env=env,
                               cwd=REPO, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stderr
        assert out.read_bytes() == ref.read_bytes(), name
        rows = slow_backend.logged_rows(log)
        for m in MEMBERS:  # the chunks saved by the killed run were not recomputed
            saved_rows = sum(int(n[10:19]) - int(n[:9]) for n in saved[m])
            assert rows.get(f"{m}/fp32", 0) == 540 - saved_rows, (name, m, saved[m])
        report = json.loads((out.parent / "submission.run_report.json").read_text())
        assert len(report["lanes"]) == then and [m["status"] for m in report["members"]] == ["done"] * 3


def test_lane_flags_are_checked(digits_bundle, digits_dir, tmp_path):
    base = [sys.executable, "-m", "runtime", "run", str(digits_bundle), "--data", str(digits_dir / "data"),
            "--out", str(tmp_path / "s.csv")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for flags, said in ((["--lanes", "0"], "--lanes 0: expected a positive number of lanes"),
                        (["--devices", "0,x"], "expected GPU indices separated by commas"),
                        (["--devices", "0"], "this machine has no GPU")):
        done = subprocess.run([*base, *flags], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and said in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert not (tmp_path / "s.csv").exists()
