"""The rehearsal gateway, a process of its own, against ninefit's stand-in server in this process.

Each test serves a ``predict`` written here (so what it received is seen
here) and runs ``python -m packager.offline.gateway SPEC.json`` across the
process boundary, on loopback, dialling only the port the server bound.
"""

from __future__ import annotations

import json
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pl = pytest.importorskip("polars")
grpc = pytest.importorskip("grpc", reason="the evaluation API speaks gRPC (pip install grpcio)")

from packager.offline.gateway import ErrorType, GatewayError, GatewaySpec  # noqa: E402
from packager.offline.gateway.batches import PublicData  # noqa: E402
from runtime.serve.server import InferenceServer  # noqa: E402

REPO = Path(__file__).resolve().parents[4]
pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """Ten rows in five groups (g), a sample submission, and a lags file keyed by g."""
    d = tmp_path / "data"
    d.mkdir()
    ids = [f"r{k}" for k in range(10)]
    pl.DataFrame({"id": ids, "g": [k // 2 for k in range(10)], "x": [float(k) for k in range(10)]}).write_csv(d / "test.csv")
    pl.DataFrame({"id": ids, "y": [0.5] * 10}).write_csv(d / "sample.csv")
    pl.DataFrame({"g": [0, 1, 2, 3, 4, 4], "lag": [10, 11, 12, 13, 14, 15]}).write_csv(d / "lags.csv")
    return d


def spec(data: Path, port: int, **kw) -> GatewaySpec:
    base = dict(data_dir=str(data), test="test.csv", sample="sample.csv", arguments=("test", "sample"), table="test",
                sample_argument="sample", id_column="id", targets=("y",), numeric=True, batch_rows=2, order="file",
                seed=0, response_timeout_s=30.0, startup_limit_s=30.0, out_dir=str(data.parent / "gateway"),
                ports=(port,))
    return GatewaySpec(**{**base, **kw})


def run_gateway(s: GatewaySpec, timeout: float = 90) -> tuple[int, dict, list[dict], str]:
    """(exit code, result.json, latency lines, output) of one gateway process."""
    path = Path(s.out_dir).parent / "gateway.json"
    path.write_text(s.to_json())
    done = subprocess.run([sys.executable, "-m", "packager.offline.gateway", str(path)], cwd=REPO,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                          timeout=timeout)
    out = Path(s.out_dir)
    latency = [json.loads(x) for x in (out / "latency.jsonl").read_text().splitlines()]
    return done.returncode, json.loads((out / "result.json").read_text()), latency, done.stdout + done.stderr


def serving(fn):
    """ninefit's stand-in server answering with ``fn`` (started here; stop it after)."""
    server = InferenceServer(fn)
    server.serve()  # KAGGLE_IS_COMPETITION_RERUN unset: returns at once
    return server


def answer(test, sample):
    return sample.with_columns(pl.col("id"), (test["x"] * 2).alias("y"))


# -- a valid run --------------------------------------------------------------------------------------


def test_a_run_sends_the_batches_as_kaggle_does_and_writes_the_submission(data):
    seen = []

    def predict(test, sample, lags):
        seen.append((test, sample, lags))
        return pl.DataFrame({"id": test["id"], "y": test["x"] * 2})

    server = serving(predict)
    try:
        s = spec(data, server.port, arguments=("test", "sample", "lags"), files=(("lags", "lags.csv"),),
                 batch_by="g", order="random", seed=11)
        rc, result, latency, out = run_gateway(s)
    finally:
        server.stop()
    assert rc == 0 and result["Succeeded"], out
    groups = [0, 1, 2, 3, 4]
    random.Random(11).shuffle(groups)  # the order is the seed's, and the seed is printed
    assert [t["g"].unique().to_list() for t, _, _ in seen] == [[g] for g in groups]
    assert "random order (seed 11)" in out
    for test, sample, lags in seen:
        assert isinstance(test, pl.DataFrame) and test["id"].to_list() == sample["id"].to_list()  # matched by id
        assert lags["g"].unique().to_list() == test["g"].unique().to_list()  # the same batch's rows of the file
    g4 = next(lags for t, _, lags in seen if t["g"][0] == 4)
    assert g4["lag"].to_list() == [14, 15]
    sub = pl.read_parquet(Path(s.out_dir) / "submission.parquet")
    assert sub.columns == ["id", "y"] and sorted(sub["id"].to_list()) == sorted(f"r{k}" for k in range(10))
    assert [r["batch"] for r in latency] == [0, 1, 2, 3, 4] and [r["rows"] for r in latency] == [2] * 5
    assert latency[0]["deadline_s"] is None and latency[0]["slack_s"] is None  # the first call has no deadline
    assert all(r["deadline_s"] == 30.0 and r["slack_s"] == pytest.approx(30.0 - r["latency_s"], abs=1e-3)
               for r in latency[1:])
    info = result["ninefit"]
    assert info["answered"] == info["batches"] == 5 and info["rows"] == 10 and info["startup_s"] is not None


def test_answers_without_ids_or_as_one_value_get_the_ids_in_the_submission(data):
    def predict(test, sample):
        return np.float64(test["x"][0] + 0.5)

    server = serving(predict)
    try:
        s = spec(data, server.port, batch_rows=1, scalar=True, include_id=False)
        rc, result, latency, out = run_gateway(s)
    finally:
        server.stop()
    assert rc == 0 and result["Succeeded"], out
    sub = pl.read_parquet(Path(s.out_dir) / "submission.parquet")
    assert sub.columns == ["id", "y"] and sub["y"].to_list() == [k + 0.5 for k in range(10)]  # the ids put first
    assert len(latency) == 10


def test_a_pandas_answer_is_taken_as_a_polars_one(data):
    def predict(test, sample):
        return answer(test, sample).to_pandas()

    server = serving(predict)
    try:
        s = spec(data, server.port)
        rc, result, _, out = run_gateway(s)
    finally:
        server.stop()
    assert rc == 0 and result["Succeeded"], out
    assert pl.read_parquet(Path(s.out_dir) / "submission.parquet")["y"].to_list() == [2.0 * k for k in range(10)]


def test_the_server_is_waited_for_until_it_starts_and_the_startup_is_measured(data):
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        port = sock.getsockname()[1]
    s = spec(data, port)
    path = data.parent / "gateway.json"
    path.write_text(s.to_json())
    server = None
    with subprocess.Popen([sys.executable, "-m", "packager.offline.gateway", str(path)], cwd=REPO,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, stdout=subprocess.PIPE,
                          text=True) as proc:
        try:
            assert "batches of test.csv" in proc.stdout.readline()  # the gateway is dialling, its clock running
            time.sleep(1.5)

            def predict(test, sample):
                return answer(test, sample)

            server = InferenceServer(predict)
            assert server.server.add_insecure_port(f"localhost:{port}")
            server.serve()
            assert proc.wait(timeout=60) == 0, proc.stdout.read()
        finally:
            proc.kill()
            if server is not None:
                server.stop()
    result = json.loads((Path(s.out_dir) / "result.json").read_text())
    assert result["Succeeded"] and result["ninefit"]["startup_s"] >= 1.5  # the time to the first call taken


# -- failures: Kaggle's names, the first one ends the run ---------------------------------------------


BAD = {
    "none": (lambda t, s: None, "No prediction received for batch 0"),
    "rows": (lambda t, s: answer(t, s)[:1], "expected 2 rows but received 1"),
    "no id": (lambda t, s: answer(t, s).drop("id"), "missing column(s) 'id'"),
    "renamed": (lambda t, s: answer(t, s).rename({"y": "target"}), "missing column(s) 'y'; unexpected column(s) 'target'"),
    "extra": (lambda t, s: answer(t, s).with_columns(z=pl.lit(1)), "unexpected column(s) 'z'"),
    "order": (lambda t, s: answer(t, s).reverse(), "Invalid values for id in batch 0"),
    "nan": (lambda t, s: answer(t, s).with_columns(y=pl.lit(float("nan"))), "Submission contains null values"),
    "null": (lambda t, s: answer(t, s).with_columns(y=pl.lit(None, pl.Float64)), "Submission contains null values"),
    "inf": (lambda t, s: answer(t, s).with_columns(y=pl.lit(float("inf"))), "holds a value that is not finite"),
    "text": (lambda t, s: answer(t, s).with_columns(y=pl.lit("a")), "column 'y' holds String, expected numbers"),
    "scalar": (lambda t, s: 1.0, "expected a DataFrame of 2 rows (columns id, y), got a single value 1.0"),
    "list": (lambda t, s: [1.0, 2.0], "Invalid prediction data type builtins.list"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_each_bad_answer_ends_the_run_as_invalid_submission(data, case):
    bad, message = BAD[case]
    calls = []

    def predict(test, sample):
        calls.append(len(test))
        return bad(test, sample)

    server = serving(predict)
    try:
        s = spec(data, server.port)
        rc, result, latency, out = run_gateway(s)
    finally:
        server.stop()
    assert rc == 1, out
    assert (result["Succeeded"], result["ErrorType"], result["ErrorName"]) == (False, 6, "INVALID_SUBMISSION")
    assert message in result["ErrorDetails"], result["ErrorDetails"]
    assert calls == [2] and len(latency) == 1  # the first failure ends the run: no later batch is sent
    assert not (Path(s.out_dir) / "submission.parquet").exists()


def test_a_frame_where_one_value_is_expected_is_invalid(data):
    def predict(test, sample):
        return answer(test, sample)

    server = serving(predict)
    try:
        rc, result, _, _ = run_gateway(spec(data, server.port, batch_rows=1, scalar=True))
    finally:
        server.stop()
    assert result["ErrorName"] == "INVALID_SUBMISSION" and "expected a single value" in result["ErrorDetails"]


def test_an_exception_in_predict_is_server_raised_exception(data):
    def predict(test, sample):
        if test["x"][0] >= 4:
            raise ValueError("no model for this batch")
        return answer(test, sample)

    server = serving(predict)
    try:
        rc, result, latency, _ = run_gateway(spec(data, server.port))
    finally:
        server.stop()
    assert (rc, result["ErrorName"], result["ErrorType"]) == (1, "SERVER_RAISED_EXCEPTION", 3)
    assert "batch 2" in result["ErrorDetails"] and "no model for this batch" in result["ErrorDetails"]
    assert result["ninefit"]["answered"] == 2 and [r["error"] for r in latency] == [None, None, "SERVER_RAISED_EXCEPTION"]


def test_a_listener_not_named_predict_is_server_missing_endpoint(data):
    def infer(test, sample):
        return answer(test, sample)

    server = serving(infer)
    try:
        _, result, _, _ = run_gateway(spec(data, server.port))
    finally:
        server.stop()
    assert result["ErrorName"] == "SERVER_MISSING_ENDPOINT" and "named predict" in result["ErrorDetails"]


def test_a_late_answer_ends_the_run_with_grpc_deadline_exceeded_and_the_first_call_has_no_deadline(data):
    calls = []

    def predict(test, sample):
        calls.append(time.monotonic())
        if len(calls) in (1, 2):
            time.sleep(2.0)  # four times the deadline: the first call may, the second may not
        return answer(test, sample)

    server = serving(predict)
    try:
        rc, result, latency, _ = run_gateway(spec(data, server.port, response_timeout_s=0.5))
    finally:
        server.stop()
    assert (rc, result["ErrorName"], result["ErrorType"]) == (1, "GRPC_DEADLINE_EXCEEDED", 7)
    assert "batch 1" in result["ErrorDetails"] and "0.5 s" in result["ErrorDetails"]
    assert latency[0]["latency_s"] >= 2.0 and latency[0]["deadline_s"] is None and not latency[0]["late"]
    assert latency[1]["late"] and latency[1]["deadline_s"] == 0.5
    assert len(calls) == 2  # nothing is sent after the late call


def test_no_server_is_server_never_started_after_the_startup_limit(data):
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        port = sock.getsockname()[1]  # free once closed: nothing listens there
    rc, result, latency, out = run_gateway(spec(data, port, startup_limit_s=1.5))
    assert (rc, result["ErrorName"], result["ErrorType"]) == (1, "SERVER_NEVER_STARTED", 1), out
    assert "Failed to connect to server after waiting 1.5 seconds" in result["ErrorDetails"]
    assert result["ninefit"]["wall_s"] >= 1.5 and result["ninefit"]["startup_s"] is None and latency == []


# -- cutting the batches (no process) -----------------------------------------------------------------


def test_random_batches_of_rows_are_the_seeds_and_cover_every_row_once(data):
    public = PublicData(spec(data, 0, batch_rows=3, order="random", seed=5))
    batches = public.batches()
    rows = list(range(10))
    random.Random(5).shuffle(rows)
    assert [list(b.rows) for b in batches] == [rows[0:3], rows[3:6], rows[6:9], rows[9:]]
    assert PublicData(spec(data, 0, batch_rows=3, order="random", seed=5)).batches() == batches  # repeatable
    assert [b.rows for b in PublicData(spec(data, 0, batch_rows=4)).batches()] == [(0, 1, 2, 3), (4, 5, 6, 7), (8, 9)]


def test_public_data_the_batches_cannot_be_cut_from_is_named(data):
    pl.DataFrame({"id": ["r0"], "y": [0.5]}).write_csv(data / "sample.csv")
    with pytest.raises(GatewayError) as err:
        PublicData(spec(data, 0))
    assert err.value.kind == ErrorType.GATEWAY_RAISED_EXCEPTION
    assert "9 id(s) of test.csv are not in sample.csv (e.g. 'r1')" in err.value.details
    with pytest.raises(GatewayError, match="batch_by 'day' is not a column of test.csv"):
        PublicData(spec(data, 0, batch_by="day", sample_argument="", arguments=("test",)))
