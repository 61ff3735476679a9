"""The hooks and submission formats end to end: package, run, and the exact submission.

One project per concern (tests/fixtures/projects.py): a tabular model whose
features need a groupby-aggregate over the test table and a side table
(through the features hook), a top-3 submission for MAP@3, multi-label, a long
format, a postprocess hook, and a tiny segmentation model written as RLE.
Then: a chunked run, a run whose hooks fail on some rows of the hidden test,
a kill -9 in the middle with both hooks on, and the cudf.pandas path.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures import projects
from tests.runtime import slow_backend

REPO = Path(__file__).resolve().parents[1]
KINDS = ("groupby", "topk", "multilabel", "long", "postprocess", "rle")


def _package(spec: Path, out: Path) -> Path:
    from packager.build import package

    package(spec, out)
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, tuple[Path, Path, str]]:
    """kind -> (project folder, bundle, expected submission text)."""
    out = {}
    for kind in KINDS:
        folder = tmp_path_factory.mktemp(kind) / kind
        spec, expected = getattr(projects, f"make_{kind}")(folder)
        out[kind] = (folder, _package(spec, folder.parent / "bundle"), expected)
    return out


def _run(bundle: Path, data: Path, out: Path, env: dict[str, str] | None = None, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "runtime", "run", str(bundle), "--data", str(data), "--out", str(out), "--quiet", *extra]
    return subprocess.run(cmd, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
                          capture_output=True, text=True, timeout=300)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("kind", KINDS)
def test_example_writes_the_exact_submission(built, kind, tmp_path):
    from runtime.run import RunOptions, run

    folder, bundle, expected = built[kind]
    out = tmp_path / "submission.csv"
    report = run(bundle, folder / "data", out, RunOptions(progress=False))
    assert out.read_text() == expected
    assert report.covered_rows == report.rows and not report.events


def test_bundle_carries_the_hooks_checksummed(built):
    from runtime.manifest import SCHEMA_VERSION, Manifest

    m = Manifest.load(built["groupby"][1])
    assert {"hooks/features.py", "hooks/lookup/stores.csv"} <= set(m.files)
    assert m.data.features == "features:make_features" and m.data.features_group == "store"
    assert [c for c, _ in m.data.features_columns] == ["store_mean", "store_max", "store_weight"]
    assert "hooks/post.py" in Manifest.load(built["postprocess"][1]).files
    assert m.schema_version == SCHEMA_VERSION >= 3  # the schema of now, which has had the hooks since version 3


@pytest.mark.timeout(300)
def test_chunked_features_write_the_same_bytes(built, tmp_path):
    """Chunks of 5 rows (groups kept whole, so chunks differ in size) give the whole-table result."""
    folder, bundle, expected = built["groupby"]
    done = _run(bundle, folder / "data", tmp_path / "chunked.csv", {"NINEFIT_FEATURES_CHUNK_ROWS": "5"})
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "chunked.csv").read_text() == expected


@pytest.mark.timeout(300)
def test_features_hook_error_at_run_time_is_reported_and_rows_fall_back(tmp_path):
    hook = projects.FEATURES.replace('def make_features(df):\n',
                                     'def make_features(df):\n    if (df["sales"] < 0).any():\n'
                                     '        raise ValueError("negative sales")\n')
    spec, expected = projects.make_groupby(tmp_path / "p", hook=hook)
    bundle = _package(spec, tmp_path / "bundle")
    rows = projects.store_rows()
    bad_store = rows[0][1]
    hidden = [(i, s, -1 if (s == bad_store and n == 0) else v) for n, (i, s, v) in enumerate(rows)]
    data = tmp_path / "hidden"
    data.mkdir()
    projects.write_store_data(data, hidden)
    done = _run(bundle, data, tmp_path / "s.csv", {"NINEFIT_FEATURES_CHUNK_ROWS": "5"})
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "s.run_report.json").read_text())
    event = next(e for e in report["events"] if "features hook" in e)
    assert "'features:make_features' failed on" in event and "ValueError: negative sales" in event
    assert "features.py" in event and "fallback" in event
    failed = report["features"]["rows_failed"]
    assert 0 < failed < len(rows) and report["covered_rows"] == len(rows) - failed
    got = dict(line.split(",") for line in (tmp_path / "s.csv").read_text().splitlines()[1:])
    exp = dict(line.split(",") for line in expected.splitlines()[1:])
    bad_ids = {i for i, s, _ in hidden if s == bad_store}
    assert all(got[i] == "0" for i in bad_ids)  # the sample's value stands
    same = [i for i in got if got[i] == exp[i]]
    assert len(same) == len(rows) - failed  # every row of the other chunks is exact


@pytest.mark.timeout(300)
def test_postprocess_error_at_run_time_is_reported_and_rows_fall_back(tmp_path, monkeypatch):
    import runtime.output.formats
    from runtime.run import RunOptions, run

    hook = projects.POST.replace("    clipped =", "    if (values > 1.5).any():\n"
                                 "        raise RuntimeError('out of range')\n    clipped =")
    spec, expected = projects.make_postprocess(tmp_path / "p", hook=hook)
    bundle = _package(spec, tmp_path / "bundle")
    data = tmp_path / "p" / "data"
    text = (data / "test.csv").read_text().splitlines()
    text[1] = text[1].split(",")[0] + "," + "9.0"  # the hidden test: its first row is out of range
    (data / "test.csv").write_text("\n".join(text) + "\n")
    monkeypatch.setattr(runtime.output.formats, "POSTPROCESS_BLOCK", 8)  # rows 0..7 are one call
    report = run(bundle, data, tmp_path / "s.csv", RunOptions(progress=False))
    event = next(e for e in report.events if "postprocess hook" in e)
    assert "'post:to_submission' failed on test rows 0..7 (ids q0 .. q7)" in event
    assert "RuntimeError: out of range" in event and "post.py" in event and "fallback" in event
    assert report.covered_rows == 20 - 8
    lines = (tmp_path / "s.csv").read_text().splitlines()
    assert lines[1:9] == [f"q{i},0.5" for i in range(8)]  # the fallback (the sample) stands for that call's rows
    assert lines[9:] == expected.splitlines()[9:]  # the rest as without the failure


def _slow_command(bundle: Path, data: Path, out: Path, work: Path) -> list[str]:
    return [sys.executable, "-m", "runtime", "run", str(bundle), "--data", str(data), "--out", str(out),
            "--work-dir", str(work), "--backend", "slow", "--time-limit", "10m", "--quiet"]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_kill_9_and_resume_with_hooks_is_byte_identical(tmp_path):
    """Features (groups, chunks of 7) and postprocess hooks on: a kill -9 mid-run, then a resume, write the
    same bytes as an uninterrupted run."""
    spec, _ = projects.make_groupby(tmp_path / "p", post=projects.POST_ROUND, repeat=20)
    bundle = _package(spec, tmp_path / "bundle")
    data = tmp_path / "p" / "data"

    def env(name: str) -> tuple[dict[str, str], Path]:
        log = tmp_path / f"{name}.log"
        extra = slow_backend.write_config(tmp_path / f"{name}.json", s_per_row={"*": 0.004}, log=str(log))
        return {**os.environ, "PYTHONPATH": str(REPO), "NINEFIT_FEATURES_CHUNK_ROWS": "7", **extra}, log

    e, _ = env("reference")
    ref = tmp_path / "reference" / "submission.csv"
    done = subprocess.run(_slow_command(bundle, data, ref, tmp_path / "w-ref"), env=e, cwd=REPO,
                          capture_output=True, text=True, timeout=200)
    assert done.returncode == 0, done.stderr

    e, _ = env("killed")
    out, work = tmp_path / "resumed" / "submission.csv", tmp_path / "w"
    proc = subprocess.Popen(_slow_command(bundle, data, out, work), env=e, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 100
    while len(list(work.glob("checkpoints/*/lin/*/*.npy"))) < 20 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    saved = len(list(work.glob("checkpoints/*/lin/*/*.npy")))
    assert 20 <= saved < 120  # 480 rows in chunks of 4

    e, _ = env("killed")
    again = subprocess.run(_slow_command(bundle, data, out, work), env=e, cwd=REPO,
                           capture_output=True, text=True, timeout=200)
    assert again.returncode == 0, again.stderr
    assert out.read_bytes() == ref.read_bytes()
    assert len(ref.read_text().splitlines()) == 481


@pytest.mark.timeout(300)
def test_features_hook_under_cudf_pandas_gives_the_same_submission(built, tmp_path):
    """NINEFIT_CUDF=1 installs cudf.pandas before the table is read; without a GPU it falls back to pandas."""
    if importlib.util.find_spec("cudf") is None:
        pytest.skip("cudf is not installed here (pip install cudf-cu12); the cudf.pandas path is untested")
    folder, bundle, expected = built["groupby"]
    done = _run(bundle, folder / "data", tmp_path / "cudf.csv", {"NINEFIT_CUDF": "1", "NINEFIT_FEATURES_CHUNK_ROWS": "5",
                                                                 "NINEFIT_GPU_PRESENT": "0"})
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "cudf.csv").read_text() == expected
    report = json.loads((tmp_path / "cudf.run_report.json").read_text())
    assert report["features"]["engine"] == "cudf.pandas"
    assert any("no GPU here" in e and "on pandas, on the CPU" in e for e in report["events"])  # said, not silent


@pytest.mark.timeout(300)
def test_cudf_asked_for_but_absent_is_said(built, tmp_path):
    folder, bundle, expected = built["groupby"]
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "cudf.py").write_text("raise ImportError('cudf is blocked in this test')\n")
    done = _run(bundle, folder / "data", tmp_path / "s.csv",
                {"NINEFIT_CUDF": "1", "PYTHONPATH": f"{blocker}{os.pathsep}{REPO}"})
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "s.csv").read_text() == expected
    report = json.loads((tmp_path / "s.run_report.json").read_text())
    assert report["features"]["engine"] == "pandas"
    assert any("cudf is not installed here" in e for e in report["events"])


@pytest.mark.gpu
@pytest.mark.timeout(300)
def test_features_hook_on_cudf_gpu(built, tmp_path):  # pragma: no cover - unverified on a GPU here
    """On a GPU machine with cuDF the hook's pandas calls run on the GPU (cudf.pandas): the same bytes."""
    folder, bundle, expected = built["groupby"]
    done = _run(bundle, folder / "data", tmp_path / "gpu.csv", {"NINEFIT_CUDF": "1"})
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "gpu.csv").read_text() == expected


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", ["groupby", "rle"])
def test_the_offline_notebook_runs_the_hooks_from_the_read_only_bundle(built, kind, tmp_path):
    """`ninefit simulate`: the bundle read-only under /kaggle/input, the network cut off; the exact submission."""
    from packager.offline.simulate import simulate

    folder, bundle, expected = built[kind]
    result = simulate(bundle, folder / "data", time_limit="3m", keep=tmp_path / "sim")
    assert result.passed, result.summary()
    assert (tmp_path / "sim" / "submission.csv").read_text() == expected
