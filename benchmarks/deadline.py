"""Deadline benchmark: how much of the ensemble a run delivers under a time limit.

Runs the three-member digits bundle (cnn 0.6 with an fp16 rung, mlp 0.4,
cnn2 0.2) with the tests' "slow" backend (``tests/runtime/slow_backend.py``), which sleeps a fixed time per row so
the unconstrained run takes about half a minute on any machine. Then runs it
again with limits of 25, 50, 75 and 100 % of that time (default margin), each
in a fresh work folder, and prints for each: the wall time used as a fraction
of the limit (must stay below 1.0) and the fraction of the ensemble weight
(and value, variant factors applied) delivered.

    python benchmarks/deadline.py                 # builds the bundle from examples/digits
    python benchmarks/deadline.py --live          # no profile: costs measured live
    python benchmarks/deadline.py --bundle B --data D   # a three-member bundle built before

Exit status 1 if any run used the whole limit. Needs torch to build the bundle.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# One slow backend and one bundle builder, shared with the deadline tests (not copied).
from runtime.run import RunOptions, run  # noqa: E402
from tests.runtime import slow_backend  # noqa: E402
from tests.runtime.deadline_fixtures import build_three, with_profile  # noqa: E402

#: Seconds per row under the slow backend: 10.8 + 5.4 + 10.8 s over 540 rows.
COSTS = {"cnn": {"fp32": 0.02, "fp16": 0.008}, "mlp": {"fp32": 0.01}, "cnn2": {"fp32": 0.02}}
FRACTIONS = (0.25, 0.5, 0.75, 1.0)


def _run(bundle: Path, data: Path, scratch: Path, limit: float | None):
    work = Path(tempfile.mkdtemp(prefix="run-", dir=scratch))
    start = time.time()
    report = run(bundle, data, work / "submission.csv",
                 RunOptions(backend="slow", progress=False, start_time=start, time_limit_s=limit, work_dir=work / "w"))
    return time.time() - start, report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", type=Path, help="three-member digits bundle (default: build one from examples/digits)")
    p.add_argument("--data", type=Path, help="its data folder (default: examples/digits/data)")
    p.add_argument("--live", action="store_true", help="drop the profile: members are measured on their first batches")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every cost (default 1: ~27 s unconstrained)")
    a = p.parse_args(argv)

    scratch = Path(tempfile.mkdtemp(prefix="ninefit-deadline-bench-"))
    try:
        data = a.data or REPO / "examples" / "digits" / "data"
        bundle = a.bundle
        if bundle is None:
            print("building the three-member bundle from examples/digits ...", file=sys.stderr)
            src = scratch / "digits"
            shutil.copytree(REPO / "examples" / "digits", src, ignore=shutil.ignore_patterns("work", "__pycache__"))
            bundle = build_three(src, scratch)
        costs = {m: {v: s * a.scale for v, s in vs.items()} for m, vs in COSTS.items()}
        if not a.live:
            bundle = with_profile(bundle, scratch / "profiled", costs)
        config = {"s_per_row": {f"{m}/{v}": s for m, vs in costs.items() for v, s in vs.items()}}
        os.environ.update(slow_backend.write_config(scratch / "slow.json", **config))
        sys.stderr = open(scratch / "run.log", "w")  # noqa: SIM115  (the run log, kept out of the table)
        try:
            full_s, full = _run(bundle, data, scratch, None)
            rows = []
            for f in FRACTIONS:
                wall, rep = _run(bundle, data, scratch, f * full_s)
                rows.append((f, f * full_s, wall, rep))
        finally:
            sys.stderr.close()
            sys.stderr = sys.__stderr__
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print(f"unconstrained: {full_s:.1f} s wall, weight delivered {full.weight_delivered:.2f} "
          f"({'profiled' if not a.live else 'costs measured live'})")
    print(f"{'limit':>6} {'limit_s':>8} {'wall_s':>7} {'wall/limit':>10} {'weight':>7} {'value':>6}  members")
    worst = 0.0
    for f, limit, wall, rep in rows:
        ratio = wall / limit
        worst = max(worst, ratio)
        members = " ".join(f"{m.name}:{m.status}" + (f"({'+'.join(m.variants)})" if m.status == "degraded" else "")
                           for m in rep.members)
        print(f"{f:>6.0%} {limit:>8.1f} {wall:>7.1f} {ratio:>10.3f} {rep.weight_delivered:>7.2f} "
              f"{rep.value_delivered:>6.2f}  {members}")
    print(f"worst wall/limit: {worst:.3f} ({'OK: below 1.0' if worst < 1.0 else 'FAILED: the limit was used up'})")
    return 0 if worst < 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
