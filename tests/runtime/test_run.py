"""runtime.run: the fallback rows, TensorRT input shapes, and resuming past a corrupt chunk."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from runtime.bundle import sha256_file
from runtime.errors import BackendError
from runtime.manifest import ImageSpec, InputSpec, Member, Variant
from runtime.run import RunOptions, run, trt_input_shapes
from tests.fixtures.bundles import check_valid, read
from tests.runtime import slow_backend

pytestmark = pytest.mark.timeout(120)


def with_fallback(bundle: Path, dest: Path, rows: dict[str, str]) -> Path:
    """A copy of ``bundle`` declaring ``fallback.csv`` with only ``rows`` (id -> label)."""
    shutil.copytree(bundle, dest)
    (dest / "fallback.csv").write_text("id,label\n" + "".join(f"{i},{label}\n" for i, label in rows.items()))
    path = dest / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["fallback"] = "fallback.csv"
    manifest["files"]["fallback.csv"] = sha256_file(dest / "fallback.csv")
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return dest


def test_a_fallback_missing_hidden_ids_is_completed_from_the_sample(digits_bundle, digits_dir, tmp_path, monkeypatch,
                                                                    capsys):
    """build.py checks the fallback against the public test ids only: hidden ids take the sample's rows."""
    sample = read(digits_dir / "data" / "sample_submission.csv")
    known = list(sample)[:200]
    bundle = with_fallback(digits_bundle, tmp_path / "bundle", {i: "7" for i in known})
    monkeypatch.setenv(slow_backend.CONFIG_ENV, str(tmp_path / "slow.json"))
    slow_backend.write_config(tmp_path / "slow.json", fail={"*": "every model fails"})
    out = tmp_path / "submission.csv"
    report = run(bundle, digits_dir / "data", out,
                 RunOptions(backend="slow", progress=False, work_dir=tmp_path / "work"))
    assert {m.status for m in report.members} == {"failed"} and report.covered_rows == 0
    sub = check_valid(out, digits_dir)
    assert {i: sub[i] for i in known} == {i: "7" for i in known}
    assert {i: sub[i] for i in sample if i not in set(known)} == {i: sample[i] for i in list(sample)[200:]}
    assert f"fallback.csv has no row for {len(sample) - 200} of {len(sample)} test id(s)" in capsys.readouterr().err


def _member(*inputs: InputSpec) -> Member:
    return Member(name="m", weight=1.0, inputs=inputs, output="y", variants=(Variant(name="fp32", file="m.onnx"),))


@pytest.mark.parametrize(("layout", "size", "expected"), [
    ("NCHW", None, (3, 32, 48)),
    ("NHWC", None, (32, 48, 3)),
    ("NCHW", (24, 20), (3, 24, 20)),  # an image_size rung of the ladder
    ("NHWC", (24, 20), (24, 20, 3)),
])
def test_trt_input_shapes_of_images_follow_the_variant_and_layout(layout, size, expected):
    image = ImageSpec(size=(32, 48), layout=layout)
    shape = ("batch", 3, "height", "width") if layout == "NCHW" else ("batch", "height", "width", 3)
    member = _member(InputSpec(name="img", dtype="float32", shape=shape, image=image))
    variant = Variant(name="small", file="m.onnx", image_size=size)
    assert trt_input_shapes(member, variant) == (("img", expected),)


def test_trt_input_shapes_of_tables_keep_every_dim_and_refuse_symbolic_ones():
    table = InputSpec(name="x", dtype="float32", shape=("batch", 4, 16), columns=tuple(f"c{i}" for i in range(64)))
    member = _member(table)
    assert trt_input_shapes(member, member.variants[0]) == (("x", (4, 16)),)
    ragged = _member(table, InputSpec(name="tokens", dtype="int64", shape=("batch", "seq"), columns=("t",)))
    with pytest.raises(BackendError, match=r"input 'tokens' has shape \['batch', 'seq'\].*symbolic dimension\(s\) seq"
                                          r".*--backend onnxruntime"):
        trt_input_shapes(ragged, ragged.variants[0])


def test_a_corrupt_chunk_is_recomputed_on_resume(digits_bundle, digits_dir, tmp_path):
    out, work = tmp_path / "submission.csv", tmp_path / "work"
    opts = RunOptions(progress=False, work_dir=work)
    run(digits_bundle, digits_dir / "data", out, opts)
    first = out.read_bytes()
    chunks = sorted(work.glob("checkpoints/*/mlp/fp32/*.npy"))
    assert len(chunks) > 1
    chunks[1].write_bytes(chunks[1].read_bytes()[:-40])  # torn: the name says done, the data is not all there
    out.unlink()
    report = run(digits_bundle, digits_dir / "data", out, opts)
    assert out.read_bytes() == first
    mlp = report.member("mlp")
    assert (mlp.status, mlp.chunks_computed, mlp.chunks_resumed) == ("done", 1, len(chunks) - 1)
    assert report.member("cnn").chunks_computed == 0 and report.covered_rows == 540
