"""Shared set-up for the benchmarks: a prepared, packaged digits example, test set enlarged,
and the three-member digits bundle of the deadline benchmark.

Nothing here imports from ``tests/``: :func:`build_three` and :func:`with_profile`
are copies of ``tests/runtime/deadline_fixtures.py``'s.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def digits_bundle(work: Path, *, repeat: int = 1) -> tuple[Path, Path]:
    """Package the digits example under ``work``; return (bundle, data folder).

    With ``repeat`` > 1 the 540 test rows are tiled (new ids) to make a larger test set.
    """
    from packager.build import package

    src = work / "digits"
    if not src.exists():
        shutil.copytree(REPO / "examples" / "digits", src, ignore=shutil.ignore_patterns("data", "checkpoints", "__pycache__"))
        subprocess.run([sys.executable, "prepare.py"], cwd=src, check=True, capture_output=True)
    bundle = work / "bundle"
    if not bundle.exists():
        package(src / "ninefit.toml", bundle, log=lambda _m: None)
    data = work / f"data-x{repeat}"
    if not data.exists():
        data.mkdir()
        test = (src / "data" / "test.csv").read_text().splitlines()
        rows = [f"r{k}-{line}" for k in range(repeat) for line in test[1:]]
        (data / "test.csv").write_text("\n".join([test[0], *rows]) + "\n")
        (data / "sample_submission.csv").write_text("id,label\n" + "".join(f"{r.split(',', 1)[0]},0\n" for r in rows))
    return bundle, data


THIRD_MEMBER = """

[[model]]
name = "cnn2"
factory = "models:make_cnn"
checkpoint = "checkpoints/cnn.pt"
weight = 0.2
output = "logits"
activation = "softmax"
batch_size = 32

  [[model.input]]
  name = "pixels"
  dtype = "float32"
  shape = ["batch", 1, 8, 8]
  columns = "px*"
"""


def build_three(digits_dir: Path, dest: Path) -> Path:
    """Package the digits example's cnn (0.6, with an fp16 rung) and mlp (0.4) plus ``cnn2``
    (0.2, the cnn's checkpoint again), all at batches of 32 rows, into ``dest / "bundle3"``.

    ``digits_dir`` is a prepared digits example folder (data and checkpoints written).
    """
    from packager.build import package

    src = dest / "src"
    shutil.copytree(digits_dir, src, ignore=shutil.ignore_patterns("work", "__pycache__"))
    spec = src / "ninefit.toml"
    text = spec.read_text().replace("batch_size = 256", "batch_size = 32")
    spec.write_text(text + THIRD_MEMBER)
    out = dest / "bundle3"
    package(spec, out, log=lambda _msg: None)
    return out


def with_profile(bundle: Path, dest: Path, costs: dict[str, dict[str, float]], setup_s: float = 0.05) -> Path:
    """A copy of ``bundle`` whose manifest carries a profile: ``{member: {variant: s_per_row}}``."""
    shutil.copytree(bundle, dest)
    path = dest / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["profile"] = {"members": {
        m: {v: {"s_per_row": s, "setup_s": setup_s} for v, s in variants.items()} for m, variants in costs.items()
    }}
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True))  # manifest.json is not in its own checksums
    return dest
