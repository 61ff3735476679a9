"""The prefetch pipeline: same feeds as reading in line, each image decoded once, failures said and never hung."""

from __future__ import annotations

import csv
import threading
from pathlib import Path

import numpy as np
import pytest

from runtime.data.pipeline import FeedPipeline
from runtime.data.testdata import open_test_data
from runtime.errors import DataError, UsageError
from runtime.manifest import DataSpec, ImageSpec, InputSpec, Member, Variant
from tests.fixtures import images

pytestmark = pytest.mark.timeout(60)

SPEC = DataSpec(format="images", test="test.csv", id_column="image_id", image_column="file", image_dir="images")


def write_images(root: Path, n: int = 23, corrupt: int | None = None) -> Path:
    """``n`` PNG and JPEG files of odd sizes under root/images (``f000.jpg``, ``f001.png``...), the index
    root/test.csv (ids ``id000``...); returns root."""
    files = images.write_images(root / "images", n, size=(17, 21), odd=True, formats=("jpg", "png"), name="f{:03d}",
                                corrupt=corrupt)
    images.write_index(root, [f"id{i:03d}" for i in range(n)], files)
    return root


def member(name: str, size=(12, 12), layout="NCHW", channels=3, tta=("none",), variants=()) -> Member:
    h, w = size
    image = ImageSpec(size=size, mean=(0.5,) * channels, std=(0.25,) * channels, channels=channels, layout=layout)
    shape = ("batch", channels, h, w) if layout == "NCHW" else ("batch", h, w, channels)
    vs = (Variant(name="full", file=f"{name}.onnx", tta=tta), *variants)
    return Member(name=name, weight=1.0, inputs=(InputSpec("x", "float32", shape, image=image),), output="y",
                  variants=vs)


CHUNKS = [(0, 5), (5, 10), (10, 15), (15, 20), (20, 23)]


@pytest.mark.parametrize("depth,workers", [(0, 1), (2, 1), (2, 3)])
def test_prefetched_feeds_are_the_in_line_feeds_in_row_order(tmp_path, depth, workers):
    test = open_test_data(write_images(tmp_path), SPEC)
    members = [member("a", tta=("none", "hflip")), member("b", layout="NHWC", channels=1),
               member("c", variants=(Variant(name="small", file="c8.onnx", image_size=(8, 10)),))]
    with FeedPipeline(test, members, depth=depth, workers=workers) as feeds:
        for m in members:
            for v in m.variants:
                for i, (a, b) in enumerate(CHUNKS):
                    got = feeds.get(m, v, a, b, ahead=CHUNKS[i + 1:])
                    ref = test.feed(m, a, b, image_size=v.image_size)["x"]
                    assert len(got) == len(v.tta)
                    assert got[0]["x"].tobytes() == ref.tobytes(), (m.name, v.name, a)
                    if len(v.tta) > 1:
                        np.testing.assert_array_equal(got[1]["x"], ref[..., ::-1])
        # Every file decoded once, for three members, two layouts and modes, and three sizes.
        assert feeds.times.images_decoded == 23
        assert feeds.times.chunks_prepared >= 4 * len(CHUNKS)
    test.close()


def test_a_corrupt_image_is_named_with_its_row_and_id(tmp_path):
    test = open_test_data(write_images(tmp_path, corrupt=7), SPEC)
    m = member("a")
    with FeedPipeline(test, [m, member("b")], depth=2, workers=2) as feeds:
        feeds.get(m, m.variants[0], 0, 5, ahead=CHUNKS[1:])
        with pytest.raises(DataError, match=r"could not read image .*f007\.png \(row 7, id id007\)"):
            feeds.get(m, m.variants[0], 5, 10, ahead=CHUNKS[2:])
        feeds.get(m, m.variants[0], 10, 15)  # the rows after it still decode
    test.close()


def test_a_crashed_worker_is_raised_not_hung(tmp_path, monkeypatch):
    """A worker dying (here: SystemExit inside a decode thread) reaches the executor as a DataError."""
    import runtime.data.loaders.pil as pil

    test = open_test_data(write_images(tmp_path), SPEC)
    real = pil.decode
    calls = []

    def dying(path, forms, where="", **kw):
        calls.append(threading.current_thread().name)
        if "f012" in str(path):
            raise SystemExit("decode worker killed")
        return real(path, forms, where, **kw)

    monkeypatch.setattr(pil, "decode", dying)
    m = member("a")
    with FeedPipeline(test, [m], depth=2, workers=2) as feeds:
        feeds.get(m, m.variants[0], 0, 5, ahead=CHUNKS[1:])
        feeds.get(m, m.variants[0], 5, 10, ahead=CHUNKS[2:])
        with pytest.raises(DataError, match=r"data worker preparing rows 10-15 for a failed: SystemExit: decode worker"):
            feeds.get(m, m.variants[0], 10, 15, ahead=CHUNKS[3:])
    assert all(name.startswith("ninefit-") for name in calls)  # decoded in the workers, not in line
    test.close()


def test_without_room_for_the_spool_each_member_decodes_again(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: usage(10**6, 10**6, 100))
    test = open_test_data(write_images(tmp_path), SPEC)
    b = member("b")  # another normalisation of the same decoded form: nothing prepared to share
    b = Member(name="b", weight=1.0, inputs=(InputSpec("x", "float32", b.inputs[0].shape, image=ImageSpec(
        size=(12, 12), mean=(0.4,) * 3, std=(0.25,) * 3, channels=3)),), output="y", variants=b.variants)
    members = [member("a"), b]
    with FeedPipeline(test, members, depth=1, workers=1) as feeds:
        assert feeds.times.spool.startswith("off: the decoded images need")
        for m in members:
            for a, b in CHUNKS:
                ref = test.feed(m, a, b)["x"]
                assert feeds.get(m, m.variants[0], a, b)[0]["x"].tobytes() == ref.tobytes()
        assert feeds.times.images_decoded == 2 * 23
    test.close()


def test_bad_prefetch_settings_are_named(monkeypatch, tmp_path):
    monkeypatch.setenv("NINEFIT_PREFETCH", "-1")
    test = open_test_data(write_images(tmp_path, n=3), SPEC)
    with pytest.raises(UsageError, match=r"NINEFIT_PREFETCH='-1' is not a whole number >= 0"):
        FeedPipeline(test, [member("a")])
    test.close()


def four_members_project(root: Path, n: int) -> Path:
    """Four members over ``n`` images of :func:`write_images`: three at 16x16, one at 12x12 (seeds 0 to 3)."""
    files = images.write_images(root / "data" / "images", n, size=(17, 21), odd=True, formats=("jpg", "png"),
                                name="f{:03d}")
    members = [images.image_member(f"m{k}", size=s, seed=k) for k, s in ((0, 16), (1, 16), (2, 16), (3, 12))]
    return images.image_project(root, members, files=files, ids=[f"id{i:03d}" for i in range(n)])


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_run_decodes_each_image_once_and_reports_its_stages(tmp_path, monkeypatch):
    """Four members (three at 16x16, one at 12x12) over 23 images: 23 decodes, the same submission as in line."""
    import runtime
    from packager.build import package

    root = tmp_path / "proj"
    four_members_project(root, 23)
    ids = [f"id{i:03d}" for i in range(23)]
    bundle = tmp_path / "bundle"
    package(root / "ninefit.toml", bundle)
    outs = {}
    for depth in ("0", "3"):
        monkeypatch.setenv("NINEFIT_PREFETCH", depth)
        monkeypatch.setenv("NINEFIT_DATA_WORKERS", "2")
        out = tmp_path / f"d{depth}" / "submission.csv"
        report = runtime.run(bundle, root / "data", out, runtime.RunOptions(progress=False, batch_size=3))
        assert report.covered_rows == 23 and all(m.status == "done" for m in report.members), report.table()
        st = report.stages
        assert st["images_decoded"] == 23 and st["depth"] == int(depth)
        for k in ("read_s", "decode_s", "preprocess_s", "infer_s", "write_s", "wait_s", "hidden_s"):
            assert st[k] >= 0.0, k
        assert st["decode_s"] > 0 and st["infer_s"] > 0 and st["write_s"] > 0
        assert "stages: read" in report.table() and "23 image(s) decoded" in report.table()
        outs[depth] = out.read_bytes()
        with open(out) as f:
            assert [r["image_id"] for r in csv.DictReader(f)] == ids
    assert outs["0"] == outs["3"]


def test_the_loader_is_dali_only_for_a_gpu_target_with_a_gpu_and_dali(monkeypatch):
    import runtime.data.loaders.dali as dali
    from runtime.data.loaders import resolve_loader

    monkeypatch.delenv("NINEFIT_LOADER", raising=False)
    assert resolve_loader(False) == ("pil", "CPU target")
    monkeypatch.setenv("NINEFIT_GPU_PRESENT", "0")
    assert resolve_loader(True)[0] == "pil" and "no GPU here" in resolve_loader(True)[1]
    monkeypatch.setenv("NINEFIT_GPU_PRESENT", "1")
    monkeypatch.setattr(dali, "dali_available", lambda: False)
    assert resolve_loader(True) == ("pil", "GPU target, but NVIDIA DALI is not installed (pip install nvidia-dali-cuda120)")
    monkeypatch.setattr(dali, "dali_available", lambda: True)
    assert resolve_loader(True) == ("dali", "GPU target with a GPU and DALI")
    monkeypatch.setenv("NINEFIT_LOADER", "pil")
    assert resolve_loader(True) == ("pil", "NINEFIT_LOADER=pil")


def test_loaders_and_tables_never_import_the_data_module():
    """No import circle: runtime.data uses the loaders and tables, never the reverse (lazy imports included)."""
    import ast

    root = Path(__file__).resolve().parents[3] / "runtime" / "data"
    for path in [*sorted((root / "loaders").glob("*.py")), root / "tables.py"]:
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
        assert not {"runtime.data.testdata", "runtime.data.pipeline", "runtime.execute.executor"} & names, path.name


def test_dali_in_the_pipeline_feeds_what_pil_does(tmp_path):
    pytest.importorskip("nvidia.dali", reason="NVIDIA DALI is not installed (pip install nvidia-dali-cuda120)")
    test = open_test_data(write_images(tmp_path), SPEC)
    m = member("a")
    with FeedPipeline(test, [m, member("b")], depth=2, workers=2, loader="dali") as feeds:
        for i, (a, b) in enumerate(CHUNKS):
            got = feeds.get(m, m.variants[0], a, b, ahead=CHUNKS[i + 1:])[0]["x"]
            ref = test.feed(m, a, b)["x"]
            assert got.shape == ref.shape
            levels = np.abs(got - ref) * 0.25 * 255  # std 0.25, scale 1/255: back to grey levels
            assert levels[..., 1:-1, 1:-1].max() <= 2 and levels.max() <= 24  # as tests/runtime/data/test_dali.py
        assert feeds.times.images_decoded == 23 and feeds.times.spool == ""
    test.close()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_kill_9_with_prefetch_and_the_spool_then_resume_is_identical_to_an_in_line_run(tmp_path):
    """Images, four members sharing one decode (the spool), two workers, two chunks ahead: killed mid-run and
    rerun, the submission is byte-identical to an uninterrupted run that prepared every chunk in line."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from packager.build import package
    from tests.runtime import slow_backend

    repo = Path(__file__).resolve().parents[3]
    root = tmp_path / "proj"
    four_members_project(root, 60)
    bundle = tmp_path / "bundle"
    package(root / "ninefit.toml", bundle)

    def command(out: Path, work: Path) -> list[str]:
        return [sys.executable, "-m", "runtime", "run", str(bundle), "--data", str(root / "data"), "--out", str(out),
                "--work-dir", str(work), "--backend", "slow", "--quiet"]

    def env(depth: str) -> dict[str, str]:
        extra = slow_backend.write_config(tmp_path / f"slow{depth}.json", s_per_row={"*": 0.01})
        return {**os.environ, "PYTHONPATH": str(repo), "NINEFIT_PREFETCH": depth, "NINEFIT_DATA_WORKERS": "2", **extra}

    ref = tmp_path / "ref" / "submission.csv"
    done = subprocess.run(command(ref, tmp_path / "w-ref"), env=env("0"), cwd=repo, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr

    out, work = tmp_path / "run" / "submission.csv", tmp_path / "w"
    proc = subprocess.Popen(command(out, work), env=env("2"), cwd=repo,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(list(work.glob("checkpoints/*/*/*/*.npy"))) < 20 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    saved = len(list(work.glob("checkpoints/*/*/*/*.npy")))
    assert 20 <= saved < 4 * 15
    again = subprocess.run(command(out, work), env=env("2"), cwd=repo, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert out.read_bytes() == ref.read_bytes()
    import json

    report = json.loads((out.parent / "submission.run_report.json").read_text())
    assert report["chunks_resumed"] == saved and report["stages"]["depth"] == 2
    assert report["stages"]["images_decoded"] == 60  # the resumed run decoded each image once, not per member


@pytest.mark.parametrize("room", [True, False])
def test_members_reading_one_chunk_share_its_normalised_images(tmp_path, monkeypatch, room):
    """Two lanes running members with the same image input take each chunk about together: it is
    normalised once (within the prepared cache's bytes), and both get the same values."""
    import runtime.data.loaders.pil as pil
    import runtime.data.pipeline as pipeline

    test = open_test_data(write_images(tmp_path), SPEC)
    a, b = member("a"), member("b")
    refs = [test.feed(a, lo, hi)["x"].tobytes() for lo, hi in CHUNKS]
    calls = []
    real = pil.normalise
    monkeypatch.setattr(pil, "normalise", lambda *a, **k: calls.append(1) or real(*a, **k))
    if not room:
        monkeypatch.setattr(pipeline, "SHARED_BYTES", 1)  # one entry at a time: the newest
    with FeedPipeline(test, [a, b], depth=0, workers=1) as feeds:
        for (lo, hi), ref in zip(CHUNKS, refs):  # a, b, a, b, ...: as two lanes side by side
            got = [feeds.get(m, m.variants[0], lo, hi)[0]["x"] for m in (a, b)]
            assert got[0].tobytes() == got[1].tobytes() == ref
        assert feeds.times.images_decoded == 23
    assert len(calls) == len(CHUNKS)  # the newest entry is always kept: b finds a's chunk either way
    calls.clear()
    with FeedPipeline(test, [a, b], depth=0, workers=1) as feeds:
        for m in (a, b):  # one member after the other (one lane): only the last chunks are still held
            for lo, hi in CHUNKS:
                feeds.get(m, m.variants[0], lo, hi)
    assert len(calls) == (len(CHUNKS) if room else 2 * len(CHUNKS))
    test.close()


def test_an_image_size_is_height_then_width(tmp_path):
    """``size = [8, 12]`` is 8 rows of 12 pixels (torch's order), not PIL's (width, height)."""
    from PIL import Image

    from runtime.data.loaders.pil import decode, form

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (30, 20, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    f = form(ImageSpec(size=(8, 12)))
    (pixels,) = decode(tmp_path / "a.png", [f]).values()
    assert f == ("RGB", 8, 12) and pixels.shape == (8, 12, 3)
    with Image.open(tmp_path / "a.png") as im:
        assert (pixels == np.asarray(im.resize((12, 8), Image.BILINEAR))).all()
