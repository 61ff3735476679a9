"""A three-member digits bundle for the deadline tests and benchmark.

The digits example's cnn (weight 0.6, with an fp16 rung) and mlp (0.4), plus
``cnn2`` (0.2, the cnn's checkpoint again), all with batches of 32 rows, so
the 540 test rows make 17 chunks per member. Costs come from the slow
backend (:mod:`tests.runtime.slow_backend`), not from the models.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

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
#: An fp16 rung for cnn2 (the benchmark's: on a CPU it is not faster, and must be pruned).
CNN2_FP16 = """
  [[model.variant]]
  name = "fp16"
  precision = "fp16"
  value_factor = 0.99
"""
MEMBERS = ("cnn", "mlp", "cnn2")
WEIGHTS = {"cnn": 0.6, "mlp": 0.4, "cnn2": 0.2}
_BUILT: dict[tuple[Path, bool], Path] = {}


def build_three(digits_dir: Path, dest: Path, *, cnn2_fp16: bool = False) -> Path:
    """Package the three-member bundle from a prepared digits folder (once per folder);
    ``cnn2_fp16`` gives cnn2 an fp16 rung too."""
    if (digits_dir, cnn2_fp16) in _BUILT:
        return _BUILT[digits_dir, cnn2_fp16]
    from packager.build import package

    src = dest / "src"
    shutil.copytree(digits_dir, src, ignore=shutil.ignore_patterns("work", "__pycache__"))
    spec = src / "ninefit.toml"
    text = spec.read_text().replace("batch_size = 256", "batch_size = 32")
    spec.write_text(text + THIRD_MEMBER + (CNN2_FP16 if cnn2_fp16 else ""))
    out = dest / "bundle3"
    package(spec, out, log=lambda _msg: None)
    _BUILT[digits_dir, cnn2_fp16] = out
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


def read(path: Path) -> dict[str, str]:
    """A digits submission as {id: label}, in file order."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["id", "label"]
    return {r[0]: r[1] for r in rows[1:]}


def check_valid(path: Path, digits_dir: Path) -> dict[str, str]:
    """Complete and well-formed: every sample id once, in order, with a class label."""
    sub = read(path)
    sample = read(digits_dir / "data" / "sample_submission.csv")
    assert list(sub) == list(sample)
    assert set(sub.values()) <= {str(i) for i in range(10)}
    return sub
