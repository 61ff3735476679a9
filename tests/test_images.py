"""Image-folder test data: package a CNN over PNG files and run it, with a TTA variant.

The submission is checked against an independent computation (PIL + numpy +
onnxruntime directly), so a broken decode, resize, normalisation or flip fails.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.images import image_member, image_project as image_project_at

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

TTA = """
  [[model.variant]]
  name = "tta"
  tta = ["none", "hflip"]
"""


@pytest.fixture
def image_project(tmp_path) -> Path:
    """A tiny CNN over ten 20x24 RGB images (the loader must resize them to 16x16), with an hflip TTA rung."""
    root = tmp_path / "proj"
    image_project_at(root, [image_member(extra=TTA)])
    return root


def expected(root: Path, bundle: Path, flip: bool) -> np.ndarray:
    import onnxruntime as ort
    from PIL import Image

    xs = []
    for i in range(10):
        with Image.open(root / "data" / "images" / f"img{i:02d}.png") as im:
            a = np.asarray(im.convert("RGB").resize((16, 16), Image.BILINEAR), np.float32) / 255.0
        a = (a - [0.5, 0.4, 0.3]) / [0.2, 0.25, 0.3]
        xs.append(a.transpose(2, 0, 1))
    x = np.stack(xs).astype(np.float32)
    sess = ort.InferenceSession(str(bundle / "models" / "tiny" / "fp32.onnx"), providers=["CPUExecutionProvider"])
    p = 1 / (1 + np.exp(-sess.run(None, {"image": x})[0].astype(np.float64)))
    if flip:
        p = (p + 1 / (1 + np.exp(-sess.run(None, {"image": np.ascontiguousarray(x[..., ::-1])})[0].astype(np.float64)))) / 2
    return p


def read(path: Path) -> np.ndarray:
    with open(path) as f:
        return np.array([[float(r["a"]), float(r["b"])] for r in csv.DictReader(f)])


def test_images_package_and_run(image_project, tmp_path):
    import runtime
    from packager.build import package

    bundle = tmp_path / "bundle"
    package(image_project / "ninefit.toml", bundle)
    m = runtime.open_bundle(bundle).manifest
    assert m.data.format == "images" and m.members[0].variant("tta").tta == ("none", "hflip")
    out = tmp_path / "submission.csv"
    runtime.run(bundle, image_project / "data", out, runtime.RunOptions(progress=False))
    np.testing.assert_allclose(read(out), expected(image_project, bundle, flip=False), rtol=1e-4, atol=1e-5)
    assert not np.allclose(expected(image_project, bundle, flip=False), expected(image_project, bundle, flip=True))


def test_tta_variant_averages_the_flip(image_project, tmp_path):
    """The hflip TTA rung computes the mean of plain and flipped predictions."""
    import runtime
    from packager.build import package
    from runtime.data.testdata import open_test_data
    from runtime.execute.predict import predict_rows
    from runtime.run import load_runner

    bundle = tmp_path / "bundle"
    package(image_project / "ninefit.toml", bundle)
    b = runtime.open_bundle(bundle)
    member = b.manifest.members[0]
    variant = member.variant("tta")
    test = open_test_data(image_project / "data", b.manifest.data)
    with load_runner(b, member, variant, runtime.RunOptions()) as runner:
        got = predict_rows(runner, member, variant, test, 0, 10, 4)
    np.testing.assert_allclose(got, expected(image_project, bundle, flip=True), rtol=1e-4, atol=1e-5)


def test_bad_loader_choice_stops_the_run_up_front(image_project, tmp_path, monkeypatch):
    import runtime
    from packager.build import package
    from runtime.errors import UsageError

    bundle = tmp_path / "bundle"
    package(image_project / "ninefit.toml", bundle)
    monkeypatch.setenv("NINEFIT_LOADER", "opencv")
    out = tmp_path / "submission.csv"
    with pytest.raises(UsageError, match="NINEFIT_LOADER='opencv' is not one of: pil, dali"):
        runtime.run(bundle, image_project / "data", out, runtime.RunOptions(progress=False))
    assert not out.exists()


def test_two_lanes_decode_each_image_once_for_both_members(image_project, tmp_path):
    """Two members reading the same images on two lanes: one reader (each file decoded once), the same bytes."""
    import runtime
    from packager.build import package

    spec = image_project_at(image_project, [image_member(), image_member("tiny2")])
    bundle = tmp_path / "bundle"
    package(spec, bundle)
    outs = {}
    for lanes in (1, 2):
        outs[lanes] = tmp_path / f"lanes{lanes}.csv"
        report = runtime.run(bundle, image_project / "data", outs[lanes],
                             runtime.RunOptions(progress=False, lanes=lanes, threads=1))
        assert [m.status for m in report.members] == ["done", "done"]
        assert len(report.lanes) == lanes and all(lane["rows"] for lane in report.lanes)
        assert report.stages["images_decoded"] == 10  # the data path's one reader: once, for both members
    assert outs[1].read_bytes() == outs[2].read_bytes()
