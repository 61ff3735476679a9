"""``ninefit profile BUNDLE``: measure each member here and store the profile in the manifest."""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path


def _batch_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected positive batch sizes separated by commas, e.g. 64,256")
    return sizes


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a positive number of seconds")
    return value


def register(sub) -> None:
    p = sub.add_parser("profile", help="measure each member of a bundle here and store the profile",
                       description="Verify BUNDLE, then measure every member and variant on this machine (setup, and "
                       "the whole per-batch path at several batch sizes until three windows agree within 10%%), "
                       "plus reading, ensembling and writing; store it as manifest.profile (in place, atomically).")
    p.add_argument("bundle", type=Path, help="bundle folder written by `ninefit package`")
    p.add_argument("--data", type=Path, default=None,
                   help="public test data: the data folder, or the test table itself, whatever its name (the sample "
                   "submission beside it); default: synthetic rows of the declared input shapes")
    p.add_argument("--seconds", type=_positive, default=3.0,
                   help="measuring time per member, all variants and batch sizes (default: %(default)s)")
    p.add_argument("--batch-sizes", type=_batch_sizes, default=None,
                   help="batch sizes to measure, e.g. 64,256 (default: each member's, a quarter and 4x of it)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads per model (default: the backend's choice)")
    p.add_argument("--backend", default=None, help="runtime backend (default: the best available)")
    p.add_argument("--no-startup", action="store_true", help="do not time interpreter start, imports and exit")
    p.add_argument("--json", action="store_true", help="print the profile as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from packager.cli.console import silenced
    from packager.estimate.measure.profile import ProfileOptions, profile_bundle, store_profile

    options = ProfileOptions(seconds_per_member=args.seconds, batch_sizes=args.batch_sizes, threads=args.threads,
                             backend=args.backend, startup=not args.no_startup)
    with silenced("ninefit.profile") if args.json else contextlib.nullcontext():  # the JSON alone on stdout
        profile = profile_bundle(args.bundle, args.data, options)
    path = store_profile(args.bundle, profile)
    if args.json:
        print(json.dumps(profile.to_dict(), indent=2, sort_keys=True))
    else:
        data = profile.data
        print(f"data: {data.source}; read {(data.read_fixed_s or 0.0):.3f} s + {(data.read_s_per_row or 0.0) * 1e6:.2f} us/row")
        print(f"profile stored in {path}")
    return 0
