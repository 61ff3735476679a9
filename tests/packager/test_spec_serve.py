"""The spec's ``[serve]`` table: parsed into the manifest's ServeSpec, and a clear SpecError for each mistake."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from packager.spec import load_spec
from runtime.errors import SpecError
from runtime.manifest import Manifest, ServeSpec
from runtime.serve import ServeOptions

pytestmark = pytest.mark.timeout(180)  # the digits fixture trains two models on first use

SERVE = """
[serve]
server = "kaggle_evaluation.digits_inference_server:DigitsInferenceServer"
gateway_paths = ["test.csv", "sample_submission.csv"]
arguments = ["test", "sample", "extra"]
sample = "sample"
response_timeout_s = 300
expected_rows = 5400
batch_rows = 100
order = "file"
output = "polars"

[serve.files]
extra = "data/extra.csv"

[serve.fallback]
label = "7"
"""


@pytest.fixture
def spec_dir(digits_dir, tmp_path) -> Path:
    d = tmp_path / "spec"
    shutil.copytree(digits_dir, d, ignore=shutil.ignore_patterns("checkpoints", "work"))
    (d / "data" / "extra.csv").write_text("id,x\n0,1\n")
    return d


def _spec(spec_dir: Path, serve: str) -> Path:
    p = spec_dir / "ninefit.toml"
    p.write_text(p.read_text() + serve)
    return p


def test_serve_parses_into_the_manifest_and_the_predictors_options(spec_dir):
    spec = load_spec(_spec(spec_dir, SERVE))
    s = spec.serve
    assert s == ServeSpec(server="kaggle_evaluation.digits_inference_server:DigitsInferenceServer",
                          gateway_paths=("test.csv", "sample_submission.csv"), arguments=("test", "sample", "extra"),
                          table="test", sample="sample", files=(("extra", "extra.csv"),), response_timeout_s=300.0,
                          expected_rows=5400, batch_rows=100, order="file", output="polars", fallback=(("label", "7"),))
    d = Manifest(name="x", members=(), data=spec.data, submission=None, serve=s).to_dict()  # type: ignore[arg-type]
    assert Manifest.from_dict({**d, "submission": _submission()}).serve == s  # the JSON round trip is exact
    opts = ServeOptions.from_spec(s, time_limit_s=100.0)
    assert (opts.arguments, opts.sample, opts.response_timeout_s, opts.expected_rows, opts.expected_batches,
            opts.output, dict(opts.fallback), opts.time_limit_s) == (("test", "sample", "extra"), "sample", 300.0,
                                                                      5400, None, "polars", {"label": "7"}, 100.0)


def test_a_spec_without_serve_serves_nothing(spec_dir):
    assert load_spec(spec_dir / "ninefit.toml").serve is None


def _submission() -> dict:
    return {"id_column": "id", "columns": ["label"], "mode": "argmax", "classes": [str(i) for i in range(10)]}


@pytest.mark.parametrize("old, new, message", [
    ('response_timeout_s = 300', 'response_timeout_s = 0', "`response_timeout_s` in [serve] is 0"),
    ('order = "file"', 'order = "time"', 'expected one of: "random", "file"'),
    ('output = "polars"', 'output = "arrow"', 'expected one of: "auto", "pandas", "polars"'),
    ('sample = "sample"', 'sample = "sub"', "expected one of predict's arguments"),
    ('sample = "sample"', 'sample = "test"', "table and sample are both 'test'"),
    ('arguments = ["test", "sample", "extra"]', 'arguments = ["test", "test"]', "distinct Python names"),
    ('server = "kaggle_evaluation.digits_inference_server:DigitsInferenceServer"',
     'server = "kaggle_evaluation.digits_inference_server.DigitsInferenceServer"', '"<module>:<Class>"'),
    ('extra = "data/extra.csv"', 'extra = "data/nothere.csv"', "nothere.csv not found"),
    ('extra = "data/extra.csv"', 'extra = "data/extra.csv"\nlags = "data/extra.csv"',
     "'lags' is not one of predict's arguments"),
    ('extra = "data/extra.csv"', '', "predict's argument 'extra' has no file"),
    ('batch_rows = 100', 'batch_rows = 100\nbatch_by = "id"', "give batch_by"),
    ('batch_rows = 100', 'batch_by = "date_id"', "batch_by = \"date_id\" is not a column of the test table"),
    ('label = "7"', 'target = 0.5', "'target' is not a target column"),
    ('expected_rows = 5400', 'expected_rows = -1', "expected a whole number >= 0"),
    ('order = "file"', 'ordre = "file"', "did you mean `order`?"),
])
def test_each_mistake_in_serve_names_its_key_and_what_was_expected(spec_dir, old, new, message):
    assert old in SERVE
    with pytest.raises(SpecError) as err:
        load_spec(_spec(spec_dir, SERVE.replace(old, new)))
    assert message in str(err.value)


def test_serving_needs_one_row_per_test_row(spec_dir):
    p = spec_dir / "ninefit.toml"
    text = p.read_text()
    assert 'mode = "argmax"' in text
    p.write_text(text.replace('mode = "argmax"', 'mode = "topk"\nk = 2'))
    spec = load_spec(_spec(spec_dir, SERVE))  # topk is one row per test row: served
    assert spec.serve is not None
    p.write_text(text.replace('mode = "argmax"', 'mode = "long"\ntargets = ["a"]').replace('classes = [', '# classes = ['))
    with pytest.raises(SpecError, match="the evaluation API takes one row per test row"):
        load_spec(_spec(spec_dir, SERVE))
