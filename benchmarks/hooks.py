"""Hooks and submission formats: what they cost per row, measured side by side in one run.

1. Formatting a submission (``runtime.output.formats.Formatter.rows`` + the atomic
   write): each format against ``values`` on the same rows, as a ratio.
2. The features hook (a groupby-aggregate plus a side-table join) applied
   chunk by chunk as the runtime does (``runtime.hooks.apply_features``,
   groups kept whole) against one call on the whole table, as a ratio.

    .venv/bin/python benchmarks/hooks.py            # 200,000 rows
    .venv/bin/python benchmarks/hooks.py --quick    # 20,000 rows
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runtime.hooks import apply_features, call_hook, load_hook  # noqa: E402
from runtime.manifest import SubmissionSpec  # noqa: E402
from runtime.output.formats import Formatter, form_id, match  # noqa: E402
from runtime.output.submission import SampleSubmission, write_atomic  # noqa: E402

CLASSES = tuple(f"c{k}" for k in range(20))
HOOK = '''
import pandas as pd

def make(df):
    g = df.groupby("store")["sales"]
    return pd.DataFrame({"mean": g.transform("mean"), "max": g.transform("max").astype("float64"),
                         "ratio": df["sales"] / g.transform("sum")})
'''
POST = '''
import numpy as np

def to_submission(values, ids):
    return [[i, "%.4f" % v] for i, v in zip(ids, np.clip(values[:, 0], 0, 1))]
'''


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_formats(n: int, repeat: int, folder: Path) -> None:
    ids = [f"id{i}" for i in range(n)]
    rng = np.random.default_rng(0)
    (folder / "post.py").write_text(POST)
    specs = {
        "values": SubmissionSpec(id_column="id", columns=CLASSES),
        "argmax": SubmissionSpec(id_column="id", columns=("y",), mode="argmax", classes=CLASSES),
        "topk": SubmissionSpec(id_column="id", columns=("y",), mode="topk", classes=CLASSES, k=3),
        "multilabel": SubmissionSpec(id_column="id", columns=("y",), mode="multilabel", classes=CLASSES,
                                     thresholds=(0.9,)),
        "long": SubmissionSpec(id_column="id", columns=("y",), mode="long", targets=CLASSES[:4]),
        "rle": SubmissionSpec(id_column="id", columns=("y",), mode="rle", mask_shape=(16, 16), threshold=0.5),
        "postprocess": SubmissionSpec(id_column="id", columns=("y",), mode="postprocess", postprocess="post:to_submission",
                                      width=1),
    }
    print(f"formatting + writing {n:,} test rows (best of {repeat}); ratio to values per test row")
    base = None
    for name, spec in specs.items():
        width = {"values": len(CLASSES), "long": 4, "rle": 256, "postprocess": 1}.get(name, len(CLASSES))
        sample_ids = [form_id(spec, i, t) for i in ids for t in spec.targets] if name == "long" else ids
        cells = ("0",) * len(spec.columns)
        sample = SampleSubmission(ids=sample_ids, header=["id", *spec.columns], rows={i: cells for i in sample_ids})
        hook = load_hook(spec.postprocess, folder) if spec.postprocess else None
        values = rng.random((n, width))
        covered = np.ones(n, dtype=bool)

        def once():
            f = Formatter(spec, sample, ids, match(spec, sample, ids), sample, hook=hook)  # no cache between runs
            write_atomic(folder / "s.csv", sample.header, f.rows(values, covered))

        seconds = _best(once, repeat)
        base = base or seconds
        print(f"  {name:<12} {seconds:7.3f} s  {seconds / n * 1e6:6.2f} us/row  x{seconds / base:.2f}")


def bench_features(n: int, repeat: int, folder: Path) -> None:
    import pandas as pd

    (folder / "feat.py").write_text(HOOK)
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(n)], "store": rng.integers(0, n // 50, n),
                          "sales": rng.random(n)})
    fn = load_hook("feat:make", folder)
    whole = _best(lambda: call_hook(fn, "feat:make", frame), repeat)
    print(f"features hook over {n:,} rows (best of {repeat}); ratio to one whole-table call")
    print(f"  one call                 {whole:7.3f} s  x1.00")
    for group, label in (("", "chunks of 4096 rows"), ("store", "chunks of whole stores")):
        chunked = _best(lambda: apply_features(frame, "feat:make", folder, group=group, chunk_rows=4096), repeat)
        print(f"  {label:<24} {chunked:7.3f} s  x{chunked / whole:.2f}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="20,000 rows, two repeats")
    args = p.parse_args(argv)
    n, repeat = (20_000, 2) if args.quick else (200_000, 3)
    with tempfile.TemporaryDirectory(prefix="ninefit-bench-hooks-") as tmp:
        bench_formats(n, repeat, Path(tmp))
        bench_features(n, repeat, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
