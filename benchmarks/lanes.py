"""Lanes benchmark: the same run on 1 lane x 1 thread, 2 lanes x 1 thread, and 1 lane x 2 threads.

Two ensembles, each run with no time limit by whole ``python -m runtime run``
processes (timed from process start to exit, as a user would; ``--fresh``
each time, so nothing is resumed):

* ``digits3``: the three-member digits ensemble of the deadline tests (cnn,
  mlp, cnn2; ``tests/fixtures/bundles.py``) on the digits test set
  tiled ``--repeat`` times (default 400: 216,000 rows), at ``--batch-size``
  (default 1024 rows; see below);
* ``conv2``: two ResNet-style convnets on 3x32x32 images
  (``examples/models/conv.toml`` plus a second member reading the same images:
  the one-reader case) on ``--conv-rows`` images (default 12,000): PNG files
  decoded and normalised on the CPU beside the lanes;
* ``encoder2``: two transformer encoders over 64 token ids a row
  (``examples/models/encoder.toml`` plus a second member reading the same
  columns) on ``--encoder-rows`` rows (default 3,000): larger models on a
  table input, so the lanes' work is nearly all inference.

Both bundles carry the profile ``ninefit package`` measures by default (the
run sizes its chunks from it: :func:`runtime.execute.checkpoint.member_grid`).
Per ensemble and configuration it prints, for the fastest of ``--repeats``
interleaved runs (other work on the machine only ever slows a run down):

* the whole process's wall time and its ratio to 1 lane x 1 thread;
* the lanes' span: from the first step's start to the last step's end on any
  lane (from the run report), i.e. the inference the lanes share, without the
  serial stages around it (process start, imports, reading the table, the
  submission rewritten as each member finishes: ~1 s a write at 216,000 rows);
* throughput over that span (rows x members / second) and its ratio: the goal,
  2 lanes x 1 thread at least 1.8x 1 lane x 1 thread, for every ensemble;
* how busy each lane was.

The 1 lane x 2 threads line (what a user ran before lanes) is printed beside
it, without a goal. The submissions of 1 lane and 2 lanes (both at 1 thread) must
be byte-identical. Beside each ensemble, the machine's ceiling now: the same
work through the first member's ONNX file in a bare onnxruntime loop, two
single-thread sessions in two threads against one doing it all (2.00x on two
idle cores; on a loaded machine less, and the lanes' ratio with it).

The data path prepares chunks in threads of its own (``NINEFIT_PREFETCH``,
``NINEFIT_DATA_WORKERS``; set in the environment, they apply to every
configuration), so "1 lane x 1 thread" already uses a second core for reading
and preprocessing: on 2 cores that leaves a second lane little to take.
Lanes are threads (onnxruntime releases the GIL while it computes). What
stays under the GIL is each batch's Python work (slicing the rows, the output
activation, booking), so for tiny models at small batches (digits at 32 rows a
batch: ~20 us of inference) the lanes wait on each other; at 1024 rows a batch
inference dominates. ``--batch-size 32`` shows the small-batch case.

    python benchmarks/lanes.py            # ~5 min on 2 cores (builds both bundles first)
    python benchmarks/lanes.py --quick    # smaller data, one run per configuration

Exit status 1 if a goal is missed or the outputs differ. Needs torch to build the bundles.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _digits import digits_bundle, example_bundle, profiled  # noqa: E402

from tests.fixtures.bundles import build_three  # noqa: E402

CONFIGS = (("1 lane x 1 thread", 1, 1), ("2 lanes x 1 thread", 2, 1), ("1 lane x 2 threads", 1, 2))
GOAL = 1.8
SECOND_CONV = """

[[model]]
name = "convnet2"
factory = "models:make_convnet"
checkpoint = "checkpoints/convnet.pt"
weight = 0.5
output = "logits"
activation = "softmax"
batch_size = 64

  [[model.input]]
  name = "image"
  dtype = "float32"
  shape = ["batch", 3, 32, 32]

    [model.input.image]
    size = [32, 32]
    mean = [0.485, 0.456, 0.406]
    std = [0.229, 0.224, 0.225]
    channels = 3
"""


SECOND_ENCODER = """

[[model]]
name = "encoder2"
factory = "models:make_encoder"
checkpoint = "checkpoints/encoder.pt"
weight = 0.5
output = "logits"
activation = "sigmoid"
batch_size = 64

  [[model.input]]
  name = "tokens"
  dtype = "int64"
  shape = ["batch", 64]
  columns = "tok*"
"""


def pair_ensemble(work: Path, name: str, second: str, rows: int) -> tuple[Path, Path]:
    """``examples/models/<name>.toml`` plus a second member reading the same inputs (``second``);
    returns (bundle, data folder of ``rows`` rows)."""
    from packager.build import package

    _, src = example_bundle(work, "models", "conv.toml", "conv-bundle")
    spec = src / f"{name}2.toml"
    if not spec.exists():
        spec.write_text((src / f"{name}.toml").read_text() + second)
    bundle = work / f"{name}2-bundle"
    if not bundle.exists():
        package(spec, bundle)
    data = work / f"models-data-{rows}"
    if not data.exists():
        subprocess.run([sys.executable, "prepare.py", "--rows", str(rows), "--out", str(data)], cwd=src, check=True,
                       capture_output=True)
    return bundle, data / name


def span(report: dict) -> float:
    """Seconds from the first lane step's start to the last one's end (the lanes' shared work)."""
    steps = [s for lane in report.get("lanes") or [] for s in lane["steps"]]
    return max(s["end_s"] for s in steps) - min(s["start_s"] for s in steps)


def run_once(bundle: Path, data: Path, out: Path, lanes: int, threads: int, batch: int | None) -> tuple[float, dict]:
    cmd = [sys.executable, "-m", "runtime", "run", str(bundle), "--data", str(data), "--out", str(out), "--fresh",
           "--quiet", "--lanes", str(lanes), "--threads", str(threads), "--backend", "onnxruntime"]
    if batch:
        cmd += ["--batch-size", str(batch)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"run failed ({' '.join(cmd)}):\n{done.stderr[-2000:]}")
    report = json.loads(out.with_name(f"{out.stem}.run_report.json").read_text())
    return wall, report


def ceiling(bundle: Path, batch: int | None, seconds: float = 2.0) -> float:
    """Two single-thread onnxruntime sessions in two threads vs one session doing the same work (bare loop)."""
    import threading

    import numpy as np
    import onnxruntime as ort

    from runtime.manifest import Manifest

    member = Manifest.load(bundle).members[0]
    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    path = str(bundle / member.variants[0].file)
    sessions = [ort.InferenceSession(path, so, providers=["CPUExecutionProvider"]) for _ in range(2)]
    inp = sessions[0].get_inputs()[0]
    dims = [d if isinstance(d, int) else 1 for d in inp.shape[1:]]
    shape, rng = (batch or member.batch_size, *dims), np.random.default_rng(0)
    x = rng.integers(0, 1000, shape) if "int64" in inp.type else rng.random(shape, dtype=np.float32)  # token ids

    def work(s, n):
        for _ in range(n):
            s.run(None, {inp.name: x})

    work(sessions[0], 3)
    t0 = time.perf_counter()
    n = 0
    while time.perf_counter() - t0 < seconds / 2:
        work(sessions[0], 1)
        n += 1
    one = time.perf_counter() - t0
    threads = [threading.Thread(target=work, args=(s, n)) for s in sessions]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return 2 * one / (time.perf_counter() - t0)


def bench(name: str, bundle: Path, data: Path, work: Path, repeats: int, batch: int | None) -> tuple[float, bool]:
    best: dict[str, tuple[float, dict]] = {}  # label -> (wall, report) of its fastest run
    for _ in range(repeats):
        for label, lanes, threads in CONFIGS:
            out = work / f"{name}-{lanes}x{threads}.csv"
            wall, report = run_once(bundle, data, out, lanes, threads, batch)
            if label not in best or wall < best[label][0]:
                best[label] = (wall, report)
    rows = best[CONFIGS[0][0]][1]["rows"]
    members = len(best[CONFIGS[0][0]][1]["members"])
    base_wall, base_span = best[CONFIGS[0][0]][0], span(best[CONFIGS[0][0]][1])
    print(f"\n{name}: {rows} rows x {members} members{f', batch {batch}' if batch else ''} "
          f"(fastest of {repeats}; wall: whole process; span: the lanes' inference, from the run report)")
    print(f"  {'configuration':<20} {'wall s':>7} {'ratio':>6} {'span s':>7} {'rows/s':>10} {'ratio':>6}  lanes busy")
    ratio = 0.0
    for label, lanes, _threads in CONFIGS:
        wall, report = best[label]
        s = span(report)
        busy = ", ".join(f"{lane['name']} {100 * lane['busy_share']:.0f}%" for lane in report.get("lanes") or [])
        print(f"  {label:<20} {wall:>7.2f} {base_wall / wall:>5.2f}x {s:>7.2f} {rows * members / s:>10,.0f} "
              f"{base_span / s:>5.2f}x  {busy}")
        if lanes == 2:
            ratio = base_span / s
    one, two = (work / f"{name}-{n}x1.csv" for n in (1, 2))
    same = one.read_bytes() == two.read_bytes()
    print(f"  2 lanes / 1 lane (1 thread each), throughput over the span: {ratio:.2f}x (goal >= {GOAL}); "
          f"submissions {'byte-identical' if same else 'DIFFER'}")
    print(f"  machine ceiling now (bare onnxruntime, 2 sessions x 1 thread in 2 threads vs 1): "
          f"{ceiling(bundle, batch):.2f}x")
    return ratio, same


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller data, one run per configuration")
    p.add_argument("--repeat", type=int, default=None, help="digits test set tiled this many times (default 400)")
    p.add_argument("--conv-rows", type=int, default=None, help="images for the convnets (default 12000)")
    p.add_argument("--encoder-rows", type=int, default=None, help="rows for the encoders (default 3000)")
    p.add_argument("--batch-size", type=int, default=1024, help="digits batch size (default 1024; 0: packaged 32)")
    p.add_argument("--repeats", type=int, default=None, help="runs per configuration (default 2)")
    p.add_argument("--work", type=Path, default=None, help="keep bundles and data here (default: a temp folder)")
    a = p.parse_args()
    repeat = a.repeat or (100 if a.quick else 400)
    conv_rows = a.conv_rows or (2000 if a.quick else 12000)
    encoder_rows = a.encoder_rows or (600 if a.quick else 3000)
    repeats = a.repeats or (1 if a.quick else 2)
    work = a.work or Path(tempfile.mkdtemp(prefix="ninefit-lanes-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        print("building the bundles ...", file=sys.stderr)
        _, src = example_bundle(work, "digits", "ninefit.toml", "bundle")
        three = work / "bundle3" if (work / "bundle3" / "manifest.json").exists() else build_three(src, work)
        _, digits_data = digits_bundle(work, repeat=repeat)
        conv, conv_data = pair_ensemble(work, "conv", SECOND_CONV, conv_rows)
        encoders, encoder_data = pair_ensemble(work, "encoder", SECOND_ENCODER, encoder_rows)
        three, conv = profiled(three, digits_data), profiled(conv, conv_data)
        encoders = profiled(encoders, encoder_data)
        results = [bench("digits3", three, digits_data, work, repeats, a.batch_size or None),
                   bench("conv2", conv, conv_data, work, repeats, None),
                   bench("encoder2", encoders, encoder_data, work, repeats, None)]
    finally:
        if a.work is None:
            shutil.rmtree(work, ignore_errors=True)
    ok = all(r >= GOAL and same for r, same in results)
    print(f"\n{'PASS' if ok else 'MISSED'}: 2 lanes x 1 thread vs 1 lane x 1 thread, goal >= {GOAL}x on every ensemble")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
