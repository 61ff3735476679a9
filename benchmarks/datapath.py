"""The data path: decoding overlapped with inference, each image decoded once, memory bounded by a chunk.

Image case: a folder of real PNG and JPEG files made from scikit-learn's
digits (8x8, upsampled to 64x64 RGB, tinted and noised, then compressed),
and a 4-member CNN ensemble (three members at 32x32, one at 48x48). In one
process, side by side:

* end to end: ``runtime.run`` on the bundle (threads=1, workers=1: the two
  cores split between inference and decoding);
* inference alone: every member's runner over ready-made inputs of the same
  shapes, session creation included;
* data alone: every member's chunks prepared by the same pipeline, nothing inferred.

Goal: end to end / the slower of the two alone <= 1.15, and images decoded
== images (not images x members). It also prints the decode rate with one
thread and with two (threads were chosen over processes: PIL releases the GIL).

Table case: the digits bundle (profiled, as `ninefit package` leaves it: its
chunks follow the profile) on a Parquet test table (64 float columns,
row groups of 65,536 rows) of 1,000,000 and of 100,000 rows, each run as
``python -m runtime`` in a subprocess whose peak RSS is sampled with psutil.
Goal: the growth beyond what the ids and predictions need is <= 10% of the
smaller run's peak. What they need is measured here with tracemalloc at
both sizes, through the run's own code: the id strings, the sample submission
and the submission formatter as the run holds them, the predictions (the
ensemble's arrays), and one submission write at its peak (streamed: the
combined values and one block of formatted rows); the difference between the
sizes is what the extra rows need.

    python benchmarks/datapath.py [--quick] [--cache DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from _digits import REPO, example_bundle, profiled  # noqa: E402

SPEC = """
name = "digit-images"
[data]
format = "images"
test = "data/test.csv"
id_column = "image_id"
image_column = "file"
image_dir = "images"
sample_submission = "data/sample_submission.csv"
[submission]
mode = "argmax"
classes = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
"""
MEMBER = """
[[model]]
name = "{name}"
factory = "net:{factory}"
init = "random"
output = "logits"
activation = "softmax"
batch_size = 64
  [[model.input]]
  name = "image"
  shape = ["batch", 3, {size}, {size}]
  image = {{ size = [{size}, {size}], mean = [0.5, 0.5, 0.5], std = [0.25, 0.25, 0.25], channels = 3 }}
"""
NET = """
import torch
def _net(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 64, 3, stride=2), torch.nn.ReLU(), torch.nn.Conv2d(64, 128, 3, stride=2), torch.nn.ReLU(),
        torch.nn.Conv2d(128, 128, 3, stride=2), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(), torch.nn.Linear(2048, 10)).eval()
def a(): return _net(0)
def b(): return _net(1)
def c(): return _net(2)
def d(): return _net(3)
"""


def build_images(root: Path, n: int) -> Path:
    """``root/data`` with ``n`` PNG/JPEG digits (192x192 RGB), the index and the sample submission; built once."""
    data = root / "data"
    if (data / "sample_submission.csv").is_file():
        return data
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits().images  # 1797 8x8 images, 0..16
    rng = np.random.default_rng(0)
    (data / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        img = Image.fromarray((digits[i % len(digits)] * 15).astype(np.uint8)).resize((192, 192), Image.BICUBIC)
        tint = rng.uniform(0.5, 1.0, 3)
        arr = np.asarray(img, np.float32)[..., None] * tint + rng.normal(0, 8, (192, 192, 3))
        im = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
        name = f"d{i:05d}.{'png' if i % 2 else 'jpg'}"
        im.save(data / "images" / name, **({"quality": 90} if name.endswith("jpg") else {}))
        rows.append((f"img{i:05d}", name))
    (data / "test.csv").write_text("image_id,file\n" + "".join(f"{a},{b}\n" for a, b in rows))
    (data / "sample_submission.csv").write_text("image_id,label\n" + "".join(f"{a},0\n" for a, _ in rows))
    return data


def image_bundle(root: Path, name: str) -> Path:
    from packager.build import package

    project = root / "project"
    out = root / name
    if out.exists():
        return out
    project.mkdir(parents=True, exist_ok=True)
    members = [("a", 96), ("b", 96), ("c", 96), ("d", 128)]
    (project / "ninefit.toml").write_text(SPEC + "".join(MEMBER.format(name=f"cnn_{f}", factory=f, size=s)
                                                          for f, s in members))
    (project / "net.py").write_text(NET)
    (project / "data").mkdir(exist_ok=True)
    small = root / "data"
    # Package against a 200-image slice: profiling is not what is measured here.
    lines = (small / "test.csv").read_text().splitlines()[:201]
    (project / "data" / "test.csv").write_text("\n".join(lines) + "\n")
    (project / "data" / "sample_submission.csv").write_text(
        "image_id,label\n" + "".join(f"{ln.split(',')[0]},0\n" for ln in lines[1:]))
    if not (project / "data" / "images").exists():
        os.symlink(small / "images", project / "data" / "images")
    package(project / "ninefit.toml", out)
    return out


def infer_alone(bundle: Path, n: int) -> float:
    """Every member over ready-made inputs of its shape (n rows), session creation included."""
    from runtime.bundle import open_bundle
    from runtime.run import RunOptions, load_runner

    b = open_bundle(bundle)
    t0 = time.perf_counter()
    for member in b.manifest.members:
        v = member.variants[0]
        runner = load_runner(b, member, v, RunOptions(threads=1))
        runner.activate()
        inp = member.inputs[0]
        h, w = inp.image.size
        x = np.random.default_rng(0).standard_normal((member.batch_size, 3, h, w)).astype(np.float32)
        for pos in range(0, n, member.batch_size):
            runner.infer({inp.name: x[:min(member.batch_size, n - pos)]})
        runner.deactivate()
    return time.perf_counter() - t0


def data_alone(bundle: Path, data: Path, workers: int) -> tuple[float, int]:
    """Every member's chunks prepared by the run's pipeline, nothing inferred; (seconds, images decoded)."""
    from runtime.bundle import open_bundle
    from runtime.data.pipeline import FeedPipeline
    from runtime.data.testdata import open_test_data
    from runtime.data.text import chunk_unit
    from runtime.execute.checkpoint import chunk_grid

    m = open_bundle(bundle).manifest
    t0 = time.perf_counter()
    test = open_test_data(data, m.data)
    with FeedPipeline(test, m.members, depth=0, workers=workers) as feeds:
        for member in m.members:
            v = member.variants[0]
            for a, b in chunk_grid(test.n_rows, chunk_unit(member)):
                feeds.get(member, v, a, b)
        decoded = feeds.times.images_decoded
    return time.perf_counter() - t0, decoded


def decode_rates(data: Path, n: int) -> dict[int, float]:
    """Images per second decoding ``n`` files with 1 and 2 threads (the pipeline's decode call)."""
    from concurrent.futures import ThreadPoolExecutor

    from runtime.data.loaders.pil import decode

    files = sorted((data / "images").iterdir())[:n]
    forms = [("RGB", 96, 96), ("RGB", 128, 128)]
    rates = {}
    for threads in (1, 2):
        t0 = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda p: decode(p, forms), files))
        rates[threads] = n / (time.perf_counter() - t0)
    return rates


def image_case(cache: Path, n: int) -> bool:
    import runtime

    root = cache / f"images192-{n}"
    data = build_images(root, n)
    bundle = image_bundle(root, "bundle-v3")
    print(f"image case: {n} PNG/JPEG files (192x192) in {data / 'images'}, 4 members (3 at 96x96, 1 at 128x128)")
    rates = decode_rates(data, min(n, 1000))
    print(f"  decode rate: 1 thread {rates[1]:.0f} img/s, 2 threads {rates[2]:.0f} img/s "
          f"(x{rates[2] / rates[1]:.2f}; {os.cpu_count()} cores)")
    os.environ["NINEFIT_DATA_WORKERS"] = "1"
    t_infer = infer_alone(bundle, n)
    t_data, decoded_alone = data_alone(bundle, data, 1)
    with tempfile.TemporaryDirectory() as work:
        t0 = time.perf_counter()
        report = runtime.run(bundle, data, Path(work) / "submission.csv",
                             runtime.RunOptions(progress=False, threads=1, work_dir=Path(work) / "w"))
        t_e2e = time.perf_counter() - t0
    st = report.stages
    slowest = max(t_infer, t_data)
    ratio = t_e2e / slowest
    print(f"  inference alone {t_infer:.2f}s, data alone {t_data:.2f}s ({decoded_alone} decodes), "
          f"end to end {t_e2e:.2f}s")
    print(f"  run report stages: read {st['read_s']:.2f}s, decode {st['decode_s']:.2f}s, preprocess "
          f"{st['preprocess_s']:.2f}s, infer {st['infer_s']:.2f}s, write {st['write_s']:.2f}s; "
          f"waited {st['wait_s']:.2f}s, hidden {st['hidden_s']:.2f}s")
    ok_ratio, ok_decodes = ratio <= 1.15, st["images_decoded"] == n
    print(f"  end to end / slowest stage alone = {ratio:.3f} (goal <= 1.15: {'ok' if ok_ratio else 'MISSED'})")
    print(f"  images decoded {st['images_decoded']} for {n} images x {len(report.members)} members "
          f"(goal == {n}: {'ok' if ok_decodes else 'MISSED'})")
    return ok_ratio and ok_decodes


def parquet_data(cache: Path, rows: int) -> Path:
    """The digits test table tiled to ``rows`` rows (new ids), as Parquet in row groups of 65,536."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    bundle, src = example_bundle(cache, "digits", "ninefit.toml", "digits-bundle")
    folder = cache / f"table-{rows}"
    if (folder / "sample_submission.csv").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    base = pd.read_csv(src / "data" / "test.csv", dtype={"id": str})
    reps = -(-rows // len(base))
    tiled = pd.concat([base] * reps, ignore_index=True).iloc[:rows].copy()
    tiled["id"] = [f"r{i}" for i in range(rows)]
    pq.write_table(pa.Table.from_pandas(tiled, preserve_index=False), folder / "test.parquet", row_group_size=65536)
    with open(folder / "sample_submission.csv", "w") as f:
        f.write("id,label\n")
        f.writelines(f"r{i},0\n" for i in range(rows))
    return folder


def parquet_bundle(cache: Path) -> Path:
    """The digits bundle, its data spec pointing at ``test.parquet``, profiled on the 100,000-row table
    as ``ninefit package`` profiles a bundle by default."""
    import json

    bundle, _ = example_bundle(cache, "digits", "ninefit.toml", "digits-bundle")
    out = cache / "digits-parquet-bundle"
    if not out.exists():
        import shutil

        from runtime.manifest import Manifest

        shutil.copytree(bundle, out)
        m = json.loads((out / "manifest.json").read_text())
        m["data"]["test"] = "test.parquet"
        (out / "manifest.json").write_text(json.dumps(m, indent=2))
        Manifest.load(out)  # still valid
    return profiled(out, parquet_data(cache, 100_000))


def peak_rss(cmd: list[str]) -> tuple[int, float]:
    """Peak RSS of a subprocess (sampled every 20 ms with psutil) and its wall time."""
    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ps = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            peak = max(peak, ps.memory_info().rss)
        except psutil.Error:
            break
        time.sleep(0.02)
    err = proc.stderr.read()
    if proc.wait() != 0:
        raise SystemExit(f"run failed: {' '.join(cmd)}\n{err[-3000:]}")
    return peak, time.perf_counter() - t0


def _held(folder: Path, rows: int, members: int) -> dict[str, float]:
    """Bytes the run must hold whatever its data path, measured with tracemalloc at ``rows`` rows,
    through the run's own code: the ids, the sample submission and the submission formatter (id match),
    the predictions (the ensemble's arrays: members are combined chunk by chunk from their checkpoints),
    and a submission write at its peak (streamed as the run writes it: the combined values, one block of rows)."""
    import tracemalloc

    from runtime.data.tables import open_table
    from runtime.manifest import Manifest
    from runtime.output.ensemble import Accumulator
    from runtime.output.formats import Formatter, match
    from runtime.output.submission import read_sample, write_atomic

    m = Manifest.load(parquet_bundle(folder.parent))
    width = len(m.submission.classes)
    out = {}
    tracemalloc.start()
    ids = open_table(folder / "test.parquet", id_column="id").ids()
    sample = read_sample(folder / "sample_submission.csv", m.submission)
    formatter = Formatter(m.submission, sample, ids, match(m.submission, sample, ids), sample)
    out["ids + sample + formatter"] = tracemalloc.get_traced_memory()[0]
    base = tracemalloc.get_traced_memory()[0]
    acc = Accumulator(rows, width, m.combiner)
    for k in range(members):
        acc.add(1.0, 0, np.random.default_rng(k).random((rows, width)))
    out["predictions"] = tracemalloc.get_traced_memory()[0] - base
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    with tempfile.TemporaryDirectory() as tmp:
        write_atomic(Path(tmp) / "s.csv", sample.header, formatter.blocks(acc.result(consume=True), acc.covered), blocks=True)
    out["submission write (peak)"] = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return out


def per_row_need(cache: Path, big: int, small: int, members: int) -> dict[str, float]:
    """What each extra row costs the run whatever its data path: :func:`_held` at both sizes, the
    difference over the extra rows (a write's one block of rows is the same at both, so it drops out)."""
    at_big, at_small = _held(parquet_data(cache, big), big, members), _held(parquet_data(cache, small), small, members)
    return {k: (at_big[k] - at_small[k]) / (big - small) for k in at_big}


def table_case(cache: Path, big: int, small: int) -> bool:
    bundle = parquet_bundle(cache)
    print(f"table case: digits bundle (2 members, 64 float columns) on Parquet of {big:,} and {small:,} rows")
    parts = per_row_need(cache, big, small, 2)
    need = sum(parts.values())
    extra = need * (big - small)
    shown = ", ".join(f"{k} {v:.0f}" for k, v in parts.items())
    print(f"  ids and predictions need {need:.0f} B/row ({shown}) = {extra / 2**20:,.0f} MiB for the extra rows")
    ok = True
    for lanes in (1, 2):  # one lane: the data path alone; two: this machine's default (a lane per core)
        peaks = {}
        for rows in (small, big):
            folder = parquet_data(cache, rows)
            with tempfile.TemporaryDirectory() as work:
                cmd = [sys.executable, "-m", "runtime", "run", str(bundle), "--data", str(folder), "--out",
                       str(Path(work) / "submission.csv"), "--work-dir", str(Path(work) / "w"), "--quiet",
                       "--lanes", str(lanes)]
                peaks[rows], wall = peak_rss(cmd)
            print(f"  {lanes} lane(s), {rows:>9,} rows: peak RSS {peaks[rows] / 2**20:,.0f} MiB, {wall:.1f}s (whole command)")
        growth = peaks[big] - peaks[small]
        beyond = growth - extra
        share = beyond / peaks[small]
        good = share <= 0.10
        ok &= good
        print(f"  {lanes} lane(s): growth {growth / 2**20:,.0f} MiB, beyond ids and predictions {beyond / 2**20:,.0f} MiB "
              f"= {share:.1%} of the small run's peak (goal <= 10%: {'ok' if good else 'MISSED'})")
    return ok


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a short run: 1,000 images; 200,000 vs 20,000 rows")
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "ninefit-bench-datapath",
                   help="where the images, tables and bundles are kept between runs (default: %(default)s)")
    p.add_argument("--only", choices=("images", "table"), default=None, help="run one case")
    args = p.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PYTHONPATH", str(REPO))
    ok = True
    if args.only in (None, "images"):
        ok &= image_case(args.cache, 1000 if args.quick else 5000)
    if args.only in (None, "table"):
        ok &= table_case(args.cache, *((200_000, 20_000) if args.quick else (1_000_000, 100_000)))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
