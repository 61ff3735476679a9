"""``python -m runtime run`` (and ``ninefit run``): run a bundle to a submission.

Defined in the runtime so the notebook can use it without the packager.
A user-facing problem is one paragraph on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Sequence

from runtime.errors import NinefitError


def add_run_parser(sub) -> None:
    p = sub.add_parser("run", help="run a bundle on test data and write submission.csv",
                       description="Verify a bundle, run its models over the test data and write submission.csv atomically.")
    p.add_argument("bundle", type=Path, help="bundle folder written by `ninefit package`")
    p.add_argument("--data", type=Path, required=True, help="competition data folder (holding the test table and sample submission), or the test table itself")
    p.add_argument("--out", type=Path, default=Path("submission.csv"), help="submission to write (default: %(default)s)")
    p.add_argument("--backend", default=None, help="inference backend (default: the best available: onnxruntime, or tensorrt)")
    p.add_argument("--batch-size", type=int, default=None, help="override every member's batch size")
    p.add_argument("--threads", type=int, default=None, help="CPU threads per model (default: onnxruntime's choice)")
    p.add_argument("--work-dir", type=Path, default=None, help="folder for engine caches and checkpoints")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from runtime.run import RunOptions, run

    if args.batch_size is not None and args.batch_size < 1:
        raise NinefitError(f"--batch-size {args.batch_size}: expected a positive number of rows")
    report = run(args.bundle, args.data, args.out, RunOptions(
        backend=args.backend, batch_size=args.batch_size, threads=args.threads,
        work_dir=args.work_dir, progress=not args.quiet,
    ))
    print(report.table())
    return 0


def run_cli(parser: argparse.ArgumentParser, argv: Sequence[str] | None, *, prog: str = "ninefit") -> int:
    """Parse, dispatch, and turn a NinefitError into a message and an exit status."""
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return func(args)
    except NinefitError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime", description="ninefit runtime (offline, numpy + onnxruntime)")
    add_run_parser(parser.add_subparsers(title="commands"))
    return run_cli(parser, argv, prog="ninefit-runtime")


__all__ = ["add_run_parser", "main", "run_cli"]
