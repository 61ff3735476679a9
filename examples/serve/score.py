"""R2 of a serve-example submission (the gateway's submission.parquet, or a CSV) against data/test_labels.csv."""

import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent


def r2(submission: Path, labels: Path = HERE / "data" / "test_labels.csv") -> float:
    truth = pd.read_csv(labels, dtype={"row_id": str})
    read = pd.read_parquet if submission.suffix == ".parquet" else pd.read_csv
    pred = read(submission).astype({"row_id": str})
    merged = truth.merge(pred, on="row_id", how="left", suffixes=("", "_pred"))
    if len(pred) != len(truth) or merged["responder_pred"].isna().any():
        raise SystemExit(f"{submission}: its rows differ from the test labels' ({len(pred)} vs {len(truth)})")
    y, p = merged["responder"].to_numpy(), merged["responder_pred"].to_numpy()
    return float(1 - ((p - y) ** 2).sum() / ((y - y.mean()) ** 2).sum())


if __name__ == "__main__":
    print(f"ensemble test R2: {r2(Path(sys.argv[1] if len(sys.argv) > 1 else 'submission.parquet')):.4f}")
