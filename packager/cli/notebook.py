"""``ninefit notebook BUNDLE_DIR -o submission.ipynb``."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("notebook", help="write the offline Kaggle submission notebook for a bundle",
                       description="Write the notebook to submit to a Kaggle code competition: it installs the "
                       "bundle's wheels offline, runs the bundle before the time limit and writes submission.csv. "
                       "Every parameter is editable in its first cell or by a NINEFIT_* environment variable. For a bundle packaged "
                       "with a [serve] table it writes the evaluation-API notebook instead: it builds the bundle's "
                       "budgeted predict, wraps it in the competition's inference server and calls serve() on "
                       "Kaggle's rerun, run_local_gateway(...) otherwise.")
    p.add_argument("bundle", type=Path, help="bundle folder written by `ninefit package`")
    p.add_argument("-o", "--out", type=Path, default=Path("submission.ipynb"), help="notebook to write (default: %(default)s)")
    p.add_argument("--slug", default=None,
                   help="Kaggle dataset slug of the bundle (default: the id in its dataset-metadata.json, else the folder name)")
    p.add_argument("--competition", default=None, metavar="SLUG",
                   help="competition slug: the data is looked for in /kaggle/input/SLUG")
    p.add_argument("--data-dir", default=None, help="competition data folder in the notebook (overrides --competition)")
    p.add_argument("--time-limit", default="9h", help="the competition's run-time limit (default: %(default)s)")
    p.add_argument("--margin", default="", help="safety margin before the limit, e.g. 30m (default: the runtime's)")
    p.add_argument("--target", default=None,
                   help="hardware the notebook runs on: t4x2, p100, cpu... (default: the bundle's packaged target, else t4x2)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from packager.offline.notebook import write_notebook

    out = write_notebook(args.bundle, args.out, slug=args.slug, competition=args.competition,
                         competition_data=args.data_dir, time_limit=args.time_limit, target=args.target,
                         margin=args.margin)
    print(f"notebook written to {out}; rehearse it offline with `ninefit simulate {args.bundle} --data DIR --notebook {out}`")
    return 0
