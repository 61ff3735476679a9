"""Image-folder test data: package a CNN over PNG files and run it, with a TTA variant.

The submission is checked against an independent computation (PIL + numpy +
onnxruntime directly), so a broken decode, resize, normalisation or flip fails.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

SPEC = """
name = "shapes"
[data]
format = "images"
test = "data/test.csv"
id_column = "image_id"
image_column = "file"
image_dir = "images"
sample_submission = "data/sample_submission.csv"

[[model]]
name = "tiny"
factory = "net:make"
init = "random"
output = "probs"
activation = "sigmoid"
batch_size = 4
  [[model.input]]
  name = "image"
  shape = ["batch", 3, 16, 16]
  image = { size = [16, 16], mean = [0.5, 0.4, 0.3], std = [0.2, 0.25, 0.3], channels = 3 }
  [[model.variant]]
  name = "tta"
  tta = ["none", "hflip"]
"""

NET = """
import torch
def make():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 14 * 14, 2)
    ).eval()
"""


@pytest.fixture
def image_project(tmp_path) -> Path:
    from PIL import Image

    root = tmp_path / "proj"
    (root / "data" / "images").mkdir(parents=True)
    (root / "ninefit.toml").write_text(SPEC)
    (root / "net.py").write_text(NET)
    rng = np.random.default_rng(0)
    ids = [f"img{i:02d}" for i in range(10)]
    for i in ids:  # 20x24 RGB images: the loader must resize them to 16x16
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(root / "data" / "images" / f"{i}.png")
    (root / "data" / "test.csv").write_text("image_id,file\n" + "".join(f"{i},{i}.png\n" for i in ids))
    (root / "data" / "sample_submission.csv").write_text("image_id,a,b\n" + "".join(f"{i},0.5,0.5\n" for i in ids))
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
    package(image_project / "ninefit.toml", bundle, log=lambda _m: None)
    m = runtime.open_bundle(bundle).manifest
    assert m.data.format == "images" and m.members[0].variant("tta").tta == ("none", "hflip")
    out = tmp_path / "submission.csv"
    runtime.run(bundle, image_project / "data", out, runtime.RunOptions(progress=False))
    np.testing.assert_allclose(read(out), expected(image_project, bundle, flip=False), rtol=1e-4, atol=1e-5)
    assert not np.allclose(expected(image_project, bundle, flip=False), expected(image_project, bundle, flip=True))


def test_tta_variant_averages_the_flip(image_project, tmp_path):
    """The hflip TTA rung computes the mean of plain and flipped predictions."""
    import runtime
    from runtime.data.testdata import open_test_data
    from runtime.execute.predict import predict_rows
    from runtime.run import load_runner
    from packager.build import package

    bundle = tmp_path / "bundle"
    package(image_project / "ninefit.toml", bundle, log=lambda _m: None)
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
    package(image_project / "ninefit.toml", bundle, log=lambda _m: None)
    monkeypatch.setenv("NINEFIT_LOADER", "opencv")
    out = tmp_path / "submission.csv"
    with pytest.raises(UsageError, match="NINEFIT_LOADER='opencv' is not one of: pil, dali"):
        runtime.run(bundle, image_project / "data", out, runtime.RunOptions(progress=False))
    assert not out.exists()


SECOND = """
[[model]]
name = "tiny2"
factory = "net:make"
init = "random"
output = "probs"
activation = "sigmoid"
batch_size = 4
  [[model.input]]
  name = "image"
  shape = ["batch", 3, 16, 16]
  image = { size = [16, 16], mean = [0.5, 0.4, 0.3], std = [0.2, 0.25, 0.3], channels = 3 }
"""


def test_two_lanes_decode_each_image_once_for_both_members(image_project, tmp_path):
    """Two members reading the same images on two lanes: one reader (each file decoded once), the same bytes."""
    import runtime
    from packager.build import package

    spec = image_project / "ninefit.toml"
    spec.write_text(SPEC.replace('''  [[model.variant]]
  name = "tta"
  tta = ["none", "hflip"]
''', "") + SECOND)
    bundle = tmp_path / "bundle"
    package(spec, bundle, log=lambda _m: None)
    outs = {}
    for lanes in (1, 2):
        outs[lanes] = tmp_path / f"lanes{lanes}.csv"
        report = runtime.run(bundle, image_project / "data", outs[lanes],
                             runtime.RunOptions(progress=False, lanes=lanes, threads=1))
        assert [m.status for m in report.members] == ["done", "done"]
        assert len(report.lanes) == lanes and all(lane["rows"] for lane in report.lanes)
        assert report.stages["images_decoded"] == 10  # the data path's one reader: once, for both members
    assert outs[1].read_bytes() == outs[2].read_bytes()
