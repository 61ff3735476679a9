"""``ninefit simulate`` does not pass a run whose features hook failed on most rows.

The hook looks each row's store up in its side table; the hidden test has
stores the public one did not (a new category, as Kaggle's hidden data often
has), so the hook raises on every chunk there. The file written is valid, but
it holds the fallback's values alone: the verdict must say so, not "passed".
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.fixtures import projects

STRICT_LOOKUP = projects.FEATURES.replace(
    '"store_weight": df["store"].map(WEIGHTS).astype("float64"),',
    '"store_weight": WEIGHTS.loc[df["store"]].to_numpy(dtype="float64"),  # KeyError on a store it does not know')


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> tuple[Path, Path]:
    from packager.build import package

    folder = tmp_path_factory.mktemp("strict") / "p"
    spec, _ = projects.make_groupby(folder, hook=STRICT_LOOKUP)
    assert "WEIGHTS.loc" in (folder / "features.py").read_text()
    bundle = folder.parent / "bundle"
    package(spec, bundle)
    return folder, bundle


def _data(folder: Path, dest: Path, new_stores: int) -> Path:
    """The public data, with the first ``new_stores`` rows' stores renamed to ones the side table lacks."""
    rows = projects.store_rows()
    rows = [(i, f"new{k}" if k < new_stores else s, v) for k, (i, s, v) in enumerate(rows)]
    dest.mkdir(parents=True)
    projects.write_store_data(dest, rows)
    return dest


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_features_hook_failing_on_every_row_fails_the_verdict(project, tmp_path, capsys):
    from packager.cli import main
    from packager.offline.simulate import HOOKS_FAILED

    folder, bundle = project
    data = _data(folder, tmp_path / "hidden" / "stores", new_stores=24)
    code = main(["simulate", str(bundle), "--data", str(data), "--time-limit", "3m", "--keep", str(tmp_path / "kept")])
    out = capsys.readouterr().out
    assert code == 1, out
    assert f"verdict: {HOOKS_FAILED}" in out
    assert "the features hook 'features:make_features' failed on 24 of 24 row(s)" in out
    assert "KeyError" in out  # the hook's own error, from the run's events


def test_a_hook_failing_on_a_few_rows_passes_with_a_note():
    from packager.offline.simulate import HOOKS_FAILED, PASSED, _judge_hooks

    report = {"rows": 100, "features": {"hook": "f:g", "rows_failed": 10}, "events": ["features hook 'f:g' failed ..."]}
    verdict, details = _judge_hooks(PASSED, "", report)
    assert verdict == PASSED and details.startswith("note: the features hook 'f:g' failed on 10 of 100 row(s)")
    report["postprocess"] = {"hook": "p:q", "rows_failed": 51}
    assert _judge_hooks(PASSED, "", report)[0] == HOOKS_FAILED
    assert _judge_hooks(PASSED, "", {"rows": 5, "features": {}})[0] == PASSED


def test_the_run_report_counts_no_row_the_hook_failed_on(project, tmp_path):
    from runtime.run import RunOptions, run

    folder, bundle = project
    data = _data(folder, tmp_path / "data", new_stores=24)
    report = run(bundle, data, tmp_path / "s.csv", RunOptions(progress=False))
    (lin,) = report.members
    assert report.covered_rows == 0 and report.weight_delivered == 0.0 and report.value_delivered == 0.0
    assert lin.rows == 0 and lin.rows_unfed == 24 and "24 row(s) not written: the features hook failed" in lin.reason
    table = report.table()
    assert "WARNING, features hook 'features:make_features' failed on 24 of 24 row(s)" in table
    shutil.rmtree(tmp_path / "s.ninefit-work")
