"""The NVIDIA DALI image loader (NINEFIT_LOADER=dali) against the PIL path.

The parity tests skip where DALI is not installed (CI); the tests of the
variable itself, and of the message without DALI, run everywhere. Tolerances
are in grey levels (0..255), measured with DALI 2.4 CPU pipelines (see
runtime/data/loaders/dali.py): the resampling kernels agree inside the image and
differ on the one-pixel border, where Pillow renormalises the kernel and DALI
repeats the edge pixel.
"""

from __future__ import annotations

import csv
import sys

import numpy as np
import pytest

from runtime import data as _data
from runtime.data.loaders import LOADER_ENV, image_loader
from runtime.errors import BackendUnavailableError, DataError, UsageError
from runtime.manifest import DataSpec, ImageSpec, InputSpec
from runtime.settings import env_choice
from tests.fixtures.images import image_member, image_project, write_varied_images

pytestmark = pytest.mark.timeout(60)

#: Inside the one-pixel border: rounding (Pillow rounds between its passes; luma rounding for grayscale).
#: Measured: 1 on 440 images like these (40 seeds), 2 on grayscale-from-RGB noise upscaled to 224x224.
INTERIOR_LEVELS = 2
#: On the border. Measured: 20 on the same 440 images (mostly pure noise, up to 9x downscale); the kernel
#: weight that overhangs an edge is 1/8 when downscaling, which bounds it near 32 on edges (more in corners).
BORDER_LEVELS = 24
#: Mean difference over whole images. Measured: 0.61 at most.
MEAN_LEVELS = 1.0

_NO_DALI = "NVIDIA DALI is not installed (pip install nvidia-dali-cuda120); the DALI loader cannot be compared with PIL"


@pytest.fixture
def dali():
    return pytest.importorskip("nvidia.dali", reason=_NO_DALI)


# -- the variable ------------------------------------------------------------------------------------
def test_loader_defaults_to_pil_and_reads_the_variable():
    assert image_loader({}) == "pil"
    assert image_loader({LOADER_ENV: ""}) == "pil"
    assert image_loader({LOADER_ENV: " DALI "}) == "dali"
    assert env_choice("X", ("a", "b"), "a", {"X": "B"}) == "b"


def test_bogus_loader_names_the_variable_and_the_choices(monkeypatch, image_data):
    with pytest.raises(UsageError, match=r"NINEFIT_LOADER='bogus' is not one of: pil, dali"):
        image_loader({LOADER_ENV: "bogus"})
    monkeypatch.setenv(LOADER_ENV, "bogus")
    test, inp = image_data(ImageSpec(size=(8, 8)))
    with pytest.raises(UsageError, match=r"NINEFIT_LOADER='bogus' is not one of: pil, dali \(unset it for pil\)"):
        test.feed(_member(inp), 0, 2)


def test_without_dali_the_error_says_how_to_install_it(monkeypatch, image_data):
    monkeypatch.setitem(sys.modules, "nvidia.dali", None)  # as if it were not installed
    monkeypatch.setenv(LOADER_ENV, "dali")
    test, inp = image_data(ImageSpec(size=(8, 8)))
    with pytest.raises(BackendUnavailableError, match=r"pip install nvidia-dali-cuda120.*or unset NINEFIT_LOADER"):
        test.feed(_member(inp), 0, 2)


# -- parity with PIL ---------------------------------------------------------------------------------
@pytest.fixture
def image_data(tmp_path):
    """``make(image_spec) -> (TestData, InputSpec)`` over 11 images in tmp_path."""
    import pandas as pd

    names = write_varied_images(tmp_path / "images", 11)
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(len(names))], "file": names})
    spec = DataSpec(format="images", test="test.csv", id_column="id", image_column="file", image_dir="images")

    def make(image: ImageSpec) -> tuple[_data.TestData, InputSpec]:
        h, w = image.size
        shape = ("batch", image.channels, h, w) if image.layout == "NCHW" else ("batch", h, w, image.channels)
        return _data.TestData(frame["id"], frame, spec, tmp_path), InputSpec("x", "float32", shape, image=image)

    return make


def _member(inp: InputSpec):
    from runtime.manifest import Member, Variant

    return Member(name="m", weight=1.0, inputs=(inp,), output="y", variants=(Variant(name="full", file="m.onnx"),))


def _levels(batch: np.ndarray, image: ImageSpec) -> np.ndarray:
    """Undo the normalisation, channels last: grey levels 0..255."""
    x = batch.transpose(0, 2, 3, 1) if image.layout == "NCHW" else batch
    return (x * np.asarray(image.std, np.float32) + np.asarray(image.mean, np.float32)) / image.scale


def assert_like_pil(got: np.ndarray, ref: np.ndarray, image: ImageSpec) -> None:
    assert got.shape == ref.shape and got.dtype == ref.dtype == np.float32
    d = np.abs(_levels(got, image) - _levels(ref, image))
    assert d[:, 1:-1, 1:-1].max() <= INTERIOR_LEVELS, f"interior differs by {d[:, 1:-1, 1:-1].max()} grey levels"
    assert d.max() <= BORDER_LEVELS, f"border differs by {d.max()} grey levels"
    assert d.mean() <= MEAN_LEVELS, f"mean difference {d.mean()} grey levels"


@pytest.mark.parametrize("channels", [3, 1])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("size", [(16, 20), (48, 33)])  # mostly down-, mostly upscaled
def test_dali_matches_pil(dali, image_data, monkeypatch, channels, layout, size):
    mean, std = ((0.5, 0.4, 0.3), (0.2, 0.25, 0.3)) if channels == 3 else ((0.45,), (0.22,))
    image = ImageSpec(size=size, mean=mean, std=std, channels=channels, layout=layout)
    test, inp = image_data(image)
    member = _member(inp)
    # Batches of 4 over 11 rows (the last one partial), then rows [3, 7), through one TestData.
    ranges = [(0, 4), (4, 8), (8, 11), (3, 7)]
    monkeypatch.delenv(LOADER_ENV, raising=False)
    ref = [test.feed(member, a, b)["x"] for a, b in ranges]
    monkeypatch.setenv(LOADER_ENV, "dali")
    got = [test.feed(member, a, b)["x"] for a, b in ranges]
    for (a, b), g, r in zip(ranges, got, ref):
        assert g.shape[0] == b - a
        assert_like_pil(g, r, image)
    from runtime.data.loaders.dali import loader_for

    assert loader_for(test).pipelines == 1  # one pipeline, built once, reused for every batch


def test_dali_variant_size_and_split_batches(dali, image_data, monkeypatch):
    """A variant's image_size overrides the spec's; requests past max_batch are split, in order."""
    from runtime.data.loaders.dali import DaliImageLoader

    image = ImageSpec(size=(16, 16), mean=(0.5,), std=(0.25,), layout="NHWC")
    test, inp = image_data(image)
    monkeypatch.delenv(LOADER_ENV, raising=False)
    ref = test.feed(_member(inp), 2, 11, image_size=(12, 18))["x"]
    paths = [test.root / "images" / f for f in test.frame["file"].iloc[2:11]]
    loader = DaliImageLoader(device_id=None, max_batch=4)  # 4 + 4 + 1
    got = loader.load(paths, image, (12, 18))
    assert got.shape == (9, 12, 18, 3)
    assert_like_pil(got, ref, ImageSpec(size=(12, 18), mean=(0.5,), std=(0.25,), layout="NHWC"))


def test_dali_bad_image_is_a_data_error(dali, image_data, monkeypatch):
    from runtime.data.loaders.dali import DaliImageLoader

    image = ImageSpec(size=(8, 8))
    test, _ = image_data(image)
    folder = test.root / "images"
    (folder / "broken.png").write_bytes(b"not an image at all")
    loader = DaliImageLoader(device_id=None)
    with pytest.raises(DataError, match=r"could not read image .*missing\.png"):
        loader.load([folder / "missing.png"], image)
    with pytest.raises(DataError, match=r"could not decode or resize 2 image\(s\) \(im00\.png, broken\.png\)"):
        loader.load([folder / "sub" / "im00.png", folder / "broken.png"], image)
    assert loader.load([folder / "sub" / "im00.png"], image).shape == (1, 3, 8, 8)  # the next batch works again


@pytest.mark.gpu
def test_dali_gpu_decoder_matches_pil(dali, image_data):
    """The mixed (nvJPEG) decoder on GPU 0. Its JPEG decode differs from libjpeg-turbo; the interior
    tolerance here is a guess until measured on a GPU (the message prints what was found)."""
    from runtime.data.loaders.dali import DaliImageLoader

    image = ImageSpec(size=(16, 20), mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))
    test, inp = image_data(image)
    paths = [test.root / "images" / f for f in test.frame["file"]]
    ref = test.feed(_member(inp), 0, len(paths))["x"]
    got = DaliImageLoader(device_id=0).load(paths, image)
    d = np.abs(_levels(got, image) - _levels(ref, image))
    print(f"GPU decode vs PIL: interior max {d[:, 1:-1, 1:-1].max()}, all max {d.max()}, mean {d.mean():.3f} grey levels")
    assert d[:, 1:-1, 1:-1].max() <= 8 and d.max() <= BORDER_LEVELS + 8 and d.mean() <= 2 * MEAN_LEVELS


# -- end to end --------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(180)
def test_run_with_dali_predicts_as_with_pil(dali, tmp_path, monkeypatch):
    """runtime.run over 10 PNG/JPEG images of odd sizes (batches 4 + 4 + 2): same argmax, close probabilities."""
    import runtime
    from packager.build import package

    root = tmp_path / "proj"
    names = write_varied_images(root / "data" / "images", 10, seed=1)
    spec = image_project(root, [image_member(classes=3, activation="softmax")], files=names,
                         ids=[f"img{i:02d}" for i in range(10)], classes=3)
    bundle = tmp_path / "bundle"
    package(spec, bundle)
    probs = {}
    for loader in ("pil", "dali"):
        monkeypatch.setenv(LOADER_ENV, loader)
        out = tmp_path / loader / "submission.csv"
        report = runtime.run(bundle, root / "data", out, runtime.RunOptions(progress=False))
        assert report.covered_rows == 10 and report.members[0].status == "done", report.table()
        with open(out) as f:
            probs[loader] = np.array([[float(r[c]) for c in "abc"] for r in csv.DictReader(f)])
    np.testing.assert_array_equal(probs["dali"].argmax(1), probs["pil"].argmax(1))
    np.testing.assert_allclose(probs["dali"], probs["pil"], atol=0.01)  # measured: 0.0025
    assert not np.array_equal(probs["dali"], probs["pil"])  # the border differs: DALI did decode them
