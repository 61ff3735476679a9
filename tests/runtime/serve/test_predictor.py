"""runtime.serve.Predictor through its public API: answers, deadlines, faults, state and bad input.

The digits bundles (2 and 3 members) answer batches as Kaggle's gateway sends
them (polars frames, a sample slice beside them); a file run of the same bundle
is the reference for every row. Costs that must not depend on this machine come
from the slow test backend (:mod:`tests.runtime.slow_backend`), whose members
sleep a fixed time per row.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from runtime.serve import Predictor, ServeOptions
from tests.runtime import slow_backend

pl = pytest.importorskip("polars", reason="polars is what Kaggle's gateways send (pip install polars)")
pd = pytest.importorskip("pandas")

REPO = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def reference(digits_bundle, digits_dir, tmp_path_factory) -> dict[str, str]:
    """id -> label of a file run of the digits bundle."""
    from runtime.run import RunOptions, run

    out = tmp_path_factory.mktemp("ref") / "ref.csv"
    run(digits_bundle, digits_dir / "data", out, RunOptions(progress=False))
    ref = pd.read_csv(out, dtype=str)
    return dict(zip(ref["id"], ref["label"]))


def _tables(digits_dir: Path):
    test = pl.read_csv(digits_dir / "data" / "test.csv", schema_overrides={"id": pl.Utf8})
    sample = pl.read_csv(digits_dir / "data" / "sample_submission.csv", schema_overrides={"id": pl.Utf8})
    return test, sample


def _options(tmp_path: Path, **kw) -> ServeOptions:
    kw.setdefault("arguments", ("test", "sample"))
    kw.setdefault("sample", "sample")
    return ServeOptions(report_path=tmp_path / "serve.jsonl", **kw)


def _records(tmp_path: Path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "serve.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("size", [1, 100])
def test_batches_in_random_order_answer_every_row_as_a_file_run(digits_bundle, digits_dir, reference, tmp_path, size):
    test, sample = _tables(digits_dir)
    order = np.random.default_rng(size).permutation(len(test))
    predictor = Predictor(digits_bundle, _options(tmp_path, response_timeout_s=60.0, time_limit_s=3600.0))
    got = {}
    for k in range(0, min(len(order), 40 * size), size):
        rows = order[k:k + size].tolist()
        out = predictor(test[rows], sample[rows])
        assert isinstance(out, pl.DataFrame) and out.columns == ["id", "label"] and len(out) == len(rows)
        assert out["id"].to_list() == test[rows]["id"].to_list()  # the batch's rows, in its order
        got.update(zip(out["id"].to_list(), map(str, out["label"].to_list())))
    assert got == {i: reference[i] for i in got}
    records = _records(tmp_path)
    assert records[0]["deadline_s"] is None and records[0]["load_s"] > 0  # the first call loads, with no deadline
    assert all(r["deadline_s"] == 60.0 and r["slack_s"] > 0 and r["fallback_rows"] == 0 for r in records[1:])


def test_a_batch_of_10000_rows_in_one_call(digits_bundle, digits_dir, reference, tmp_path):
    test, sample = _tables(digits_dir)
    reps = -(-10_000 // len(test))
    big = pl.concat([test.with_columns(pl.col("id") + f"_{r}") for r in range(reps)])[:10_000]
    predictor = Predictor(digits_bundle, _options(tmp_path, arguments=("test",), sample="", output="pandas"))
    out = predictor(big)
    assert isinstance(out, pd.DataFrame) and len(out) == 10_000
    assert [str(v) for v in out["label"]] == [reference[i.rsplit("_", 1)[0]] for i in out["id"]]


def test_a_member_too_slow_for_the_deadline_runs_what_fits_and_the_others_answer_in_time(
        digits_bundle, digits_dir, tmp_path, monkeypatch):
    env = slow_backend.write_config(tmp_path / "slow.json", s_per_row={"cnn": 0.02, "*": 0.0})  # cnn: 2 s / 100 rows
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    test, sample = _tables(digits_dir)
    predictor = Predictor(digits_bundle, _options(tmp_path, backend="slow", response_timeout_s=1.0))
    for k in range(0, 400, 100):
        predictor(test[k:k + 100], sample[k:k + 100])
    later = _records(tmp_path)[1:]
    assert all(r["latency_s"] < 1.0 for r in later)  # on the run's own clock: sleeps dominate, not this machine
    for r in later:
        rows = {m["member"]: (m["status"], m["rows"]) for m in r["members"]}
        assert rows["mlp"] == ("done", 100) and r["fallback_rows"] == 0
        assert rows["cnn"][1] < 50  # the rows it has time for (at most 0.7 s of its 2 s), or none


def test_a_member_that_slows_down_mid_call_is_left_behind_at_the_deadline(digits_bundle, digits_dir, tmp_path,
                                                                        monkeypatch):
    # cnn is cheap on the first call (100 rows), then every batch sleeps 100x longer: its plan fits, its work does not.
    env = slow_backend.write_config(tmp_path / "slow.json", s_per_row={"cnn": 0.0005, "*": 0.0},
                                    slowdown={"cnn": {"after_rows": 110, "factor": 100}})
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    test, sample = _tables(digits_dir)
    predictor = Predictor(digits_bundle, _options(tmp_path, backend="slow", response_timeout_s=1.5))
    for k in range(0, 400, 100):
        predictor(test[k:k + 100], sample[k:k + 100])
    records = _records(tmp_path)
    assert all(r["latency_s"] < 1.5 for r in records[1:])
    statuses = [{m["member"]: m["status"] for m in r["members"]} for r in records[1:]]
    assert statuses[0]["cnn"] == "abandoned" and statuses[0]["mlp"] == "done"
    assert any(s.get("cnn") == "skipped" for s in statuses[1:])  # busy with the batch it was left on
    assert all(r["fallback_rows"] == 0 for r in records)  # mlp covered every row


def test_a_member_that_raises_costs_only_its_contribution(digits_bundle, digits_dir, reference, tmp_path, monkeypatch):
    test, sample = _tables(digits_dir)
    predictor = Predictor(digits_bundle, _options(tmp_path))
    predictor(test[:50], sample[:50])  # loads the members
    runner = predictor.pool.slots["cnn"].runners["fp32"]

    def broken(feed):
        raise RuntimeError("a bad batch for cnn")

    monkeypatch.setattr(runner, "infer", broken)
    out = predictor(test[50:100], sample[50:100])
    assert len(out) == 50
    record = _records(tmp_path)[-1]
    status = {m["member"]: (m["status"], m["reason"]) for m in record["members"]}
    assert status["cnn"][0] == "failed" and "a bad batch for cnn" in status["cnn"][1]
    assert status["mlp"][0] == "done" and record["fallback_rows"] == 0
    monkeypatch.undo()
    again = predictor(test[100:150], sample[100:150])
    assert [str(v) for v in again["label"]] == [reference[i] for i in test[100:150]["id"]]


def test_bad_input_each_gets_its_documented_answer(digits_bundle, digits_dir, tmp_path):
    from runtime.serve.batch import ServeInputError

    test, sample = _tables(digits_dir)
    predictor = Predictor(digits_bundle, _options(tmp_path))
    predictor(test[:20], sample[:20])
    # a renamed column: no member can read it, every row takes the sample slice's values
    out = predictor(test[20:30].rename({"px3": "px_three"}), sample[20:30])
    assert out["label"].to_list() == sample[20:30]["label"].to_list()
    assert all(m["status"] == "skipped" and "px3" in m["reason"] for m in _records(tmp_path)[-1]["members"])
    # zero rows: an empty answer with the right columns
    out = predictor(test[:0], sample[:0])
    assert out.columns == ["id", "label"] and len(out) == 0
    # a text column where numbers belong: skipped like a missing one
    out = predictor(test[30:35].with_columns(pl.col("px5").cast(pl.Utf8) + "x"), sample[30:35])
    assert len(out) == 5 and _records(tmp_path)[-1]["fallback_rows"] == 5
    # NaN and inf: those rows (only) take the fallback
    bad = test[35:45].with_columns(pl.when(pl.int_range(pl.len()) < 2).then(float("nan")).otherwise(pl.col("px1"))
                                   .alias("px1"))
    out = predictor(bad, sample[35:45])
    assert len(out) == 10 and _records(tmp_path)[-1]["fallback_rows"] == 2
    # ids the sample slice lacks: the answer follows the slice, and says so
    out = predictor(test[45:50], sample[46:51])
    assert out["id"].to_list() == sample[46:51]["id"].to_list()
    assert "not in the batch" in _records(tmp_path)[-1]["events"][0]
    # no table at all: no answer can be made; the error names the batch
    with pytest.raises(ServeInputError, match=r"batch \d+: predict's argument 'test' is a list"):
        predictor([1, 2, 3], sample[:3])


STATEFUL_HOOK = '''
import numpy as np
import pandas as pd


class LagFeatures:
    """The mean of x in the previous time step: state kept across calls, in order."""

    def __init__(self):
        self.previous = 0.0

    def __call__(self, df):
        lag = np.full(len(df), self.previous)
        self.previous = float(df["x"].mean())
        return pd.DataFrame({"lag": lag})
'''


def test_a_stateful_features_hook_carries_its_state_across_50_ordered_time_steps(tmp_path):
    from packager.build import package
    from tests.fixtures import projects

    folder = tmp_path / "p"
    spec_text = '''
    name = "lags"
    [data]
    test = "data/test.csv"
    id_column = "id"
    sample_submission = "data/sample_submission.csv"
    features = "features:LagFeatures"

    [[model]]
    name = "lin"
    factory = "tests.fixtures.models:linear"
    factory_kwargs = { n_in = 2, n_out = 1 }
    checkpoint = "lin.pt"
    batch_size = 4
      [[model.input]]
      name = "x"
      shape = ["batch", 2]
      columns = ["x", "lag"]
    '''
    spec = projects.write_project(folder, spec_text, {"features.py": STATEFUL_HOOK})
    rng = np.random.default_rng(3)
    steps = [rng.integers(0, 16, size=3).astype(float) for _ in range(50)]
    ids = [f"t{k}_{j}" for k in range(50) for j in range(3)]
    projects.write_csv(folder / "data" / "test.csv", ["id", "x"], [[i, x] for i, x in zip(ids, np.concatenate(steps))])
    projects.write_csv(folder / "data" / "sample_submission.csv", ["id", "target"], [[i, 0] for i in ids])
    projects.linear_checkpoint(folder / "lin.pt", [[1.0, 1.0]])  # target = x + the previous step's mean of x
    bundle = tmp_path / "bundle"
    package(spec, bundle)
    predictor = Predictor(bundle, ServeOptions(arguments=("test",), report_path=tmp_path / "s.jsonl"))
    previous = 0.0
    for k, x in enumerate(steps):
        batch = pl.DataFrame({"id": ids[3 * k:3 * k + 3], "x": x})
        out = predictor(batch)
        assert out["target"].to_list() == pytest.approx((x + previous).tolist())
        previous = float(np.float32(x.mean()))


def test_options_are_checked_where_they_are_given(digits_bundle, tmp_path):
    from runtime.errors import UsageError

    with pytest.raises(UsageError, match="response_timeout_s -1"):
        ServeOptions(response_timeout_s=-1)
    with pytest.raises(UsageError, match="table 'x' is not one of predict's arguments"):
        ServeOptions(arguments=("test",), table="x")
    with pytest.raises(UsageError, match="output 'arrow'"):
        ServeOptions(output="arrow")


def test_the_predictor_is_cheap_to_build_and_a_plain_function_serves_it(digits_bundle, tmp_path):
    """The server must start at once: building reads the manifest only (no session, no checksum)."""
    code = (f"import sys, time; sys.path.insert(0, {str(REPO)!r}); t = time.perf_counter(); "
            "import runtime.serve as s; "
            f"p = s.Predictor({str(digits_bundle)!r}, s.ServeOptions(report_path={str(tmp_path / 'r.jsonl')!r})); "
            "print(','.join(m for m in ('onnxruntime', 'torch', 'polars') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.stdout.strip() == ""  # nothing heavy until the first call
