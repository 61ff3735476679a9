"""The generative bundle's gateway call (:meth:`GenerationPredictor.__call__`): ``predict``'s arguments named by the
bundle's ``[serve]`` table, every row of a call answered within its deadline, the answer typed as the sample slice,
one record per call in the serving report."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from runtime.generate.serve import CALL_MARGIN_S, CALL_MARGIN_SHARE, GenerationPredictor
from tests.fixtures.adder import adder_model, package_project

pd = pytest.importorskip("pandas")
pytestmark = pytest.mark.timeout(900)

SERVE = """
[serve]
arguments = ["test", "sample"]
sample = "sample"
response_timeout_s = 20
expected_rows = 6
"""


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> tuple[Path, Path]:
    return package_project(tmp_path_factory.mktemp("gen-serve"), adder_model(tmp_path_factory.getbasetemp()),
                           items=6, tables=SERVE)


def test_a_call_of_several_rows_answers_each_in_the_sample_slices_shape(bundle, tmp_path):
    path, project = bundle
    test = pd.read_csv(project / "data" / "test.csv")
    sample = pd.read_csv(project / "data" / "sample_submission.csv")
    report = tmp_path / "serve_report.jsonl"
    predictor = GenerationPredictor(path, time_limit_s=600.0, report_path=report)
    first = predictor(test.iloc[:1], sample.iloc[:1])  # the first call loads the engine, with no deadline
    answer = predictor(test.iloc[1:4], sample=sample.iloc[1:4])
    assert list(answer.columns) == ["id", "answer"] and answer["id"].tolist() == test["id"][1:4].tolist()
    assert str(answer["answer"].dtype).startswith("int") and str(first["answer"].dtype).startswith("int")
    calls = [json.loads(line) for line in report.read_text().splitlines()]
    assert [c["rows"] for c in calls] == [1, 3] and calls[0]["deadline_s"] is None and calls[0]["load_s"] > 0
    assert calls[1]["deadline_s"] == 20.0 and calls[1]["share_s"] == pytest.approx(20 * (1 - CALL_MARGIN_SHARE)
                                                                                      - CALL_MARGIN_S, abs=1e-3)
    items = calls[1]["members"][0]["items"]
    assert [i["id"] for i in items] == test["id"][1:4].tolist()
    # each row's time is capped by the call's time left shared over the rows still to answer
    assert items[0]["allowed_s"] <= calls[1]["share_s"] / 3 + 1e-6
    assert [str(a) for a in answer["answer"]] == [i["answer"] for i in items]
    summary = json.loads(report.with_name("serve_report.summary.json").read_text())
    assert summary["calls"] == 2 and summary["rows"] == 4 and summary["members"]["adder"]["rows"] == 4


def test_a_broken_engine_answers_every_row_with_the_fallback(bundle, tmp_path):
    path, project = bundle
    test = pd.read_csv(project / "data" / "test.csv")
    predictor = GenerationPredictor(path, report_path=tmp_path / "r.jsonl")
    predictor.spec = replace(predictor.spec, folder="models/missing")
    answer = predictor(test.iloc[:2])
    assert answer["answer"].tolist() == [0, 0]  # the adder's fallback_answer "0", a whole number
    call = json.loads((tmp_path / "r.jsonl").read_text())
    assert call["fallback_rows"] == 2 and "did not load" in call["events"][0]


def test_the_rows_of_a_call_are_answered_together_with_batch_items(bundle, tmp_path):
    path, project = bundle
    test = pd.read_csv(project / "data" / "test.csv")
    predictor = GenerationPredictor(path, time_limit_s=600.0, report_path=tmp_path / "r.jsonl")
    predictor.spec = replace(predictor.spec, batch_items=3)
    predictor(test.iloc[:1])
    answer = predictor(test.iloc[1:5])  # 4 rows: a group of 3, then 1
    assert answer["id"].tolist() == test["id"][1:5].tolist()
    call = json.loads((tmp_path / "r.jsonl").read_text().splitlines()[1])
    items = call["members"][0]["items"]
    assert [i["together"] for i in items] == [3, 3, 3, 1]
    share = call["share_s"]
    assert sum(i["allowed_s"] for i in items[:3]) <= share * 3 / 4 + 1e-6  # 3 of the call's 4 rows' time
