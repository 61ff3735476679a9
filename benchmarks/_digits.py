"""Shared set-up for the benchmarks: a prepared, packaged digits example, test set enlarged."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def example_bundle(work: Path, example: str, spec: str, bundle: str) -> tuple[Path, Path]:
    """Copy ``examples/<example>`` under ``work``, prepare it (once) and package ``spec`` into
    ``work/<bundle>`` (once); return (bundle, the prepared example folder)."""
    from packager.build import package

    src = work / example
    if not src.exists():
        shutil.copytree(REPO / "examples" / example, src, ignore=shutil.ignore_patterns("data", "checkpoints", "__pycache__"))
        subprocess.run([sys.executable, "prepare.py"], cwd=src, check=True, capture_output=True)
    out = work / bundle
    if not out.exists():
        package(src / spec, out)
    return out, src


def profiled(bundle: Path, data: Path) -> Path:
    """``bundle`` with the profile ``ninefit package`` measures by default (measured once, on ``data``):
    the run sizes its chunks from it (:func:`runtime.execute.checkpoint.member_grid`)."""
    from runtime.manifest import Manifest

    if not Manifest.load(bundle).profile.measured:
        from packager.estimate.measure.profile import ProfileOptions, profile_bundle, store_profile

        store_profile(bundle, profile_bundle(bundle, data, ProfileOptions(seconds_per_member=1.0)))
    return bundle


def digits_bundle(work: Path, *, repeat: int = 1) -> tuple[Path, Path]:
    """Package the digits example under ``work``; return (bundle, data folder).

    With ``repeat`` > 1 the 540 test rows are tiled (new ids) to make a larger test set.
    """
    bundle, src = example_bundle(work, "digits", "ninefit.toml", "bundle")
    data = work / f"data-x{repeat}"
    if not data.exists():
        data.mkdir()
        test = (src / "data" / "test.csv").read_text().splitlines()
        rows = [f"r{k}-{line}" for k in range(repeat) for line in test[1:]]
        (data / "test.csv").write_text("\n".join([test[0], *rows]) + "\n")
        (data / "sample_submission.csv").write_text("id,label\n" + "".join(f"{r.split(',', 1)[0]},0\n" for r in rows))
    return bundle, data
