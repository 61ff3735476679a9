"""The ``ninefit`` command: a thin layer over :mod:`packager` and :mod:`runtime`.

Each subcommand lives in its own module with ``register(subparsers)``; the
library never imports this package.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Sequence

import runtime
from packager.cli.console import show_progress
from runtime.cli import add_run_parser, run_cli

#: Subcommand modules, in the order `ninefit --help` lists them.
COMMANDS = ("package", "verify", "profile", "estimate", "notebook", "simulate", "push")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ninefit",
        description="Package PyTorch ensembles into verified offline bundles, estimate their Kaggle run time, "
        "and run them to a submission before the deadline.",
    )
    parser.add_argument("--version", action="version", version=f"ninefit {runtime.__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"packager.cli.{name}").register(sub)
    add_run_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    show_progress()  # the library's progress lines (ninefit.package, .profile, .push) on stdout, as printed before
    return run_cli(build_parser(), argv)


__all__ = ["build_parser", "main"]
