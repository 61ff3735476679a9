"""Pacing a serving run: the knapsack over members' rungs, the rows to come, and a paced run end to end."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from runtime.serve import Predictor, ServeOptions
from runtime.serve.pacing import Pace, Rung, Share, allocate
from tests.fixtures.bundles import build_three
from tests.runtime import slow_backend

pl = pytest.importorskip("polars", reason="polars is what Kaggle's gateways send (pip install polars)")
pytestmark = pytest.mark.timeout(300)


def test_the_best_value_per_second_is_funded_first_and_the_marginal_member_in_part():
    members = {"a": [Rung("fp32", 4.0, 0.6)], "b": [Rung("fp32", 2.0, 0.4)], "c": [Rung("fp32", 1.5, 0.2)]}
    # b gives 0.2 per second, a 0.15, c 0.133: 5 s per row funds b and 3 s of a's 4
    shares = allocate(members, 5.0)
    assert shares == {"b": Share("fp32", 1.0), "a": Share("fp32", 0.75)}
    assert allocate(members, 100.0) == {n: Share("fp32", 1.0) for n in members}
    assert allocate(members, 0.0) == {}


def test_a_member_upgrades_to_a_better_rung_only_when_the_gain_pays():
    ladder = [Rung("fp32", 4.0, 1.0), Rung("fp16", 1.0, 0.9)]  # fp16: 0.9 per second, the upgrade 0.1/3 per second
    other = [Rung("fp32", 2.0, 0.2)]  # 0.1 per second: after fp16, before the upgrade to fp32
    assert allocate({"m": ladder, "o": other}, 1.0) == {"m": Share("fp16", 1.0)}
    assert allocate({"m": ladder, "o": other}, 3.0) == {"m": Share("fp16", 1.0), "o": Share("fp32", 1.0)}
    assert allocate({"m": ladder, "o": other}, 6.0) == {"m": Share("fp32", 1.0), "o": Share("fp32", 1.0)}
    # part of the way to fp32: fp16 on every row gives more than fp32 on a few, so fp16 stays
    assert allocate({"m": ladder}, 2.0) == {"m": Share("fp16", 1.0)}
    # a rung dearer and no better is never taken; a lone rung too dear is run on the rows it can pay for
    assert allocate({"m": [Rung("a", 1.0, 0.5), Rung("b", 2.0, 0.5)]}, 5.0) == {"m": Share("a", 1.0)}
    assert allocate({"m": [Rung("fp32", 4.0, 1.0)]}, 1.0) == {"m": Share("fp32", 0.25)}


def test_an_upgrade_passed_over_leaves_its_time_to_a_cheaper_one():
    # a's upgrade to fp32 (0.05 per second) beats c (0.04) but does not fit, nor pay in part; c still fits whole
    members = {"a": [Rung("fp16", 1.0, 0.9), Rung("fp32", 3.0, 1.0)], "c": [Rung("fp32", 0.5, 0.02)]}
    assert allocate(members, 2.5) == {"a": Share("fp16", 1.0), "c": Share("fp32", 1.0)}


def test_the_rows_to_come_and_a_share_rounded_with_a_carry():
    pace = Pace(expected_rows=None, expected_batches=10)
    assert not pace.known
    pace.seen(50)
    assert pace.known and pace.rows_left(30) == 30 + 8 * 50
    exact = Pace(expected_rows=1_000, expected_batches=None)
    assert exact.known and exact.rows_left(10) == 1_000
    exact.seen(990)
    assert exact.rows_left(20) == 20  # more rows than said: the batch's own count
    # a quarter of 10 rows, 30 times: 75 rows, not 30 x 2
    assert sum(exact.rows_of("m", Share("fp32", 0.25), 10) for _ in range(30)) == 75
    assert exact.rows_of("m", Share("fp32", 1.0), 7) == 7


def test_a_paced_run_spends_the_notebooks_time_on_the_best_value_per_second(digits_dir, tmp_path_factory, tmp_path,
                                                                             monkeypatch):
    # value per second: mlp 0.4 / 0.0004 = 1000, cnn 0.6 / 0.0008 = 750, cnn2 0.2 / 0.0008 = 250 (costs large
    # enough that a call's own overhead, and other work on this machine, are small beside them)
    costs = {"cnn": 0.0008, "mlp": 0.0004, "cnn2": 0.0008}
    for k, v in slow_backend.write_config(tmp_path / "slow.json", s_per_row=costs).items():
        monkeypatch.setenv(k, v)
    bundle = build_three(digits_dir, tmp_path_factory.mktemp("three-serve"))
    test = pl.read_csv(digits_dir / "data" / "test.csv", schema_overrides={"id": pl.Utf8})
    batches, rows = 60, 100
    limit = batches * rows * sum(costs.values()) / 2  # half of what every member on every row would take
    options = ServeOptions(arguments=("test",), backend="slow", response_timeout_s=1.0, time_limit_s=limit,
                           start_time=time.time(), expected_rows=batches * rows, report_path=tmp_path / "r.jsonl")
    predictor = Predictor(bundle, options)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for _ in range(batches):
        start = int(rng.integers(0, len(test) - rows))
        predictor(test[start:start + rows])
    wall = time.perf_counter() - t0
    records = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()][1:]
    use = {n: sum(m["rows"] for r in records for m in r["members"] if m["member"] == n) for n in costs}
    # The best value per second covers (nearly) every row: the pace is set from costs measured on this machine's
    # clock, and a call slowed by other work here may leave a few of its rows to the fallback's members.
    assert use["mlp"] >= 0.98 * (batches - 1) * rows
    assert use["cnn2"] == 0  # the worst gives its time to the others
    assert 0.3 * (batches - 1) * rows < use["cnn"] < (batches - 1) * rows  # the marginal member: a share
    # Under the limit, and nearly every row from the models: a 6 s limit is tight enough that a call slowed by other
    # work on this machine can leave the last one short of time (its rows answered by the fallback, as designed).
    fallback = sum(r["fallback_rows"] for r in records)
    assert wall < limit and fallback <= 0.02 * batches * rows, [r for r in records if r["fallback_rows"]][:2]
