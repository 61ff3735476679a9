"""``ninefit simulate BUNDLE_DIR --data DIR``: rehearse the submission notebook offline."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("simulate", help="run the submission notebook offline, as Kaggle would, and judge it",
                       description="Execute the submission notebook on a local Kaggle-shaped tree (read-only inputs, "
                       "/kaggle/working writable) with the network cut off and the time limit enforced, then check "
                       "submission.csv against the sample submission. Any bundle file failing its checksum makes the verdict "
                       "'damaged bundle'. Exits 0 only when the verdict is 'passed' (a bundle for a GPU target that ran on "
                       "the CPU while this machine has a GPU does not pass). A bundle packaged with a [serve] table is "
                       "rehearsed as Kaggle's evaluation API reruns it: the notebook serves predict, and ninefit's "
                       "gateway, a process of its own on the same loopback, sends the public test in the "
                       "competition's batches, holds each call to the response deadline and validates each answer; "
                       "it prints each call's latency, slack and members and the gateway's verdict.")
    p.add_argument("bundle", type=Path, help="bundle folder written by `ninefit package`")
    p.add_argument("--data", type=Path, required=True, help="competition data folder (test table and sample submission)")
    p.add_argument("--time-limit", default="9h", help="run-time limit to enforce, e.g. 2m, 9h (default: %(default)s, Kaggle's usual)")
    p.add_argument("--notebook", type=Path, default=None,
                   help="notebook to run (default: the one `ninefit notebook` writes for this bundle)")
    p.add_argument("--keep", type=Path, default=Path("ninefit-simulation"),
                   help="folder for the executed notebook, submission.csv and run_report.json (a serving bundle: "
                   "submission.parquet, result.json, latency.jsonl, serve_report.jsonl) (default: %(default)s)")
    p.add_argument("--competition", default=None, help="name of the data folder under /kaggle/input (default: the --data folder's name)")
    p.add_argument("--isolation", choices=("auto", "netns", "audit"), default="auto",
                   help="how to cut the network off: a network namespace (everything the notebook starts), an audit "
                   "hook in the kernel and its Python subprocesses (not other programs, nor sockets opened below "
                   "Python's socket module), or the first that works here (default: %(default)s)")
    p.add_argument("--seed", type=int, default=None,
                   help="a serving bundle's random batch order: its seed, to repeat a rehearsal (default: from the "
                   "clock, printed)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from packager.offline.simulate import simulate

    result = simulate(args.bundle, args.data, time_limit=args.time_limit, notebook=args.notebook, keep=args.keep,
                      competition=args.competition, isolation=args.isolation, seed=args.seed)
    print(result.summary())
    return 0 if result.passed else 1
