"""`ninefit simulate` of a serving bundle: its notebook serves the rehearsal gateway, offline, to a verdict.

Each test runs a kernel and the gateway, two processes on one loopback, and
is marked ``slow``. Pass or fail never hangs on this machine's speed:
deadlines that must be met are generous, and a member that must miss one is
made slow on purpose (the slow test backend, selected through the notebook's
``BACKEND`` parameter).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from packager.cli import main
from packager.offline.simulate import simulate
from tests.packager.offline.conftest import serve_variant
from tests.runtime import slow_backend

pl = pytest.importorskip("polars")
pytest.importorskip("grpc", reason="the evaluation API speaks gRPC (pip install grpcio)")

REPO = Path(__file__).resolve().parents[3]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]


@pytest.fixture(scope="module")
def data_dir(digits_dir) -> Path:
    return digits_dir / "data"


@pytest.fixture(scope="module")
def reference(served_bundle, data_dir, tmp_path_factory) -> dict[str, str]:
    """id -> label of a file run of the same bundle."""
    from runtime.run import RunOptions, run

    out = tmp_path_factory.mktemp("ref") / "ref.csv"
    run(served_bundle, data_dir, out, RunOptions(progress=False))
    lines = out.read_text().splitlines()[1:]
    return dict(line.split(",") for line in lines)


def notebook(tmp_path: Path, body: str) -> Path:
    """A hand-written serving notebook: ninefit's stand-in server (from the bundle's runtime) around ``body``."""
    head = ("import os, sys\nsys.path.insert(0, os.environ['NINEFIT_BUNDLE_DIR'])\n"
            "from runtime.serve.server import InferenceServer")
    nb = new_notebook(cells=[new_code_cell(head), new_code_cell(body)],
                      metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    path = tmp_path / "custom.ipynb"
    nbformat.write(nb, str(path))
    return path


def labels(parquet: Path) -> dict[str, str]:
    sub = pl.read_parquet(parquet)
    assert sub.columns == ["id", "label"]
    return {i: str(v) for i, v in zip(sub["id"].to_list(), sub["label"].to_list())}


@pytest.mark.parametrize("rows", [1, 100])
def test_batches_in_random_order_are_answered_in_time_as_a_file_run_answers(served_bundle, data_dir, reference,
                                                                            tmp_path, rows):
    bundle = serve_variant(served_bundle, tmp_path / "bundle", batch_rows=rows)
    result = simulate(bundle, data_dir, time_limit="5m", keep=tmp_path / "kept", seed=7)
    assert result.passed, result.summary()
    assert result.submission == tmp_path / "kept" / "submission.parquet"
    assert labels(result.submission) == reference  # every row, as the file run answers it
    calls = result.calls
    assert len(calls) == math.ceil(540 / rows) and [c["batch"] for c in calls] == list(range(len(calls)))
    assert calls[0]["deadline_s"] is None  # the first call loads the members, with no deadline
    assert all(c["deadline_s"] == 60.0 and c["slack_s"] > 0 and not c["late"] for c in calls[1:])
    assert all(c["predictor"]["fallback_rows"] == 0 for c in calls)
    assert {m["member"]: m["status"] for m in calls[-1]["predictor"]["members"]} == {"cnn": "done", "mlp": "done"}
    gateway = result.gateway["ninefit"]
    assert gateway["seed"] == 7 and gateway["answered"] == len(calls) and gateway["startup_s"] is not None
    assert result.serve_summary["rows"] == 540 and result.serve_summary["fallback_rows"] == 0
    if rows == 1:  # the order is random: the calls do not follow the file
        first = pl.read_csv(data_dir / "test.csv")["id"].to_list()
        assert list(labels(result.submission)) != first
    for name in ("result.json", "latency.jsonl", "serve_report.jsonl", "gateway.log", "simulate.log"):
        assert (tmp_path / "kept" / name).is_file()


def test_the_cli_prints_each_call_and_the_verdict(served_bundle, data_dir, tmp_path, capsys):
    code = main(["simulate", str(served_bundle), "--data", str(data_dir), "--time-limit", "5m", "--seed", "3",
                 "--keep", str(tmp_path / "kept")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.startswith("verdict: passed")
    assert "server: ninefit's stand-in (the bundle names no competition server)" in out
    assert "startup: the server took its first call" in out and "random order, seed 3 (`--seed 3` repeats it)" in out
    assert "calls: 6 of 6 answered and valid, 540 rows" in out
    table = [line for line in out.splitlines() if "cnn fp32" in line]
    assert len(table) == 6 and all("mlp fp32" in line and "done" in line for line in table)
    assert "fallback rows: 0 of 540" in out and "member cnn: 540 rows; calls done 6" in out


def test_a_member_too_slow_for_the_deadline_leaves_the_others_to_answer_in_time(served_bundle, data_dir, tmp_path):
    # cnn: 6 s per 100-row batch (sleeping, whatever this machine's speed); every call but the first has 2.5 s.
    bundle = serve_variant(served_bundle, tmp_path / "bundle", response_timeout_s=2.5,
                           server="kaggle_evaluation.digits_inference_server:DigitsInferenceServer")
    env = {**slow_backend.write_config(tmp_path / "slow.json", s_per_row={"cnn": 0.06, "*": 0.0}),
           "NINEFIT_BACKEND": "slow", "PYTHONPATH": str(REPO)}
    result = simulate(bundle, data_dir, time_limit="5m", env=env, seed=1)
    assert result.passed, result.summary()
    assert "stand-in" in result.server and "no kaggle_evaluation/" in result.server  # said, not silent
    first, later = result.calls[0], result.calls[1:]
    assert {m["member"]: (m["status"], m["rows"]) for m in first["predictor"]["members"]}["cnn"] == ("done", 100)
    for call in later:
        members = {m["member"]: (m["status"], m["rows"]) for m in call["predictor"]["members"]}
        assert members["mlp"] == ("done", call["rows"]) and call["predictor"]["fallback_rows"] == 0
        assert members.get("cnn", ("skipped", 0))[1] < call["rows"]  # what fits of it, or none
        assert call["slack_s"] > 0
    assert "GRPC_DEADLINE_EXCEEDED" not in result.summary()


def test_a_predict_that_raises_fails_with_server_raised_exception(served_bundle, data_dir, tmp_path):
    nb = notebook(tmp_path, "def predict(test, sample):\n    raise ValueError('no answer for this batch')\n\n"
                            "server = InferenceServer(predict)\nserver.serve()")
    result = simulate(served_bundle, data_dir, time_limit="2m", notebook=nb, seed=0)
    assert result.verdict == "SERVER_RAISED_EXCEPTION", result.summary()
    assert "batch 0 (" in result.details and "no answer for this batch" in result.details
    assert result.kaggle_failure == "the submission fails with the gateway's SERVER_RAISED_EXCEPTION"
    assert not result.passed and result.gateway["ErrorType"] == 3
    assert [c["error"] for c in result.calls] == ["SERVER_RAISED_EXCEPTION"]  # the failing call's line
    assert [line for line in result.summary().splitlines() if line.split()[:1] == ["0"]][0].endswith(
        "(no predictor record)  SERVER_RAISED_EXCEPTION")  # the table's line of that call


def test_an_answer_with_the_wrong_rows_fails_with_invalid_submission(served_bundle, data_dir, tmp_path):
    nb = notebook(tmp_path, "def predict(test, sample):\n    return sample[:-1]\n\n"
                            "server = InferenceServer(predict)\nserver.serve()")
    result = simulate(served_bundle, data_dir, time_limit="2m", notebook=nb, seed=0)
    assert result.verdict == "INVALID_SUBMISSION", result.summary()
    assert "expected 100 rows but received 99" in result.details
    assert len(result.calls) == 1 and result.calls[0]["error"] is None  # answered in time, then refused; no more sent


def test_a_server_that_never_starts_fails_within_the_startup_limit(served_bundle, data_dir, tmp_path):
    bundle = serve_variant(served_bundle, tmp_path / "bundle", startup_limit_s=3.0)
    nb = notebook(tmp_path, "import time\ntime.sleep(240)  # loads something for too long, never serves")
    result = simulate(bundle, data_dir, time_limit="5m", notebook=nb, seed=0)
    assert result.verdict == "SERVER_NEVER_STARTED", result.summary()
    assert "Failed to connect to server after waiting 3 seconds" in result.details
    assert result.seconds < 200  # the kernel went with the gateway, long before its sleep or the limit ended
    assert result.calls == ()


def test_a_notebook_that_ends_without_serving_fails_and_says_serve_must_block(served_bundle, data_dir, tmp_path):
    nb = notebook(tmp_path, "print('done, without serving')")
    result = simulate(served_bundle, data_dir, time_limit="2m", notebook=nb, seed=0)
    assert result.verdict == "SERVER_NEVER_STARTED", result.summary()
    assert "server.serve() must block" in result.details


def test_the_notebooks_time_limit_holds_while_it_serves(served_bundle, data_dir, tmp_path):
    nb = notebook(tmp_path, "import time\n\ndef predict(test, sample):\n    time.sleep(300)  # the first call: no deadline\n"
                            "\nserver = InferenceServer(predict)\nserver.serve()")
    result = simulate(served_bundle, data_dir, time_limit="10s", notebook=nb, seed=0)
    assert result.verdict == "time limit exceeded", result.summary()
    assert result.kaggle_failure == "Notebook Timeout" and "past the 10 s limit" in result.details


def test_the_file_run_of_a_bundle_without_serve_is_unchanged(digits_bundle, data_dir, tmp_path):
    result = simulate(digits_bundle, data_dir, time_limit="2m", seed=5)
    assert result.passed and type(result).__name__ == "SimulationResult" and result.report["rows"] == 540
    assert os.path.basename(str(result.submission or "submission.csv")) == "submission.csv"
