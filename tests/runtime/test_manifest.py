"""Manifest JSON round trip and schema-version handling."""

from __future__ import annotations

import json

import pytest

from runtime.errors import BundleError, SchemaVersionError
from runtime.manifest import SCHEMA_VERSION, DataSpec, ImageSpec, InputSpec, Manifest, Member, SubmissionSpec, Variant

pytestmark = pytest.mark.timeout(30)


def make_manifest() -> Manifest:
    image = ImageSpec(size=(32, 32), mean=(0.5, 0.5, 0.5), std=(0.2, 0.2, 0.2))
    member = Member(
        name="cnn", weight=0.7, score=0.91, output="logits", activation="softmax", batch_size=32, n_outputs=3,
        inputs=(InputSpec(name="x", dtype="float32", shape=("batch", 3, 32, 32), image=image),),
        variants=(
            Variant(name="fp32", file="models/cnn/fp32.onnx"),
            Variant(name="fp16-tta", file="models/cnn/fp16.onnx", precision="fp16", tta=("none", "hflip"), image_size=(24, 24), value_factor=0.9),
        ),
    )
    return Manifest(
        name="demo", members=(member,), combiner="geometric_mean",
        data=DataSpec(format="images", test="test.csv", id_column="id", image_column="path", image_dir="img"),
        submission=SubmissionSpec(id_column="id", columns=("a", "b", "c")),
        files={"models/cnn/fp32.onnx": "ab" * 32}, profile={"members": {"cnn": {"fp32": {"s_per_row": 0.01}}}},
    )


def test_round_trip_is_exact():
    m = make_manifest()
    again = Manifest.from_dict(json.loads(m.to_json()))
    assert again == m
    assert again.members[0].variants[1].image_size == (24, 24)
    assert again.members[0].inputs[0].image.mean == (0.5, 0.5, 0.5)
    assert again.member("cnn").variant("fp16-tta").tta == ("none", "hflip")


def test_value_uses_score_when_given():
    m = make_manifest().members[0]
    assert m.value == pytest.approx(0.7 * 0.91)


def test_newer_schema_is_refused_with_a_clear_message():
    d = make_manifest().to_dict()
    d["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(SchemaVersionError, match=f"schema version {SCHEMA_VERSION + 1}.*up to {SCHEMA_VERSION}"):
        Manifest.from_dict(d)


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("schema_version"), "no integer 'schema_version'"),
    (lambda d: d.update(surprise=1), "unknown Manifest keys"),
    (lambda d: d["members"][0].pop("inputs"), "does not match schema version"),
])
def test_malformed_manifest(mutate, message):
    d = make_manifest().to_dict()
    mutate(d)
    with pytest.raises(BundleError, match=message):
        Manifest.from_dict(d)


def test_unknown_member_and_variant_are_named():
    m = make_manifest()
    with pytest.raises(BundleError, match="members: cnn"):
        m.member("gbm")
    with pytest.raises(BundleError, match="available: fp32, fp16-tta"):
        m.members[0].variant("int8")


@pytest.mark.parametrize(("text", "kind"), [("[1, 2]", "array"), ('"manifest"', "string"), ("null", "null"), ("3", "number")])
def test_manifest_json_that_is_not_an_object_is_a_bundle_error(tmp_path, text, kind):
    (tmp_path / "manifest.json").write_text(text)
    with pytest.raises(BundleError, match=f"manifest is a JSON {kind}, expected an object with 'schema_version'"):
        Manifest.load(tmp_path)


def test_a_nested_value_that_is_not_an_object_is_named():
    d = make_manifest().to_dict()
    d["data"] = "images"
    with pytest.raises(BundleError, match="DataSpec must be a JSON object, got a string"):
        Manifest.from_dict(d)
