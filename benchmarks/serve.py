"""The evaluation API's predictor, measured side by side in one run.

(a) Overhead per call: ``Predictor(batch)`` against a bare hand-written
    ``predict`` on the same 100-row polars batch (numpy out of the frame, one
    ``session.run`` per member, softmax-averaged, arg-max, a polars frame back),
    the digits bundle's two members, calls interleaved. Goal: predictor
    <= 1.05 x bare + 2 ms.
(b) Value under a budget: a 3-member ensemble on the tests' slow backend
    (each member sleeps a fixed time per row, so costs do not depend on this
    machine) whose full cost is 1.5x the notebook's time over 1,000 batches of
    random size (30-170 rows), with a response deadline: value delivered over
    the value an oracle delivers (every batch's cost known in advance: the
    members' time the run had, at the cost per row each had in the run, spent
    on rows best value per second first),
    response deadlines missed, and the whole against the limit. Goal: >= 0.95, 0 missed, under the limit.

    python benchmarks/serve.py [--calls 300] [--batches 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from _digits import digits_bundle  # noqa: E402

from tests.fixtures.bundles import WEIGHTS, build_three  # noqa: E402
from tests.runtime import slow_backend  # noqa: E402

#: (b): seconds per row of each member on the slow backend; their values are the bundle's weights.
COSTS = {"cnn": 0.0004, "mlp": 0.0002, "cnn2": 0.00015}


def overhead(bundle: Path, data: Path, calls: int, work: Path) -> tuple[float, float]:
    """Median seconds per call: (predictor, bare predict)."""
    import onnxruntime as ort
    import polars as pl

    from runtime.manifest import Manifest
    from runtime.serve import Predictor, ServeOptions

    test = pl.read_csv(data / "test.csv", schema_overrides={"id": pl.Utf8})
    m = Manifest.load(bundle)
    predictor = Predictor(bundle, ServeOptions(arguments=("test",), response_timeout_s=60.0,
                                               report_path=work / "overhead.jsonl"))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sessions = [(mem, ort.InferenceSession(str(bundle / mem.variants[0].file), opts,
                                           providers=["CPUExecutionProvider"])) for mem in m.members]
    classes = np.asarray(m.submission.classes, dtype=object)

    def bare(batch):
        total = 0.0
        for mem, session in sessions:
            inp = mem.inputs[0]
            x = batch.select(inp.columns).to_numpy().astype(np.float32).reshape((-1, *inp.shape[1:]))
            out = session.run(None, {inp.name: x})[0].astype(np.float64)
            e = np.exp(out - out.max(axis=1, keepdims=True))
            total = total + mem.weight * e / e.sum(axis=1, keepdims=True)
        return pl.DataFrame({"id": batch["id"], "label": classes[np.argmax(total, axis=1)].tolist()})

    batches = [test[(k * 100) % 400:(k * 100) % 400 + 100] for k in range(calls)]
    predictor(batches[0])  # the first call loads (no deadline): not what is compared
    bare(batches[0])
    ours, theirs = [], []
    for batch in batches:
        t = time.perf_counter()
        predictor(batch)
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        bare(batch)
        theirs.append(time.perf_counter() - t)
    return statistics.median(ours), statistics.median(theirs)


def budgeted(bundle: Path, data: Path, n_batches: int, work: Path) -> dict:
    """Run (b); returns value / oracle, deadlines missed, wall / limit."""
    import polars as pl

    from runtime.schedule.budget import default_margin
    from runtime.serve import Predictor, ServeOptions

    os.environ.update(slow_backend.write_config(work / "slow.json", s_per_row=COSTS))
    test = pl.read_csv(data / "test.csv", schema_overrides={"id": pl.Utf8})
    rng = np.random.default_rng(0)
    sizes = rng.integers(30, 171, size=n_batches)
    full = sum(COSTS.values()) * float(sizes.sum())
    limit = full / 1.5
    deadline = 4 * full / 1.5 / n_batches  # a response deadline with room: the notebook's time is the binding budget
    report = work / "budget.jsonl"
    start = time.time()
    predictor = Predictor(bundle, ServeOptions(arguments=("test",), backend="slow", response_timeout_s=deadline,
                                               time_limit_s=limit + 1.0, start_time=start,
                                               expected_batches=n_batches, report_path=report))
    t0 = time.perf_counter()
    for size in sizes:
        rows = rng.integers(0, len(test) - size)
        predictor(test[int(rows):int(rows) + int(size)])
    wall = time.perf_counter() - t0
    records = [json.loads(line) for line in report.read_text().splitlines()]
    got = sum(WEIGHTS[m["member"]] * m["rows"] for r in records for m in r["members"])
    # The oracle knows every batch's cost: with the members' time this run had (the limit less its margin,
    # less what the calls spent outside the members, the first call's load and measuring included), at the
    # cost per row each member had in this run (its set cost and the backend's own time per batch), it
    # covers rows best value per second first.
    outside = sum(r["latency_s"] - sum(m["seconds"] for m in r["members"]) for r in records)
    capacity = limit + 1.0 - default_margin(limit + 1.0) - outside
    ran = {n: [sum(m[k] for r in records for m in r["members"] if m["member"] == n) for k in ("seconds", "rows")]
           for n in COSTS}
    cost = {n: s / rows if rows else COSTS[n] for n, (s, rows) in ran.items()}
    oracle, rows = 0.0, float(sizes.sum())
    for name in sorted(COSTS, key=lambda n: -WEIGHTS[n] / cost[n]):
        covered = min(rows, max(capacity, 0.0) / cost[name])
        oracle += WEIGHTS[name] * covered
        capacity -= covered * cost[name]
    missed = sum(1 for r in records[1:] if r["latency_s"] > deadline)
    return {"value_over_oracle": got / oracle, "missed": missed, "wall_over_limit": wall / (limit + 1.0),
            "deadline_s": deadline, "limit_s": limit + 1.0, "wall_s": wall}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--batches", type=int, default=1000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ninefit-bench-serve-") as tmp:
        work = Path(tmp)
        bundle, data = digits_bundle(work)
        ours, bare = overhead(bundle, data, args.calls, work)
        ok_a = ours <= 1.05 * bare + 0.002
        print(f"(a) per call, 100 rows, 2 members: predictor {ours * 1e3:.2f} ms, bare predict {bare * 1e3:.2f} ms: "
              f"{ours / bare:.2f}x, {(ours - bare) * 1e3:+.2f} ms; goal <= 1.05x + 2 ms: {'met' if ok_a else 'NOT met'}")
        three = build_three(data.parent / "digits", work / "three")
        b = budgeted(three, data.parent / "digits" / "data", args.batches, work)
        ok_b = b["value_over_oracle"] >= 0.95 and b["missed"] == 0 and b["wall_over_limit"] < 1.0
        print(f"(b) {args.batches} batches, full cost 1.5x the budget, response deadline {b['deadline_s'] * 1e3:.0f} ms: "
              f"value / oracle {b['value_over_oracle']:.3f}, deadlines missed {b['missed']}, wall / limit "
              f"{b['wall_over_limit']:.3f} ({b['wall_s']:.1f} s of {b['limit_s']:.1f} s); goal >= 0.95, 0 missed, "
              f"< 1: {'met' if ok_b else 'NOT met'}")
    return 0 if ok_a and ok_b else 1


if __name__ == "__main__":
    sys.exit(main())
