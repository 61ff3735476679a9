"""Accuracy of a text-example submission against data/test_labels.csv."""

import csv
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def accuracy(submission: Path, labels: Path = HERE / "data" / "test_labels.csv") -> float:
    with open(labels, newline="", encoding="utf-8") as f:
        truth = {r["id"]: r["language"] for r in csv.DictReader(f)}
    with open(submission, newline="", encoding="utf-8") as f:
        got = {r["id"]: r["language"] for r in csv.DictReader(f)}
    missing = set(truth) - set(got)
    if missing:
        raise SystemExit(f"submission lacks {len(missing)} test ids, e.g. {sorted(missing)[:3]}")
    return sum(got[i] == y for i, y in truth.items()) / len(truth)


if __name__ == "__main__":
    print(f"accuracy {accuracy(Path(sys.argv[1])):.4f}")
