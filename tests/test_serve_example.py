"""examples/serve, as a competitor meets it: prepared, packaged, and served date by date in time order.

The gateway's calls are made here through the predictor's public API (the
rehearsal across a process boundary is ``ninefit simulate``'s, tested with
it): each call answers its date's rows in order, and the features hook's
state (each symbol's last five responders, fed by the ``lags`` argument)
is what lifts the score above a hook that forgets between calls.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pl = pytest.importorskip("polars", reason="polars is what Kaggle's gateways send (pip install polars)")

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def serve_dir(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("serve") / "serve"
    shutil.copytree(REPO / "examples" / "serve", dest, ignore=shutil.ignore_patterns("data", "checkpoints", "work",
                                                                                     "__pycache__"))
    subprocess.run([sys.executable, "prepare.py", "--epochs", "8"], cwd=dest, check=True, capture_output=True)
    return dest


@pytest.fixture(scope="module")
def serve_bundle(serve_dir, tmp_path_factory) -> Path:
    from packager.build import package

    out = tmp_path_factory.mktemp("bundles") / "serve"
    package(serve_dir / "ninefit.toml", out)
    return out


def _score(serve_dir: Path, submission: Path) -> float:
    spec = importlib.util.spec_from_file_location("serve_score", serve_dir / "score.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.r2(submission)


def _serve(bundle: Path, serve_dir: Path, tmp_path: Path, *, forget: bool) -> tuple[Path, list[str]]:
    """Every date through a fresh predictor, in time order; ``forget``: the lags withheld (no state builds up)."""
    from runtime.manifest import Manifest
    from runtime.serve import Predictor, ServeOptions

    manifest = Manifest.load(bundle)
    report = tmp_path / ("forget.jsonl" if forget else "serve.jsonl")
    predictor = Predictor(bundle, ServeOptions.from_spec(manifest.serve, time_limit_s=600.0, start_time=time.time(),
                                                         report_path=report))
    test = pl.read_csv(serve_dir / "data" / "test.csv", schema_overrides={"row_id": pl.Utf8})
    lags = pl.read_csv(serve_dir / "data" / "lags.csv")
    answers, order = [], []
    for date in test["date_id"].unique(maintain_order=True):
        batch = test.filter(pl.col("date_id") == date)
        answer = predictor(batch, None if forget else lags.filter(pl.col("date_id") == date))
        assert answer["row_id"].to_list() == batch["row_id"].to_list()  # the batch's rows, in its order
        answers.append(answer)
        order.append(str(date))
    predictor.close()
    out = tmp_path / ("forget.parquet" if forget else "submission.parquet")
    pl.concat(answers).write_parquet(out)
    return out, order


def test_the_example_serves_its_dates_in_order_with_state_across_calls(serve_dir, serve_bundle, tmp_path):
    from runtime.manifest import Manifest

    serve = Manifest.load(serve_bundle).serve
    assert serve is not None and serve.arguments == ("test", "lags") and serve.batch_by == "date_id"
    submission, dates = _serve(serve_bundle, serve_dir, tmp_path, forget=False)
    assert len(dates) == 30
    with_state = _score(serve_dir, submission)
    forgetting = _score(serve_dir, _serve(serve_bundle, serve_dir, tmp_path, forget=True)[0])
    assert with_state > 0.8, with_state
    assert with_state > forgetting + 0.1, (with_state, forgetting)  # the lags carried across calls are worth it
