"""`ninefit run` inference throughput against a bare onnxruntime `session.run` loop.

Both sides run the same ONNX files over the same batches on the same machine,
in one process, interleaved over several rounds; the ratio printed is
ninefit time / bare-loop time per member (1.00x = no overhead). ninefit's side
includes what the bare loop skips: building each batch from the table,
activation, ensembling, and writing the submission.

    python benchmarks/throughput.py [--repeat 40] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from _digits import digits_bundle  # noqa: E402


def bare_loop(bundle: Path, data: Path) -> dict[str, float]:
    """Seconds per member for a plain session.run loop over pre-built batches."""
    import onnxruntime as ort
    import pandas as pd

    from runtime.manifest import Manifest

    m = Manifest.load(bundle)
    table = pd.read_csv(data / m.data.test)
    out = {}
    for member in m.members:
        inp = member.inputs[0]
        x = table.loc[:, list(inp.columns)].to_numpy().astype(np.float32).reshape((-1, *inp.shape[1:]))
        batches = [x[i:i + member.batch_size] for i in range(0, len(x), member.batch_size)]
        sess = ort.InferenceSession(str(bundle / member.variants[0].file), providers=["CPUExecutionProvider"])
        sess.run(None, {inp.name: batches[0]})  # warm-up: session start-up is not inference
        t = time.perf_counter()
        for b in batches:
            sess.run([member.output], {inp.name: b})
        out[member.name] = time.perf_counter() - t
    return out


def ninefit_run(bundle: Path, data: Path, out: Path) -> tuple[dict[str, float], float]:
    import runtime

    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:  # fresh: a reused work folder would resume every chunk
        report = runtime.run(bundle, data, out, runtime.RunOptions(progress=False, work_dir=Path(work)))
    wall = time.perf_counter() - t
    return {m.name: m.seconds for m in report.members}, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=40, help="tile the 540 test rows this many times")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bundle, data = digits_bundle(Path(tmp), repeat=args.repeat)
        rows = args.repeat * 540
        bare_s: dict[str, list[float]] = {}
        nf_s: dict[str, list[float]] = {}
        walls = []
        for _ in range(args.rounds):
            for k, v in bare_loop(bundle, data).items():
                bare_s.setdefault(k, []).append(v)
            member_s, wall = ninefit_run(bundle, data, Path(tmp) / "submission.csv")
            walls.append(wall)
            for k, v in member_s.items():
                nf_s.setdefault(k, []).append(v)
        print(f"{rows} rows, median of {args.rounds} interleaved rounds, CPU onnxruntime")
        print(f"{'member':<8} {'bare rows/s':>12} {'ninefit rows/s':>15} {'ninefit time / bare time':>24}")
        for k in bare_s:
            b, n = statistics.median(bare_s[k]), statistics.median(nf_s[k])
            print(f"{k:<8} {rows / b:>12,.0f} {rows / n:>15,.0f} {n / b:>24.2f}x")
        total_bare = sum(statistics.median(v) for v in bare_s.values())
        print(f"whole `ninefit run` (verify + read + all members + write): {statistics.median(walls):.2f}s "
              f"vs bare inference {total_bare:.2f}s -> {statistics.median(walls) / total_bare:.2f}x")


if __name__ == "__main__":
    main()
