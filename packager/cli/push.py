"""``ninefit push BUNDLE_DIR --competition SLUG``: upload the bundle, push its notebook, submit."""

from __future__ import annotations

import argparse
from pathlib import Path

from runtime.cli import duration_arg


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a positive number of seconds")
    return value


def register(sub) -> None:
    p = sub.add_parser(
        "push", help="upload the bundle to Kaggle, push its notebook, print (or run) the submit command",
        description="Write dataset-metadata.json (if missing), the notebook (if missing) and kernel-metadata.json "
        "(private, internet off, the bundle's dataset and the competition attached, enable_gpu with the explicit "
        "machine shape of the bundle's target), check everything (the bundle verifies, the notebook's dataset path "
        "and accelerator match the dataset and the target, the kernel metadata field by field, the wheels install "
        "on the image's Python), then run the official Kaggle CLI: create the dataset or upload a new version, "
        "wait until that version is ready, push the notebook, and print the exact `kaggle competitions submit` "
        "command (--submit waits for the version to run and submits it). Every step prints what it does.",
        epilog="Credentials are the Kaggle CLI's own (KAGGLE_API_TOKEN, ~/.kaggle/, KAGGLE_USERNAME/KAGGLE_KEY, "
        "KAGGLE_CONFIG_DIR): ninefit never reads, stores or prints them; a missing or refused one gets the CLI's "
        "instructions. Install the CLI with `pip install \"ninefit[kaggle]\"`. Exit status: 0 done (or dry run); "
        "2 a check failed or a bad flag, nothing sent; 1 Kaggle refused or a step failed (the message says what "
        "was sent before it).")
    p.add_argument("bundle", type=Path, help="bundle folder written by `ninefit package`")
    p.add_argument("--competition", default=None, metavar="SLUG",
                   help="code competition: attached to the notebook (its data in /kaggle/input/SLUG) and submitted to")
    p.add_argument("--notebook", type=Path, default=Path("submission.ipynb"),
                   help="the notebook to push (default: %(default)s); written by `ninefit notebook` if missing; "
                   "kernel-metadata.json is written beside it and that folder is what `kaggle kernels push` uploads")
    p.add_argument("--kernel", default=None, metavar="SLUG",
                   help="the notebook's slug on Kaggle (default: COMPETITION-ninefit, else DATASET-ninefit)")
    p.add_argument("--kaggle-owner", dest="owner", default=None, metavar="NAME",
                   help="Kaggle user owning the dataset, if the bundle has no dataset-metadata.json yet")
    p.add_argument("--machine-shape", default=None, metavar="SHAPE",
                   help="Kaggle machine shape, for a GPU target Kaggle documents none for (l4x4); default: the "
                   "bundle target's (packager/data/kaggle_image.txt), e.g. NvidiaTeslaT4 for t4x2")
    p.add_argument("--docker-image", default=None, metavar="IMAGE",
                   help="pin the notebook to this (older) Kaggle image; needed for a P100 target, whose GPU the "
                   "current image's torch has no kernels for (refused otherwise)")
    p.add_argument("--model-source", dest="model_sources", action="append", default=[], metavar="REF",
                   help="attach a Kaggle model, owner/model/framework/variation/version (repeatable)")
    p.add_argument("--kernel-source", dest="kernel_sources", action="append", default=[], metavar="REF",
                   help="attach another notebook's output, owner/slug (repeatable)")
    p.add_argument("--time-limit", default="9h", help="the competition's limit, for a notebook push writes "
                   "(default: %(default)s)")
    p.add_argument("-m", "--message", default="", help="dataset version notes and submission message "
                   "(default: 'ninefit push')")
    p.add_argument("--dry-run", action="store_true",
                   help="write the files, run the checks and print the Kaggle CLI commands; send nothing")
    p.add_argument("--submit", action="store_true",
                   help="after the push, wait until the notebook version has run and submit it (needs --competition)")
    p.add_argument("--poll-interval", type=_seconds, default=10.0, metavar="S",
                   help="seconds between status checks (default: %(default)s)")
    p.add_argument("--dataset-timeout", type=duration_arg, default=1800.0, metavar="T",
                   help="give up waiting for the dataset version after T, e.g. 30m (default: 30m)")
    p.add_argument("--kernel-timeout", type=duration_arg, default=12 * 3600.0, metavar="T",
                   help="with --submit, give up waiting for the notebook run after T (default: 12h)")
    p.add_argument("--kaggle-cli", default=None, metavar="CMD",
                   help="the Kaggle CLI to run (default: ninefit's own `python -m kaggle`, else `kaggle` on PATH)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from packager.push import PushOptions, push

    push(PushOptions(
        bundle=args.bundle, notebook=args.notebook, competition=args.competition, kernel=args.kernel,
        owner=args.owner, machine_shape=args.machine_shape, docker_image=args.docker_image,
        model_sources=tuple(args.model_sources), kernel_sources=tuple(args.kernel_sources),
        time_limit=args.time_limit, message=args.message, dry_run=args.dry_run, submit=args.submit,
        poll_s=args.poll_interval, dataset_timeout_s=args.dataset_timeout, kernel_timeout_s=args.kernel_timeout,
        kaggle_cli=args.kaggle_cli))
    return 0
