"""The spec parser: valid specs, and a clear SpecError for each kind of mistake."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from packager.spec import load_spec
from runtime.errors import SpecError

pytestmark = pytest.mark.timeout(180)  # the digits fixture trains two models on first use


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
        ('weight = 0.6', 'weight = "heavy"', '`weight` in [[model]] \'cnn\' is "heavy" (a string); expected a positive number'),
        ('weight = 0.6', 'weight = -1', "`weight` in [[model]] 'cnn' is -1 (an integer); expected a positive number"),
        ('activation = "softmax"', 'activation = "relu"', 'is "relu" (a string); expected one of: "none", "softmax", "sigmoid"'),
        ('shape = ["batch", 1, 8, 8]', 'shape = ["batch", 1, 8, 9]', "needs 72 values per row but 64 column(s)"),
        ('shape = ["batch", 1, 8, 8]', 'shape = [1, 1, 8, 8]', "expected a symbolic first (batch) dimension"),
        ('columns = "px*"', 'columns = "feature_*"', "matches no column of the test data"),
        ('factory = "models:make_cnn"', 'factory = "models.make_cnn"', 'expected "module:function"'),
        ('factory = "models:make_cnn"', 'factory = "models:make_cnn"\nonnx = "x.onnx"', "give exactly one of"),
        ('precision = "fp16"', 'precision = "int4"', 'expected one of: "fp32", "fp16"'),
        ('mode = "argmax"', 'mode = "rank"', 'expected one of: "values", "argmax"'),
        ('combiner = "mean"', 'combiner = "median"', 'expected one of: "mean", "geometric_mean"'),
        ('sample_submission = "data/sample_submission.csv"', 'sample_submission = "data/nope.csv"', "nope.csv not found"),
        ('weight = 0.6', 'weight = 0.6\nsample_inputs = 3', "`sample_inputs` in [[model]] 'cnn' is 3 (an integer); expected a string"),
        ('combiner = "mean"', 'combiner = "mean"\nfallback = ["a.csv"]', '`fallback` in [ensemble] is ["a.csv"] (an array); expected a string'),
        ('value_factor = 0.99', 'value_factor = 0.99\nimage_size = ["big", 8]', '`image_size` in [[model.variant]] \'fp16\' of model \'cnn\' is ["big", 8]'),
        ('value_factor = 0.99', 'value_factor = 0.99\nimage_size = 8', "is 8 (an integer); expected [height, width] in pixels"),
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
    ('{ size = [16, 16], mean = ["0.5", 0.4, 0.3] }', 'is ["0.5", 0.4, 0.3] (an array); expected a non-empty array of numbers'),
    ('{ size = [16, 16], std = [true] }', "`std` in the image table of [[model.input]] 'image' of model 'tiny' is [true]"),
    ('{ size = [16, 16], std = [] }', "is [] (an array); expected a non-empty array of positive numbers"),
    ('{ size = [16, 16], std = [0.5, 0, 0.5] }', "is [0.5, 0, 0.5] (an array); expected a non-empty array of positive numbers"),
    ('{ size = [16, 16], mean = 0.5 }', "`mean` in the image table of [[model.input]] 'image' of model 'tiny' is 0.5 (a number)"),
    ('{ size = [16.5, 16] }', "is [16.5, 16] (an array); expected [height, width] in pixels"),
    ('{ size = [true, 16] }', "is [true, 16] (an array); expected [height, width] in pixels"),
    ('{ size = [16, 16], scale = 0 }', "`scale` in the image table of [[model.input]] 'image' of model 'tiny' is 0 (an integer); expected a positive number"),
    ('{ size = [16, 16], sise = [8, 8] }', "`sise` in the image table of [[model.input]] 'image' of model 'tiny': unknown key; did you mean `size`?"),
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


# -- Through the command line: a strict spec, every mistake exit 2 with one paragraph -----------------------


def package_fails(capsys, spec: Path, *needles: str) -> str:
    from packager.cli import main
    from tests.cli_checks import fails_cleanly

    out = spec.parent / "bundle"
    err = fails_cleanly(capsys, main, ["package", str(spec), "-o", str(out), "--no-wheels", "--no-profile"], *needles)
    assert len(err.strip().splitlines()) == 1, err  # one paragraph
    assert not out.exists() and not [p for p in spec.parent.iterdir() if p.name.startswith(".bundle.")]
    return err


@pytest.mark.parametrize("old, new, needle", [
    ('name = "digits"', 'name = "digits"\nverify_row = 64', "`verify_row` at the top level: unknown key; did you mean `verify_rows`?"),
    ("[data]", "[dta]", "`dta` at the top level: unknown key; did you mean `data`?"),
    ('id_column = "id"', 'id_column = "id"\nimage_colum = "path"', "`image_colum` in [data]: unknown key; did you mean `image_column`?"),
    ('mode = "argmax"', 'mode = "argmax"\nclases = ["a"]', "`clases` in [submission]: unknown key; did you mean `classes`?"),
    ('combiner = "mean"', 'combiner = "mean"\nfalback = "prior.csv"', "`falback` in [ensemble]: unknown key; did you mean `fallback`?"),
    ("weight = 0.6", "wieght = 0.6", "`wieght` in [[model]] 'cnn': unknown key; did you mean `weight`?"),
    ('checkpoint = "checkpoints/cnn.pt"', 'chekpoint = "checkpoints/cnn.pt"', "`chekpoint` in [[model]] 'cnn': unknown key; did you mean `checkpoint`?"),
    ("batch_size = 256", "batchsize = 256", "`batchsize` in [[model]] 'cnn': unknown key; did you mean `batch_size`?"),
    ("weight = 0.6", "weight = 0.6\nhumidity = 3", "`humidity` in [[model]] 'cnn': unknown key; the keys of this table are: name, factory"),
    ('dtype = "float32"', 'dtyp = "float32"', "`dtyp` in [[model.input]] 'pixels' of model 'cnn': unknown key; did you mean `dtype`?"),
    ("value_factor = 0.99", "value_factr = 0.99", "`value_factr` in [[model.variant]] 'fp16' of model 'cnn': unknown key; did you mean `value_factor`?"),
    ("  [[model.variant]]", "  [[model.varaint]]", "`varaint` in [[model]] 'cnn': unknown key; did you mean `variant`?"),
])
def test_unknown_keys_are_refused_with_the_closest_key(spec_dir, capsys, old, new, needle):
    package_fails(capsys, edit(spec_dir, old, new), needle)


def test_unknown_key_in_the_image_table(tmp_path, capsys):
    (tmp_path / "sample_submission.csv").write_text("image_id,a\nx,0\n")
    spec = tmp_path / "ninefit.toml"
    spec.write_text(IMAGES.replace("IMAGE", "{ size = [16, 16], meen = [0.5] }"))
    package_fails(capsys, spec, "`meen` in the image table of [[model.input]] 'image' of model 'tiny': unknown key; did you mean `mean`?")


@pytest.mark.parametrize("old, new, needles", [
    ('checkpoint = "checkpoints/cnn.pt"', "",
     ["[[model]] 'cnn'", "has no checkpoint", "random, untrained weights", 'init = "random"']),
    ('checkpoint = "checkpoints/cnn.pt"', 'checkpoint = "checkpoints/cnn.pt"\ninit = "random"',
     ["[[model]] 'cnn'", 'init = "random"', "a checkpoint is given too"]),
    ('checkpoint = "checkpoints/cnn.pt"', 'init = "zeros"', ["`init` in [[model]] 'cnn' is \"zeros\" (a string); expected one of: \"random\""]),
    ('factory = "models:make_mlp"\ncheckpoint = "checkpoints/mlp.pt"', 'torchscript = "mlp.ts"\ninit = "random"',
     ["[[model]] 'mlp'", "init applies only to a factory model"]),
    ('factory = "models:make_mlp"\ncheckpoint = "checkpoints/mlp.pt"', 'onnx = "mlp.onnx"\ncheckpoint = "checkpoints/mlp.pt"',
     ["[[model]] 'mlp'", "checkpoint applies only to a factory model"]),
])
def test_a_factory_without_weights_must_say_so(spec_dir, capsys, old, new, needles):
    package_fails(capsys, edit(spec_dir, old, new), *needles)


@pytest.mark.parametrize("old, new, needle", [
    ("weight = 0.6", 'weight = "0.6"', "`weight` in [[model]] 'cnn' is \"0.6\" (a string); expected a positive number"),
    ("weight = 0.6", "weight = nan", "`weight` in [[model]] 'cnn' is nan (a number); expected a positive number"),
    ("weight = 0.6", "weight = -0.6", "`weight` in [[model]] 'cnn' is -0.6 (a number); expected a positive number"),
    ("weight = 0.6", "weight = 0", "`weight` in [[model]] 'cnn' is 0 (an integer); expected a positive number"),
    ("weight = 0.6", "weight = true", "`weight` in [[model]] 'cnn' is true (a boolean); expected a positive number"),
    ("batch_size = 256", "batch_size = 0", "`batch_size` in [[model]] 'cnn' is 0 (an integer); expected a whole number of rows, at least 1"),
    ("batch_size = 256", "batch_size = true", "`batch_size` in [[model]] 'cnn' is true (a boolean); expected a whole number"),
    ("batch_size = 256", "batch_size = 25.6", "`batch_size` in [[model]] 'cnn' is 25.6 (a number); expected a whole number"),
    ('dtype = "float32"', 'dtype = "float"', "`dtype` in [[model.input]] 'pixels' of model 'cnn' is \"float\" (a string); expected one of: \"float32\""),
    ('precision = "fp16"', 'precision = "int4"', "`precision` in [[model.variant]] 'fp16' of model 'cnn' is \"int4\" (a string); expected one of: \"fp32\", \"fp16\", \"int8\", \"bf16\""),
    ("weight = 0.6", 'weight = 0.6\nprecision = "half"', "`precision` in [[model]] 'cnn' is \"half\" (a string); expected one of: \"fp32\", \"fp16\""),
    ("weight = 0.6", "weight = 0.6\nscore = inf", "`score` in [[model]] 'cnn' is inf (a number); expected a positive validation score"),
    ("weight = 0.6", "weight = 0.6\natol = -1e-4", "`atol` in [[model]] 'cnn' is -0.0001 (a number); expected a number >= 0"),
    ("value_factor = 0.99", "value_factor = nan", "`value_factor` in [[model.variant]] 'fp16' of model 'cnn' is nan (a number); expected a number in (0, 1]"),
    ('name = "digits"', 'name = "digits"\nverify_rows = 0', "`verify_rows` at the top level is 0 (an integer); expected a whole number of rows"),
    ('shape = ["batch", 1, 8, 8]', 'shape = ["batch", true, 8, 8]', "`shape` in [[model.input]] 'pixels' of model 'cnn' is [\"batch\", true, 8, 8]"),
    ('name = "cnn"', 'name = "../cnn"', "`name` in [[model]] '../cnn' is \"../cnn\" (a string); expected a name of letters, digits"),
    ('mode = "argmax"', 'mode = "values"', "classes applies only with mode = \"argmax\""),
    ('columns = "px*"', 'columns = "px*"\n  image = { size = [8, 8] }', "image applies only with [data] format = \"images\""),
])
def test_wrong_types_and_values_are_refused(spec_dir, capsys, old, new, needle):
    package_fails(capsys, edit(spec_dir, old, new), needle)


def test_a_single_bracket_model_table(spec_dir, capsys):
    spec = spec_dir / "ninefit.toml"
    text = spec.read_text()
    spec.write_text(text[:text.index('[[model]]\nname = "mlp"')].replace("[[model]]", "[model]"))
    package_fails(capsys, spec, "`model` at the top level is { name = \"cnn\", factory = ",
                  "(a table); expected an array of tables, written [[model]] (double brackets)")


@pytest.mark.timeout(300)
def test_random_init_is_packaged_and_reported_as_untrained(digits_dir, tmp_path, capsys):
    """init = "random" packages the factory's initial weights, and the bundle says which members are untrained."""
    import json

    from packager.cli import main

    work = tmp_path / "digits"
    shutil.copytree(digits_dir, work)
    spec = edit(work, 'checkpoint = "checkpoints/cnn.pt"', 'init = "random"')
    out = tmp_path / "bundle"
    assert main(["package", str(spec), "-o", str(out), "--no-wheels", "--no-profile"]) == 0
    stdout = capsys.readouterr().out
    assert "warning: model 'cnn' is packaged with random initial weights" in stdout
    report = (out / "report.md").read_text()
    cnn = next(line for line in report.splitlines() if line.startswith("| cnn |"))
    mlp = next(line for line in report.splitlines() if line.startswith("| mlp |"))
    assert cnn.split(" | ")[6] == "random init, untrained" and mlp.split(" | ")[6] == "trained (checkpoint)"
    assert "**Untrained:** cnn carries random initial weights" in report
    members = {m["name"]: m for m in json.loads((out / "manifest.json").read_text())["members"]}
    assert (members["cnn"]["trained"], members["mlp"]["trained"]) == (False, True)
    assert members["cnn"]["source"] == members["mlp"]["source"] == "factory"
