"""``kill -9`` in the middle of a run, then the same command again: finished chunks
are not recomputed and the submission is byte-identical to an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.bundles import MEMBERS, build_three, check_valid
from tests.runtime import slow_backend

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def three_bundle(digits_dir, tmp_path_factory) -> Path:
    return build_three(digits_dir, tmp_path_factory.mktemp("three"))


def command(bundle: Path, digits_dir: Path, out: Path, work: Path) -> list[str]:
    return [sys.executable, "-m", "runtime", "run", str(bundle), "--data", str(digits_dir / "data"), "--out", str(out),
            "--work-dir", str(work), "--backend", "slow", "--time-limit", "10m", "--quiet"]


def environment(tmp_path: Path, name: str) -> tuple[dict[str, str], Path]:
    log = tmp_path / f"{name}.log"
    env = slow_backend.write_config(tmp_path / f"{name}.json", s_per_row={"*": 0.004}, log=str(log))
    # Prefetch on, with two decode workers: the resumed submission must not depend on it.
    return {**os.environ, "PYTHONPATH": str(REPO), "NINEFIT_PREFETCH": "2", "NINEFIT_DATA_WORKERS": "2", **env}, log


def chunk_files(work: Path) -> dict[str, set[str]]:
    return {m: {p.name for p in work.glob(f"checkpoints/*/{m}/*/*.npy")} for m in MEMBERS}


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_kill_9_mid_run_then_resume_is_identical(three_bundle, digits_dir, tmp_path):
    env, log = environment(tmp_path, "reference")
    ref = tmp_path / "reference" / "submission.csv"
    done = subprocess.run(command(three_bundle, digits_dir, ref, tmp_path / "w-ref"), env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert slow_backend.logged_rows(log) == {f"{m}/fp32": 540 for m in MEMBERS}

    env, log = environment(tmp_path, "killed")
    out, work = tmp_path / "resumed" / "submission.csv", tmp_path / "w"
    proc = subprocess.Popen(command(three_bundle, digits_dir, out, work), env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while sum(map(len, chunk_files(work).values())) < 24 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    saved = chunk_files(work)
    assert 24 <= sum(map(len, saved.values())) < 3 * 17
    check_valid(out, digits_dir)  # the file on disk is complete and valid even after kill -9

    log.unlink()
    env, log = environment(tmp_path, "killed")
    again = subprocess.run(command(three_bundle, digits_dir, out, work), env=env, cwd=REPO,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert out.read_bytes() == ref.read_bytes()
    assert not list(work.rglob("*.tmp"))

    # Finished chunks were not recomputed: each member inferred exactly the rows it had not saved.
    rows = slow_backend.logged_rows(log)
    for m in MEMBERS:
        saved_rows = sum(int(n[10:19]) - int(n[:9]) for n in saved[m])
        assert rows.get(f"{m}/fp32", 0) == 540 - saved_rows, (m, saved[m])
    report = json.loads((out.parent / "submission.run_report.json").read_text())
    assert report["chunks_resumed"] == sum(map(len, saved.values()))
    assert report["stages"]["depth"] == 2 and report["stages"]["chunks_prepared"] > 0
    assert [m["status"] for m in report["members"]] == ["done"] * 3


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_sigterm_ends_the_run_like_ctrl_c_with_its_final_submission_and_report(three_bundle, digits_dir, tmp_path):
    env, _ = environment(tmp_path, "term")
    out, work = tmp_path / "run" / "submission.csv", tmp_path / "w"
    proc = subprocess.Popen(command(three_bundle, digits_dir, out, work), env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while sum(map(len, chunk_files(work).values())) < 12 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "terminated (SIGTERM)" in err and "Traceback" not in err
    report = json.loads(out.with_name("submission.run_report.json").read_text())
    assert any(e.startswith("the run was terminated (SIGTERM) at") for e in report["events"])
    assert 0 < report["covered_rows"] < report["rows"]  # the rows done by then are in the final write
    check_valid(out, digits_dir)
