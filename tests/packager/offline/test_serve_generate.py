"""A generative bundle with a ``[serve]`` table: ``ninefit notebook`` writes the evaluation-API notebook around
:class:`runtime.generate.serve.GenerationPredictor`, and ``ninefit simulate`` rehearses it with the gateway (one item
per call, the response deadline held) on the tiny adding model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from packager.cli import main as ninefit
from packager.generate import parse_generative
from packager.offline.notebook import build_notebook
from runtime.errors import SpecError
from runtime.manifest import Manifest
from tests.fixtures.adder import adder_model, answers, package_project

pytestmark = pytest.mark.timeout(900)

#: AIMO's shape: predict(test) one row at a time, the answer with the id; a generous deadline for a busy machine.
SERVE = """
[serve]
arguments = ["test"]
response_timeout_s = 30
expected_rows = 5
batch_rows = 1
order = "random"
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> tuple[Path, Path]:
    """(the bundle, the project) of the adder packaged with SERVE, 5 items."""
    return package_project(tmp_path_factory.mktemp("gen-served"), adder_model(tmp_path_factory.getbasetemp()),
                           items=5, tables=SERVE)


def test_the_spec_takes_a_serve_table_beside_a_causal_lm(served, tmp_path):
    bundle, project = served
    m = Manifest.load(bundle)
    assert m.generate is not None and m.serve is not None
    assert m.serve.arguments == ("test",) and m.serve.expected_rows == 5 and m.serve.response_timeout_s == 30
    spec = project / "ninefit.toml"
    text = spec.read_text()
    spec.write_text(text + '\n[serve.fallback]\nanswer = 0\n')
    with pytest.raises(SpecError, match="fallback_answer"):
        parse_generative(spec)
    spec.write_text(text.replace('arguments = ["test"]', 'arguments = ["test"]\ntable = "prompts"'))
    with pytest.raises(SpecError, match="one of predict's arguments"):
        parse_generative(spec)
    spec.write_text(text)


def test_the_notebook_serves_the_causal_lm_one_item_per_call(served):
    bundle, _ = served
    nb = build_notebook(bundle, slug="adder", competition="aimo", time_limit="5h")
    assert nb.metadata["ninefit"]["serve"] is True
    cells = {c.id: c.source for c in nb.cells}
    serve = cells["ninefit-serve"]
    assert "runtime.generate.serve.GenerationPredictor(" in serve and "runtime.serve.Predictor(" not in serve
    assert "def predict(*args, **kwargs):" in serve and "return predictor(*args, **kwargs)" in serve
    assert "server.serve()" in serve and "_local_gateway(server" in serve
    compile(serve, "serve-cell", "exec")
    intro = cells["ninefit-intro"]
    assert "`adder`: a causal language model" in intro and "`answer`" in intro


def test_simulate_rehearses_one_item_per_call_within_the_deadline(served, tmp_path, capsys):
    pytest.importorskip("polars")
    pytest.importorskip("grpc", reason="the evaluation API speaks gRPC (pip install grpcio)")
    import polars as pl

    from packager.offline.simulate import simulate

    bundle, project = served
    result = simulate(bundle, project / "data", time_limit="10m", keep=tmp_path / "kept", seed=3)
    assert result.passed, result.summary()
    calls = result.calls
    assert len(calls) == 5 and all(c["rows"] == 1 for c in calls)
    assert calls[0]["deadline_s"] is None  # the first call loads the model, with no deadline
    assert all(c["deadline_s"] == 30.0 and c["slack_s"] > 0 and not c["late"] for c in calls[1:])
    items = [i for c in calls for i in c["predictor"]["members"][0]["items"]]
    assert sorted(i["id"] for i in items) == sorted(answers(project))
    assert all(i["allowed_s"] <= 30 * 0.95 - 0.25 for i in items[1:])
    sub = pl.read_parquet(result.submission)
    assert sub.columns == ["id", "answer"] and sorted(sub["id"].to_list()) == sorted(answers(project))
    assert {i: str(a) for i, a in zip(sub["id"].to_list(), sub["answer"].to_list())} == \
        {i["id"]: i["answer"] for i in items}
    report = [json.loads(line) for line in (tmp_path / "kept" / "serve_report.jsonl").read_text().splitlines()]
    assert len(report) == 5
    assert ninefit(["notebook", str(bundle), "-o", str(tmp_path / "nb.ipynb"), "--time-limit", "5h"]) == 0
