"""Accuracy of a submission against the tabular example's test labels: python score.py submission.csv"""

import sys
from pathlib import Path

import pandas as pd

labels = pd.read_csv(Path(__file__).resolve().parent / "data" / "test_labels.csv", dtype=str)
sub = pd.read_csv(sys.argv[1], dtype=str)
merged = labels.merge(sub, on="id", suffixes=("", "_pred"))
print(f"accuracy {(merged['label'] == merged['label_pred']).mean():.4f} on {len(merged)} rows")
