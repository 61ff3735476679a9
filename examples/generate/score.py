"""Accuracy of a submission against data/answers.csv, overall and by the sums' digits."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(path: str) -> None:
    with open(HERE / "data" / "answers.csv", newline="") as f:
        truth = {r["id"]: r["answer"] for r in csv.DictReader(f)}
    with open(HERE / "data" / "test.csv", newline="") as f:
        digits = {r["id"]: r["digits"] for r in csv.DictReader(f)}
    with open(path, newline="") as f:
        got = {r["id"]: r["answer"] for r in csv.DictReader(f)}
    right = {i: got.get(i) == a for i, a in truth.items()}
    print(f"accuracy {sum(right.values()) / len(right):.4f} ({sum(right.values())}/{len(right)})")
    for d in sorted(set(digits.values())):
        ids = [i for i in truth if digits[i] == d]
        print(f"  {d}-digit sums: {sum(right[i] for i in ids)}/{len(ids)}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "submission.csv")
