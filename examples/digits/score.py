"""Accuracy of a digits submission against data/test_labels.csv."""

import csv
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def accuracy(submission: Path, labels: Path = HERE / "data" / "test_labels.csv") -> float:
    with open(labels) as f:
        truth = {r["id"]: r["label"] for r in csv.DictReader(f)}
    with open(submission) as f:
        pred = {r["id"]: r["label"] for r in csv.DictReader(f)}
    if pred.keys() != truth.keys():
        raise SystemExit(f"{submission}: ids differ from the test labels")
    return sum(pred[i] == truth[i] for i in truth) / len(truth)


if __name__ == "__main__":
    acc = accuracy(Path(sys.argv[1] if len(sys.argv) > 1 else "submission.csv"))
    print(f"ensemble test accuracy: {acc:.4f}")
