"""Trees: ninefit's per-row cost for a 1,000-tree LightGBM model against LightGBM's own booster.predict.

A binary LightGBM model of 1,000 trees (31 leaves, 20 features, 5 % of the values missing) is trained here,
packaged by ``ninefit package`` with a half-rounds rung (the first 500 rounds), and timed on the same rows:

* inference: the member's runner as the runtime builds it (``runtime.execute.runners.load_runner``: an
  onnxruntime CPU session, the graph's TreeEnsemble operator) against ``booster.predict`` on the same float32
  rows, at batch sizes 1, 64, 1,024 and all the rows, both on every core; goal: ninefit / native <= 1.2;
* whole run: ``runtime.run`` over the test CSV (read, feed, infer, checkpoint, write the submission) against
  pandas reading the CSV, ``booster.predict`` and ``to_csv``, the bare notebook a user would write;
* the half-rounds rung: its per-row cost against the full model's, its value factor as packaging measured it
  (R^2 against the full model over the public rows), and the AUC of both on the test labels.

Rounds interleave the contenders; each figure is the median of the rounds.

    python benchmarks/trees.py [--rows 20000] [--rounds 5] [--trees 1000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    order = np.argsort(p)
    ranks = np.empty(len(p))
    ranks[order] = np.arange(1, len(p) + 1)
    pos = y == 1
    return float((ranks[pos].sum() - pos.sum() * (pos.sum() + 1) / 2) / (pos.sum() * (~pos).sum()))


def make_project(work: Path, rows: int, trees: int):
    import lightgbm as lgb
    import pandas as pd

    rng = np.random.default_rng(0)
    n = 20000 + rows
    x = rng.standard_normal((n, 20))
    signal = x[:, 0] + 0.7 * x[:, 1] - 0.5 * x[:, 2] * x[:, 3] + 0.4 * np.sin(3 * x[:, 4]) + 0.5 * rng.standard_normal(n)
    y = (signal > 0).astype(int)
    x[rng.random(x.shape) < 0.05] = np.nan
    cols = [f"f{i:02d}" for i in range(20)]
    frame = pd.DataFrame(x, columns=cols)
    t0 = time.perf_counter()
    booster = lgb.train({"objective": "binary", "num_leaves": 31, "learning_rate": 0.03, "verbose": -1, "seed": 0},
                        lgb.Dataset(frame[:20000], y[:20000]), trees)
    print(f"trained {booster.num_trees()} trees in {time.perf_counter() - t0:.1f}s")
    booster.save_model(str(work / "model.txt"))
    test = frame[20000:].reset_index(drop=True)
    table = test.copy()
    table.insert(0, "id", np.arange(rows))
    table.to_csv(work / "test.csv", index=False)
    pd.DataFrame({"id": table["id"], "target": 0.5}).to_csv(work / "sample_submission.csv", index=False)
    (work / "ninefit.toml").write_text(
        '[data]\ntest = "test.csv"\nid_column = "id"\nsample_submission = "sample_submission.csv"\n\n'
        '[[model]]\nname = "gbm"\nlightgbm = "model.txt"\nbatch_size = 1024\n'
        f'  [[model.variant]]\n  name = "half"\n  rounds = {trees // 2}\n')
    return booster, test.to_numpy(np.float32), y[20000:]


def per_row(fn, x: np.ndarray, batch: int, budget_s: float = 0.5) -> float:
    """Seconds per row of ``fn`` over ``x`` in batches of ``batch`` (whole passes until ``budget_s``)."""
    done, t0 = 0, time.perf_counter()
    while True:
        for start in range(0, len(x), batch):
            fn(x[start:start + batch])
            done += len(x[start:start + batch])
            if batch == 1 and done >= 2000:
                break
        if time.perf_counter() - t0 >= budget_s:
            return (time.perf_counter() - t0) / done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--trees", type=int, default=1000)
    args = ap.parse_args()
    import logging

    import pandas as pd

    from packager.build import PackageOptions, package
    from runtime import RunOptions, run
    from runtime.bundle import open_bundle
    from runtime.execute.runners import load_runner

    logging.getLogger("ninefit").setLevel(logging.ERROR)  # the run's and packaging's progress lines
    work = Path(tempfile.mkdtemp(prefix="ninefit-trees-"))
    booster, x, y = make_project(work, args.rows, args.trees)
    t0 = time.perf_counter()
    package(work / "ninefit.toml", work / "bundle", PackageOptions(target="t4x2"))
    print(f"packaged in {time.perf_counter() - t0:.1f}s (converted, parity checked, the half rung measured; not profiled)")
    bundle = open_bundle(work / "bundle")
    member = bundle.manifest.members[0]
    opts = SimpleNamespace(backend=None, batch_size=None, threads=None, device_id=0, work_dir=None, torch_compile=False)
    runners = {v.name: load_runner(bundle, member, v, opts) for v in member.variants}
    for r in runners.values():
        r.activate()
    name = member.inputs[0].name
    full = lambda b: runners["fp32"].infer({name: b})  # noqa: E731
    half = lambda b: runners["half"].infer({name: b})  # noqa: E731
    native = lambda b: booster.predict(b)  # noqa: E731
    native_half = lambda b: booster.predict(b, num_iteration=args.trees // 2)  # noqa: E731
    batches = (1, 64, 1024, len(x))
    times: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.rounds):
        for b in batches:
            for label, fn in (("ninefit", full), ("native", native), ("ninefit half", half), ("native half", native_half)):
                times.setdefault((label, b), []).append(per_row(fn, x, b))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\ninference, {args.trees} trees, {len(x)} rows, {runners['fp32'].describe()} vs lightgbm "
          f"{__import__('lightgbm').__version__} booster.predict (median of {args.rounds} rounds, us per row)")
    print(f"{'batch':>8} {'ninefit':>9} {'native':>9} {'ratio':>7}  faster")
    for b in batches:
        a, n = med[("ninefit", b)], med[("native", b)]
        print(f"{b:>8} {a * 1e6:9.2f} {n * 1e6:9.2f} {a / n:7.2f}  {'ninefit' if a < n else 'native'}")
    # Whole runs: ninefit's runtime against the bare notebook.
    whole_n, whole_b = [], []
    for k in range(args.rounds):
        t = time.perf_counter()
        run(work / "bundle", work, work / f"sub{k}.csv", RunOptions(progress=False, work_dir=work / f"w{k}"))
        whole_n.append(time.perf_counter() - t)
        t = time.perf_counter()
        frame = pd.read_csv(work / "test.csv")
        pd.DataFrame({"id": frame["id"], "target": booster.predict(frame[[f"f{i:02d}" for i in range(20)]])}
                     ).to_csv(work / f"bare{k}.csv", index=False)
        whole_b.append(time.perf_counter() - t)
    a, n = statistics.median(whole_n), statistics.median(whole_b)
    print(f"\nwhole run of {len(x)} rows: ninefit run {a:.3f}s ({a / len(x) * 1e6:.1f} us/row) vs read_csv + predict + "
          f"to_csv {n:.3f}s ({n / len(x) * 1e6:.1f} us/row): ratio {a / n:.2f}")
    got = pd.read_csv(work / "sub0.csv")["target"].to_numpy()
    diff = np.abs(got - booster.predict(x))
    print(f"submission vs booster.predict: {np.mean(diff > 1e-4):.3%} of rows differ by more than 1e-4 (a float32 "
          f"input flipping a split at a threshold), max |diff| {diff.max():.2g}")
    # The half-rounds rung.
    vf = member.variants[1].value_factor
    b = 1024
    print(f"\nhalf-rounds rung (first {args.trees // 2} of {args.trees} rounds), batch {b}: "
          f"{med[('ninefit half', b)] * 1e6:.2f} us/row vs full {med[('ninefit', b)] * 1e6:.2f} "
          f"(x{med[('ninefit half', b)] / med[('ninefit', b)]:.2f}); value factor measured at packaging {vf:.4f}; "
          f"AUC on the labels: full {_auc(y, booster.predict(x)):.4f}, half "
          f"{_auc(y, booster.predict(x, num_iteration=args.trees // 2)):.4f}")
    for r in runners.values():
        r.deactivate()


if __name__ == "__main__":
    main()
