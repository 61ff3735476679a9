"""``ninefit package SPEC -o BUNDLE_DIR``."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("package", help="export, verify and bundle the models of a spec",
                       description="Export each model of SPEC to ONNX, verify it against the torch model on real sample "
                       "data, and write a self-contained, checksummed bundle folder (atomically).")
    p.add_argument("spec", type=Path, help="ensemble spec (TOML); see docs/spec.md")
    p.add_argument("-o", "--out", type=Path, required=True, help="bundle folder to write")
    p.add_argument("--force", action="store_true", help="replace an existing bundle folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from packager.build import PackageOptions, package

    result = package(args.spec, args.out, PackageOptions(force=args.force))
    for w in result.warnings:
        print(f"warning: {w}")
    print(f"bundle written to {result.bundle} ({len(result.manifest.members)} member(s), {len(result.manifest.files)} files); report: {result.bundle / 'report.md'}")
    return 0
