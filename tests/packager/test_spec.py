"""The spec parser: valid specs, and a clear SpecError for each kind of mistake."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from packager.spec import load_spec
from runtime.errors import SpecError

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def spec_dir(digits_dir, tmp_path) -> Path:
    d = tmp_path / "spec"
    shutil.copytree(digits_dir, d, ignore=shutil.ignore_patterns("checkpoints"))
    return d


def edit(spec_dir: Path, old: str, new: str) -> Path:
    p = spec_dir / "ninefit.toml"
    text = p.read_text()
    assert old in text, f"test bug: {old!r} not in spec"
    p.write_text(text.replace(old, new, 1))
    return p


def test_digits_spec_parses(spec_dir):
    spec = load_spec(spec_dir / "ninefit.toml")
    assert spec.name == "digits"
    assert [m.name for m in spec.models] == ["cnn", "mlp"]
    cnn = spec.models[0]
    assert cnn.source == "factory" and cnn.factory == "models:make_cnn"
    assert cnn.path == spec_dir / "checkpoints" / "cnn.pt"
    assert cnn.inputs[0].columns == tuple(f"px{i}" for i in range(64))
    assert cnn.inputs[0].shape == ("batch", 1, 8, 8)
    assert [v.name for v in cnn.variants] == ["fp32", "fp16"]
    assert cnn.variants[1].value_factor == 0.99
    assert spec.submission.mode == "argmax" and spec.submission.columns == ("label",)
    assert spec.submission.classes == tuple(str(i) for i in range(10))
    assert spec.data.id_column == "id" and spec.data.test == "test.csv"


@pytest.mark.parametrize(
    "old, new, message",
    [
        ('name = "cnn"\n', "", "missing required key 'name'"),
        ('weight = 0.6', 'weight = "heavy"', "weight = 'heavy' should be a float"),
        ('weight = 0.6', 'weight = -1', "expected a positive number"),
        ('activation = "softmax"', 'activation = "relu"', "expected one of: none, softmax, sigmoid"),
        ('shape = ["batch", 1, 8, 8]', 'shape = ["batch", 1, 8, 9]', "needs 72 values per row but 64 column(s)"),
        ('shape = ["batch", 1, 8, 8]', 'shape = [1, 1, 8, 8]', "batch) dimension must be symbolic"),
        ('columns = "px*"', 'columns = "feature_*"', "matches no column of the test data"),
        ('factory = "models:make_cnn"', 'factory = "models.make_cnn"', 'expected "module:function"'),
        ('factory = "models:make_cnn"', 'factory = "models:make_cnn"\nonnx = "x.onnx"', "give exactly one of"),
        ('precision = "fp16"', 'precision = "int4"', "expected one of: fp32, fp16"),
        ('mode = "argmax"', 'mode = "rank"', "expected one of: values, argmax"),
        ('combiner = "mean"', 'combiner = "median"', "expected one of: mean, geometric_mean"),
        ('sample_submission = "data/sample_submission.csv"', 'sample_submission = "data/nope.csv"', "nope.csv not found"),
        ('weight = 0.6', 'weight = 0.6\nsample_inputs = 3', "sample_inputs = 3 should be a str"),
        ('combiner = "mean"', 'combiner = "mean"\nfallback = ["a.csv"]', "fallback = ['a.csv'] should be a str"),
        ('value_factor = 0.99', 'value_factor = 0.99\nimage_size = ["big", 8]', "image_size = ['big', 8]; expected [height, width]"),
        ('value_factor = 0.99', 'value_factor = 0.99\nimage_size = 8', "image_size = 8 should be a list"),
    ],
)
def test_spec_errors_name_the_problem(spec_dir, old, new, message):
    with pytest.raises(SpecError) as info:
        load_spec(edit(spec_dir, old, new))
    assert message in str(info.value)


def test_invalid_toml_and_missing_file(spec_dir, tmp_path):
    with pytest.raises(SpecError, match="not found"):
        load_spec(tmp_path / "absent.toml")
    bad = edit(spec_dir, 'name = "digits"', 'name = "digits')
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(bad)


def test_duplicate_model_names(spec_dir):
    with pytest.raises(SpecError, match="model names must be unique"):
        load_spec(edit(spec_dir, 'name = "mlp"', 'name = "cnn"'))


IMAGES = """
name = "shapes"
[data]
format = "images"
test = "test.csv"
id_column = "image_id"
image_column = "file"
sample_submission = "sample_submission.csv"

[[model]]
name = "tiny"
onnx = "tiny.onnx"
  [[model.input]]
  name = "image"
  shape = ["batch", 3, 16, 16]
  image = IMAGE
"""


@pytest.mark.parametrize("image, message", [
    ('{ size = [16, 16], mean = ["0.5", 0.4, 0.3] }', "mean = ['0.5', 0.4, 0.3]; expected a non-empty list of numbers"),
    ('{ size = [16, 16], std = [true] }', "std = [True]; expected a non-empty list of numbers"),
    ('{ size = [16, 16], std = [] }', "std = []; expected a non-empty list of numbers"),
    ('{ size = [16, 16], mean = 0.5 }', "mean = 0.5 should be a list"),
    ('{ size = [16.5, 16] }', "size = [16.5, 16]; expected [height, width] in pixels"),
])
def test_image_settings_of_the_wrong_type(tmp_path, image, message):
    (tmp_path / "sample_submission.csv").write_text("image_id,a\nx,0\n")
    spec = tmp_path / "ninefit.toml"
    spec.write_text(IMAGES.replace("IMAGE", image))
    with pytest.raises(SpecError) as info:
        load_spec(spec)
    assert message in str(info.value)


def test_image_settings_parse(tmp_path):
    (tmp_path / "sample_submission.csv").write_text("image_id,a\nx,0\n")
    spec = tmp_path / "ninefit.toml"
    spec.write_text(IMAGES.replace("IMAGE", "{ size = [16, 16], mean = [1, 0.5, 0], std = [2] }"))
    image = load_spec(spec).models[0].inputs[0].image
    assert image.mean == (1.0, 0.5, 0.0) and image.std == (2.0,)


@pytest.mark.parametrize("case, message", [
    ("folder", "is a folder"),
    ("latin1", "is not UTF-8 text"),
    ("unreadable", "cannot be read"),
])
def test_a_spec_that_is_no_text_file(tmp_path, case, message):
    import os

    path = tmp_path / "ninefit.toml"
    if case == "folder":
        path.mkdir()
    elif case == "latin1":
        path.write_bytes('name = "caf\u00e9"\n'.encode("latin-1"))
    else:
        if os.geteuid() == 0:
            pytest.skip("root reads files whatever their mode")
        path.write_text('name = "x"\n')
        path.chmod(0)
    with pytest.raises(SpecError, match=message):
        load_spec(path)


def test_unreadable_test_table_is_a_spec_error(spec_dir):
    (spec_dir / "data" / "test.csv").write_bytes(b"\xff\xfeid,px0\n")
    with pytest.raises(SpecError, match="cannot be read for its column names"):
        load_spec(spec_dir / "ninefit.toml")
