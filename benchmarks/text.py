"""Text: length-sorted dynamic padding against padding to the maximum, and ninefit against a bare loop.

One text bundle (examples/text: a tiny BERT, max_length 256) and the same
test rows, three ways, interleaved over several rounds in one process:

* ``ninefit run``: rows tokenised in the runtime, windows length-sorted within
  each chunk, every batch padded to its own longest window (inference time:
  the member's ``seconds + warmup_seconds``, which include building each batch);
* a bare onnxruntime loop over the very same sorted batches, pre-tokenised and
  pre-padded before the clock starts (the floor: ninefit time / this <= 1.05);
* a bare loop over batches of the same size in row order, each padded to
  ``max_length``, the way a fixed-shape pipeline runs (dynamic padding's gain:
  this / ninefit time >= 2).

    python benchmarks/text.py [--rounds 3] [--repeat 1] [--example DIR]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def prepared_example(work: Path, example: Path | None) -> Path:
    """examples/text with its data, tokenizer and checkpoint (prepared in ``work`` unless given)."""
    src = example or REPO / "examples" / "text"
    if (src / "checkpoints" / "bert.pt").is_file():
        return src
    dest = work / "text"
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("data", "checkpoints", "tokenizer", "__pycache__"))
    subprocess.run([sys.executable, "prepare.py"], cwd=dest, check=True, capture_output=True)
    return dest


def tiled_data(example: Path, work: Path, repeat: int) -> Path:
    import pandas as pd

    data = work / f"data-x{repeat}"
    data.mkdir()
    test = pd.read_csv(example / "data" / "test.csv", dtype=str, keep_default_na=False)
    test = pd.concat([test.assign(id=[f"{k}-{i}" for i in test["id"]]) for k in range(repeat)], ignore_index=True)
    test.to_csv(data / "test.csv", index=False)
    test[["id"]].assign(language="en_US").to_csv(data / "sample_submission.csv", index=False)
    return data


def batches(bundle: Path, data: Path):
    """(sorted dynamic feeds, row-order max-length feeds, TextRows) for the bundle's one member."""
    from runtime.bundle import open_bundle
    from runtime.data.testdata import open_test_data
    from runtime.data.text import Chunk, chunk_unit
    from runtime.execute.checkpoint import chunk_grid

    b = open_bundle(bundle)
    member = b.manifest.members[0]
    test = open_test_data(data, b.manifest.data, assets=b.root)
    rows = test.text_rows(member)
    spec, size = member.text, member.batch_size
    dynamic = []
    for a, z in chunk_grid(rows.n_rows, chunk_unit(member)):
        chunk = Chunk.of(rows, a, z)
        for pos in range(0, len(chunk.order), size):
            dynamic.append(rows.feed(spec, chunk.windows[chunk.order[pos:pos + size]]))
    padded = []
    for pos in range(0, rows.n_windows, size):
        feed = rows.feed(spec, np.arange(pos, min(pos + size, rows.n_windows)))
        width = spec.max_length - feed["input_ids"].shape[1]
        padded.append({k: np.pad(v, ((0, 0), (0, width)), constant_values=spec.pad_id if k == "input_ids" else 0)
                       for k, v in feed.items()})
    return dynamic, padded, rows, b.path(member.variants[0].file), member


def bare_loop(onnx: Path, feeds: list[dict[str, np.ndarray]], output: str) -> float:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL  # as the runtime's backend
    sess = ort.InferenceSession(str(onnx), sess_options=so, providers=["CPUExecutionProvider"])
    sess.run([output], feeds[0])  # warm-up: session start-up is not inference
    t = time.perf_counter()
    for f in feeds:
        sess.run([output], f)
    return time.perf_counter() - t


def ninefit_run(bundle: Path, data: Path, out: Path) -> tuple[float, float, dict]:
    import runtime

    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:  # fresh: a reused work folder would resume every chunk
        report = runtime.run(bundle, data, out, runtime.RunOptions(progress=False, work_dir=Path(work)))
    wall = time.perf_counter() - t
    m = report.members[0]
    return m.seconds + m.warmup_seconds, wall, m.text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=1, help="tile the test rows this many times")
    ap.add_argument("--example", type=Path, default=None, help="a prepared copy of examples/text")
    args = ap.parse_args()
    from packager.build import package
    from runtime.data.text import length_stats

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        example = prepared_example(work, args.example)
        bundle = work / "bundle"
        package(example / "ninefit.toml", bundle)
        data = tiled_data(example, work, args.repeat)
        dynamic, padded, rows, onnx, member = batches(bundle, data)
        stats = length_stats(rows)
        per_row = stats["tokens_per_row"]
        print(f"{rows.n_rows} rows, {rows.n_windows} windows of <= {member.text.max_length} tokens "
              f"(stride {member.text.stride}), batch {member.batch_size} windows, CPU onnxruntime")
        print(f"tokens per row: min {per_row['min']}, median {per_row['p50']:.0f}, mean {per_row['mean']:.0f}, "
              f"p90 {per_row['p90']:.0f}, p99 {per_row['p99']:.0f}, max {per_row['max']}; "
              f"{stats['rows_with_windows']} rows split into windows")
        print("histogram (tokens: rows): " + ", ".join(f"{k}: {v}" for k, v in stats["histogram"].items()))
        real = int(rows.lengths.sum())
        print(f"padded tokens: sorted dynamic {sum(f['input_ids'].size for f in dynamic):,}, "
              f"max length {sum(f['input_ids'].size for f in padded):,}, real {real:,}")
        bare_dyn, bare_max, nf, walls, text = [], [], [], [], {}
        for _ in range(args.rounds):
            bare_dyn.append(bare_loop(onnx, dynamic, member.output))
            bare_max.append(bare_loop(onnx, padded, member.output))
            seconds, wall, text = ninefit_run(bundle, data, work / "submission.csv")
            nf.append(seconds)
            walls.append(wall)
        d, m, n, w = (statistics.median(x) for x in (bare_dyn, bare_max, nf, walls))
        print(f"median of {args.rounds} interleaved rounds (this machine is shared and loaded: absolute times vary, "
              "ratios are side by side)")
        print(f"  bare loop, row order, padded to max_length : {m:8.2f}s")
        print(f"  bare loop, length-sorted, dynamic padding  : {d:8.2f}s   ({m / d:.2f}x faster than max_length)")
        print(f"  ninefit run inference (same sorted batches): {n:8.2f}s   (padding waste {text['padding_waste']:.2f})")
        print(f"max_length padding / ninefit dynamic padding: {m / n:.2f}x  (target >= 2)")
        print(f"ninefit / bare sorted loop                 : {n / d:.3f}x (target <= 1.05)")
        print(f"whole `ninefit run` (verify + read + tokenise + infer + write): {w:.2f}s")


if __name__ == "__main__":
    main()
