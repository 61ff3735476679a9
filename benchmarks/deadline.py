"""Deadline benchmark: how much of the ensemble a run delivers under a time limit,
when the bundle's profile is wrong.

The three-member digits bundle (cnn 0.6, mlp 0.4, cnn2 0.2; cnn and cnn2 with an
fp16 rung) runs on the tests' "slow" backend (``tests/runtime/slow_backend.py``),
which sleeps a fixed time per row, per rung, so the true costs are known:

    cnn  fp32 20 ms/row, fp16  8 ms/row (fp16 faster)
    mlp  fp32 10 ms/row
    cnn2 fp32 20 ms/row, fp16 24 ms/row (fp16 NOT faster: it must be pruned)

The packaged profile says what a packaging machine where fp16 pays off for
both CNNs would have measured (fp16 8 ms/row for cnn2 too), multiplied by a
skew of 0.4 (the profile 2.5x too fast), 1.0 and 2.5 (2.5x too slow). First an
unconstrained run measures the true costs; then each skew runs at limits of
25, 50, 75 and 100 % of that run's wall time (default margin and reserve),
each in a fresh work folder. Per cell it prints wall / limit (must stay below
1.0) and value delivered / value of the oracle: the best plan that fits the
limit less the run's fixed overhead (start, writes; measured by the
unconstrained run), computed afterwards by the exact planner from the true
measured costs, with no margin. Partial members count their rows, so a run may
beat the oracle. Goal: wall/limit < 1.0 in every cell, value/oracle >= 0.95
where anything fits.

    python benchmarks/deadline.py                 # builds the bundle from examples/digits (~4 min)
    python benchmarks/deadline.py --scale 0.5     # every cost halved (~2 min)
    python benchmarks/deadline.py --bundle B --data D   # a bundle built before (with cnn2's fp16 rung)

Exit status 1 if a goal is missed. Needs torch to build the bundle.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# One slow backend and one bundle builder, shared with the deadline tests (not copied).
from runtime.run import RunOptions, run  # noqa: E402
from runtime.schedule import planner  # noqa: E402
from tests.fixtures.bundles import build_three  # noqa: E402
from tests.runtime import slow_backend  # noqa: E402

#: True seconds per row (the slow backend's sleep).
TRUE = {"cnn": {"fp32": 0.02, "fp16": 0.008}, "mlp": {"fp32": 0.01}, "cnn2": {"fp32": 0.02, "fp16": 0.024}}
#: The packaged profile before skew: fp16 measured 2.5x faster for both CNNs elsewhere.
PACKAGED = {"cnn": {"fp32": 0.02, "fp16": 0.008}, "mlp": {"fp32": 0.01}, "cnn2": {"fp32": 0.02, "fp16": 0.008}}
SKEWS = (0.4, 1.0, 2.5)
FRACTIONS = (0.25, 0.5, 0.75, 1.0)
GOAL = 0.95


def _with_profile(bundle: Path, dest: Path, costs: dict, setup_s: float) -> Path:
    shutil.copytree(bundle, dest)
    path = dest / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["profile"] = {"members": {
        m: {v: {"s_per_row": s, "setup_s": setup_s} for v, s in vs.items()} for m, vs in costs.items()}}
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True))  # manifest.json is not in its own checksums
    return dest


def _run(bundle: Path, data: Path, scratch: Path, limit: float | None, lanes: int | None):
    work = Path(tempfile.mkdtemp(prefix="run-", dir=scratch))
    start = time.time()
    report = run(bundle, data, work / "submission.csv",
                 RunOptions(backend="slow", progress=False, start_time=start, time_limit_s=limit, work_dir=work / "w", lanes=lanes))
    return time.time() - start, report


def oracle(full, full_wall: float, limit: float, true: dict) -> float:
    """Share of the ensemble value of the best plan fitting ``limit`` on the true costs."""
    states, spent = [], 0.0
    for m in full.members:
        spr32 = (m.seconds + m.warmup_seconds) / m.rows_computed  # fp32, as measured
        spent += m.load_seconds + m.seconds + m.warmup_seconds
        variants = [planner.Variant("fp32", spr32, m.load_seconds)]
        for v, s in true[m.name].items():
            if v != "fp32":  # the same per-row overhead, the rung's own sleep
                factor = 0.99 if v == "fp16" else 1.0
                variants.append(planner.Variant(v, spr32 - true[m.name]["fp32"] + s, m.load_seconds, factor))
        states.append(planner.MemberState(m.name, m.value, tuple(variants), m.rows_computed))
    # On lanes the members' work overlaps: the overhead is what the wall time holds beyond the busiest lane.
    busiest = max((lane["busy_s"] for lane in full.lanes), default=spent) if len(full.lanes) > 1 else spent
    overhead = full_wall - busiest
    lanes = [planner.Lane(f"lane{k}") for k in range(max(1, len(full.lanes)))]
    p = planner.plan_lanes(states, 0.0, planner.Budget(deadline=limit - overhead), lanes, method="exact")
    return p.value / sum(m.value for m in full.members)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", type=Path, help="three-member digits bundle with cnn2's fp16 rung (default: build one)")
    p.add_argument("--data", type=Path, help="its data folder (default: examples/digits/data)")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every cost (default 1: ~28 s unconstrained)")
    p.add_argument("--skews", type=float, nargs="+", default=SKEWS, help="profile skews (default: %(default)s)")
    p.add_argument("--fractions", type=float, nargs="+", default=FRACTIONS,
                   help="limits as fractions of the unconstrained wall time (default: %(default)s)")
    p.add_argument("--lanes", type=int, default=None, help="lanes of every run (default: the run's own rule)")
    p.add_argument("--log", type=Path, help="keep the runs' log and report tables here (default: discarded)")
    a = p.parse_args(argv)

    scratch = Path(tempfile.mkdtemp(prefix="ninefit-deadline-bench-"))
    cells = []
    try:
        data = a.data or REPO / "examples" / "digits" / "data"
        bundle = a.bundle
        if bundle is None:
            print("building the three-member bundle from examples/digits ...", file=sys.stderr)
            src = scratch / "digits"
            shutil.copytree(REPO / "examples" / "digits", src, ignore=shutil.ignore_patterns("work", "__pycache__"))
            if not (src / "checkpoints").is_dir() or not (src / "data").is_dir():  # not prepared: train it here
                subprocess.run([sys.executable, "prepare.py", "--epochs", "15"], cwd=src, check=True,
                               capture_output=True)
            data = a.data or src / "data"
            bundle = build_three(src, scratch, cnn2_fp16=True)
        true = {m: {v: s * a.scale for v, s in vs.items()} for m, vs in TRUE.items()}
        config = {"s_per_row": {f"{m}/{v}": s for m, vs in true.items() for v, s in vs.items()}}
        os.environ.update(slow_backend.write_config(scratch / "slow.json", **config))
        sys.stderr = open(a.log or scratch / "run.log", "w")  # noqa: SIM115  (the run log, kept out of the table)
        try:
            full_s, full = _run(bundle, data, scratch, None, a.lanes)
            for skew in a.skews:
                costs = {m: {v: s * a.scale * skew for v, s in vs.items()} for m, vs in PACKAGED.items()}
                profiled = _with_profile(bundle, scratch / f"profiled-{skew}", costs, 0.05 * skew)
                for f in a.fractions:
                    limit = f * full_s
                    wall, rep = _run(profiled, data, scratch, limit, a.lanes)
                    print(f"== skew {skew}, limit {f:.0%} ({limit:.1f} s): wall {wall:.1f} s\n{rep.table()}",
                          file=sys.stderr, flush=True)
                    cells.append((skew, f, limit, wall, rep, oracle(full, full_s, limit, true)))
        finally:
            sys.stderr.close()
            sys.stderr = sys.__stderr__
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print(f"lanes: {len(full.lanes) or 1} ({full.lane_rule}); the oracle plans as many on the true costs")
    print(f"unconstrained: {full_s:.1f} s wall, value delivered {full.value_delivered:.2f}; "
          + ", ".join(f"{m.name} {1e3 * (m.seconds + m.warmup_seconds) / m.rows_computed:.1f} ms/row" for m in full.members))
    print(f"{'skew':>5} {'limit':>6} {'limit_s':>8} {'wall_s':>7} {'wall/limit':>10} {'value':>6} {'oracle':>6} "
          f"{'v/oracle':>8}  members")
    worst_wall, worst_value = 0.0, float("inf")
    for skew, f, limit, wall, rep, best in cells:
        ratio = wall / limit
        worst_wall = max(worst_wall, ratio)
        vo = rep.value_delivered / best if best > 0 else None
        if vo is not None:
            worst_value = min(worst_value, vo)
        members = " ".join(f"{m.name}:{m.status}" + (f"({'+'.join(m.variants)})" if m.variants else "")
                           for m in rep.members)
        print(f"{skew:>5.1f} {f:>6.0%} {limit:>8.1f} {wall:>7.1f} {ratio:>10.3f} {rep.value_delivered:>6.3f} "
              f"{best:>6.3f} {'-' if vo is None else f'{vo:.3f}':>8}  {members}")
    ok = worst_wall < 1.0 and worst_value >= GOAL
    print(f"worst wall/limit {worst_wall:.3f} (goal < 1.0); worst value/oracle {worst_value:.3f} (goal >= {GOAL}): "
          + ("OK" if ok else "MISSED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
