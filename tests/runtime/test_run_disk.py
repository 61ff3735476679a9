"""A full or unwritable disk is the user's environment: one message, the path, the free space, what to do.

Each case runs ``python -m runtime run`` in a user and mount namespace of its
own (``unshare -rm``) over a real tmpfs of a few kilobytes, so the writes fail
the way they fail on a full disk (``ENOSPC``) or a read-only one (``EROFS``),
with nothing faked. The run must exit 2 with one paragraph and no traceback,
retire no member for it, and leave the submission on disk whole.
"""

from __future__ import annotations

import csv
import functools
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(300)


@functools.lru_cache(maxsize=1)
def _namespaces() -> str:
    """Empty when a tmpfs can be mounted in a new user and mount namespace here; else why not."""
    try:
        done = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare is not usable here ({exc})"
    return "" if done.returncode == 0 else f"no tmpfs in a user namespace here: {done.stderr.strip()}"


def _on_small_disk(mount: Path, size: str, run_args: list[str], *, fill_kb: int = 0, ro: bool = False,
                   keep: Path) -> subprocess.CompletedProcess:
    """Run the CLI with a tmpfs of ``size`` at ``mount`` (``fill_kb`` of it taken first); the submission is copied to ``keep``."""
    reason = _namespaces()
    if reason:
        pytest.skip(reason)
    mount.mkdir(parents=True, exist_ok=True)
    cmd = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "runtime", "run", *run_args])
    out = run_args[run_args.index("--out") + 1]
    script = "\n".join([
        f"mount -t tmpfs -o size={size}{',ro' if ro else ''} tmpfs {shlex.quote(str(mount))} || exit 99",
        f"dd if=/dev/zero of={shlex.quote(str(mount / 'ballast'))} bs=1024 count={fill_kb} 2>/dev/null" if fill_kb else "",
        f"{cmd}; rc=$?",
        f"cp {shlex.quote(out)} {shlex.quote(str(keep))} 2>/dev/null",
        "exit $rc",
    ])
    return subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=REPO, capture_output=True, text=True,
                          timeout=240, env={**os.environ, "PYTHONPATH": str(REPO)})


def _whole(path: Path, sample: Path) -> bool:
    """The file is a complete submission: the sample's header and its ids in its order."""
    with open(path, newline="") as f, open(sample, newline="") as g:
        got, want = list(csv.reader(f)), list(csv.reader(g))
    return got[0] == want[0] and [r[0] for r in got] == [r[0] for r in want]


def _one_paragraph(err: str) -> str:
    assert "Traceback" not in err, err
    assert "retired" not in err and "skipped, the run goes on" not in err, err  # no member blamed for the disk
    (line,) = [ln for ln in err.splitlines() if ln.startswith("ninefit-runtime: error:")]
    return line


def test_a_full_output_disk_stops_the_run_with_one_message(digits_bundle, digits_dir, tmp_path):
    disk, keep = tmp_path / "disk", tmp_path / "kept.csv"
    out = disk / "submission.csv"
    done = _on_small_disk(disk, "64k", [str(digits_bundle), "--data", str(digits_dir / "data"), "--out", str(out),
                                        "--quiet"], fill_kb=44, keep=keep)
    assert done.returncode == 2, done.stderr
    line = _one_paragraph(done.stderr)
    assert "could not write a checkpoint" in line and str(disk / "submission.ninefit-work") in line
    assert "no space left on the device (" in line and "free of" in line and "--work-dir" in line
    assert f"The submission on disk, {out}, is whole" in line
    assert _whole(keep, digits_dir / "data" / "sample_submission.csv")


def test_a_full_work_folder_stops_the_run_and_the_report_says_why(digits_bundle, digits_dir, tmp_path):
    import json

    disk, keep = tmp_path / "work", tmp_path / "kept.csv"
    out = tmp_path / "out" / "submission.csv"
    done = _on_small_disk(disk, "16k", [str(digits_bundle), "--data", str(digits_dir / "data"), "--out", str(out),
                                        "--work-dir", str(disk / "w"), "--quiet"], fill_kb=8, keep=keep)
    assert done.returncode == 2, done.stderr
    line = _one_paragraph(done.stderr)
    assert f"could not write a checkpoint {disk / 'w'}" in line and "no space left on the device" in line
    assert _whole(out, digits_dir / "data" / "sample_submission.csv")
    report = json.loads((tmp_path / "out" / "submission.run_report.json").read_text())
    assert "StorageError" in report["failure_reason"]
    assert all(m["status"] != "failed" for m in report["members"]), report["members"]


def test_a_read_only_output_folder_is_named_as_not_writable(digits_bundle, digits_dir, tmp_path):
    disk = tmp_path / "ro"
    done = _on_small_disk(disk, "64k", [str(digits_bundle), "--data", str(digits_dir / "data"), "--out",
                                        str(disk / "submission.csv"), "--quiet"], ro=True, keep=tmp_path / "kept.csv")
    assert done.returncode == 2, done.stderr
    line = _one_paragraph(done.stderr)
    # The work folder goes beside --out by default, and is made first: it is the write that fails.
    assert f"could not write the work folder {disk / 'submission.ninefit-work'}" in line and "not writable" in line
    assert "Point --work-dir (by default beside --out) at a writable folder" in line


def test_a_read_only_output_folder_with_the_work_folder_elsewhere(digits_bundle, digits_dir, tmp_path):
    disk = tmp_path / "ro"
    done = _on_small_disk(disk, "64k", [str(digits_bundle), "--data", str(digits_dir / "data"), "--out",
                                        str(disk / "submission.csv"), "--work-dir", str(tmp_path / "w"), "--quiet"],
                          ro=True, keep=tmp_path / "kept.csv")
    assert done.returncode == 2, done.stderr
    line = _one_paragraph(done.stderr)
    assert f"could not write the submission {disk / 'submission.csv'}" in line and "not writable" in line
    assert "Give --out a path in a writable folder on a disk with room" in line


def test_storage_errors_are_told_from_other_os_errors(tmp_path):
    import errno

    from runtime.fileio import storage_error

    full = storage_error(OSError(errno.ENOSPC, "No space left on device"), tmp_path / "x", "a checkpoint", "Do X.")
    assert full is not None and "no space left on the device" in str(full) and str(tmp_path / "x") in str(full)
    short = storage_error(OSError("1536 requested and 1520 written"), tmp_path / "x", "a checkpoint", "Do X.")
    assert short is not None and "no space left" in str(short)  # numpy's short write has no errno
    denied = storage_error(PermissionError(errno.EACCES, "Permission denied"), tmp_path, "the submission", "Do Y.")
    assert "not writable" in str(denied) and str(denied).endswith("Do Y.")
    assert storage_error(FileNotFoundError(errno.ENOENT, "gone"), tmp_path, "x", "") is None
