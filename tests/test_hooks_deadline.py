"""The user's hooks run under the deadline: a hook that hangs is abandoned, and the run still ends in time.

The hooks here sleep only at run time, when ``SLOW_HOOK_MARKER`` names a file:
they touch it, then sleep far past the limit. The test waits for the marker,
so it knows the hook is running, and checks that a valid submission (the
fallback's) is already on disk at that moment; then that the run ends before
its limit on its own clock, says the hook was abandoned, and leaves the
fallback's rows where the hook did not answer. No assertion depends on how
fast this machine is, beyond the run starting well inside its limit: the
margin is set to 3 s (not the default 0.37 s of a 12 s limit), so what the
run does after a hook is abandoned (the members dropped, the final write, the
report) has seconds to spare on a busy machine, and the hook still runs until
its time is up.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures import projects

REPO = Path(__file__).resolve().parents[1]
LIMIT_S = 12.0
MARGIN_S = 3.0

_SLEEP = '''
import os, time
from pathlib import Path

def _maybe_hang():
    marker = os.environ.get("SLOW_HOOK_MARKER")
    if marker:
        Path(marker).write_text("running")
        time.sleep(120)
'''

SLOW_FEATURES = projects.FEATURES + _SLEEP + '''
_inner = make_features

def make_features(df):
    _maybe_hang()
    return _inner(df)
'''

SLOW_POST = projects.POST + _SLEEP + '''
_inner = to_submission

def to_submission(values, ids):
    _maybe_hang()
    return _inner(values, ids)
'''


def _read(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def _package(spec: Path, out: Path) -> Path:
    from packager.build import package

    package(spec, out)
    return out


def _run_and_watch(bundle: Path, data: Path, tmp_path: Path) -> tuple[subprocess.CompletedProcess, bool, dict]:
    """Run with the hang armed; returns (the process, whether a valid submission was on disk while the hook ran, report)."""
    out, marker = tmp_path / "submission.csv", tmp_path / "hook-running"
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtime", "run", str(bundle), "--data", str(data), "--out", str(out),
         "--time-limit", f"{LIMIT_S}s", "--margin", f"{MARGIN_S}s", "--quiet"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), "SLOW_HOOK_MARKER": str(marker)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert marker.exists(), "the hook never ran"
    on_disk = len(_read(out))  # the hook is sleeping now: what is on disk must be a whole submission
    stdout, stderr = proc.communicate(timeout=120)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    report = json.loads((tmp_path / "submission.run_report.json").read_text())
    return done, on_disk > 1, report


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_hanging_features_hook_is_abandoned_and_the_run_ends_in_time(tmp_path):
    spec, _ = projects.make_groupby(tmp_path / "p", hook=SLOW_FEATURES)
    bundle = _package(spec, tmp_path / "bundle")
    proc, valid_while_hook_ran, report = _run_and_watch(bundle, tmp_path / "p" / "data", tmp_path)
    assert valid_while_hook_ran
    # It ended in time, and only once the hook's time was up (the reserve for the final write apart).
    assert LIMIT_S - MARGIN_S - 2.0 < report["finished_at_s"] < LIMIT_S, report["finished_at_s"]
    assert not report["failure"], report["failure_reason"]
    assert any("still running when its time ran out" in e and "abandoned" in e for e in report["events"]), report["events"]
    assert report["features"]["rows_failed"] == report["rows"] == 24
    assert report["covered_rows"] == 0
    rows = _read(tmp_path / "submission.csv")
    assert rows[0] == ["id", "target"] and len(rows) == 25 and {r[1] for r in rows[1:]} == {"0"}  # the sample's values
    assert proc.returncode == 1  # a submission, but no model covered any row


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_hanging_postprocess_hook_is_abandoned_and_the_fallback_stands(tmp_path):
    spec, _ = projects.make_postprocess(tmp_path / "p", hook=SLOW_POST)
    bundle = _package(spec, tmp_path / "bundle")
    proc, valid_while_hook_ran, report = _run_and_watch(bundle, tmp_path / "p" / "data", tmp_path)
    assert valid_while_hook_ran
    # It ended in time, and only once the hook's time was up (the reserve for the final write apart).
    assert LIMIT_S - MARGIN_S - 2.0 < report["finished_at_s"] < LIMIT_S, report["finished_at_s"]
    assert any("postprocess hook" in e and "abandoned" in e for e in report["events"]), report["events"]
    rows = _read(tmp_path / "submission.csv")
    assert len(rows) == 21 and {r[1] for r in rows[1:]} == {"0.5"}  # the sample's values: the hook wrote nothing
    assert proc.returncode == 1, proc.stderr


def test_a_hook_call_past_its_time_is_left_behind_and_not_called_again():
    import threading

    from runtime.errors import HookTimeout
    from runtime.hooks import HookCaller

    release = threading.Event()
    calls = []

    def hook(x):
        calls.append(x)
        release.wait(30)
        return x

    caller = HookCaller(hook, "m:hook", time_left=lambda: 0.2)
    with pytest.raises(HookTimeout, match="still running when its time ran out") as first:
        caller(1)
    assert first.value.first
    with pytest.raises(HookTimeout, match="not called") as later:
        caller(2)
    assert not later.value.first and calls == [1]
    release.set()
    assert HookCaller(lambda x: x * 2, "m:f", time_left=lambda: 5.0)(4) == 8
    assert HookCaller(lambda x: x * 2, "m:f")(4) == 8  # no limit: in line


def test_a_hook_that_exits_costs_its_rows_not_the_run():
    from runtime.errors import HookError
    from runtime.hooks import HookCaller

    def hook(_x):
        sys.exit(3)

    with pytest.raises(HookError, match="SystemExit"):
        HookCaller(hook, "m:hook", time_left=lambda: 5.0)(1)
