"""The tabular example, made offline in seconds: a 3-class table with missing values (a Kaggle playground's
shape), five LightGBM models trained on five folds and an MLP, saved as each library saves them.

Writes data/ (test.csv, sample_submission.csv, test_labels.csv), boosters/lgb_fold{0..4}.txt
(booster.save_model) and checkpoints/mlp.pt (the MLP's state_dict).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
FEATURES = [f"f{i:02d}" for i in range(12)]
CLASSES = ["low", "mid", "high"]


def make_data(n: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Features (about 4 % missing) and a 3-class label from a non-linear score of them."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, len(FEATURES)))
    score = (x[:, 0] + 0.8 * x[:, 1] - 0.6 * x[:, 2] * x[:, 3] + 0.5 * np.sin(2 * x[:, 4]) + 0.4 * x[:, 5] ** 2
             + 0.35 * rng.standard_normal(n))
    y = np.digitize(score, np.quantile(score, [1 / 3, 2 / 3]))
    x[rng.random(x.shape) < 0.04] = np.nan
    return pd.DataFrame(x, columns=FEATURES), y


def train_folds(x: pd.DataFrame, y: np.ndarray, folds: int, rounds: int, out: Path) -> None:
    import lightgbm as lgb

    order = np.random.default_rng(1).permutation(len(x))
    for k in range(folds):
        train = np.sort(np.setdiff1d(order, order[k::folds]))
        params = {"objective": "multiclass", "num_class": len(CLASSES), "num_leaves": 15, "learning_rate": 0.05,
                  "feature_fraction": 0.8, "verbose": -1, "seed": k, "num_threads": 2}
        booster = lgb.train(params, lgb.Dataset(x.iloc[train], y[train]), rounds)
        booster.save_model(str(out / f"lgb_fold{k}.txt"))


def train_mlp(x: pd.DataFrame, y: np.ndarray, epochs: int, out: Path) -> None:
    import torch
    from models import make_mlp

    torch.manual_seed(0)
    model = make_mlp()
    xs = torch.tensor(np.nan_to_num(x.to_numpy(np.float32)), dtype=torch.float32)
    ys = torch.tensor(y, dtype=torch.long)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(epochs):
        for idx in torch.randperm(len(xs)).split(128):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xs[idx]), ys[idx]).backward()
            opt.step()
    torch.save(model.state_dict(), out / "mlp.pt")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--train-rows", type=int, default=4000)
    ap.add_argument("--test-rows", type=int, default=1500)
    ap.add_argument("--rounds", type=int, default=200, help="boosting rounds of each fold")
    ap.add_argument("--epochs", type=int, default=30)
    args = ap.parse_args()
    import sys

    sys.path.insert(0, str(HERE))
    x, y = make_data(args.train_rows + args.test_rows)
    train_x, train_y = x.iloc[:args.train_rows], y[:args.train_rows]
    test_x = x.iloc[args.train_rows:].reset_index(drop=True)
    for folder in ("data", "boosters", "checkpoints"):
        (HERE / folder).mkdir(exist_ok=True)
    ids = [f"t{i:05d}" for i in range(len(test_x))]
    test = test_x[FEATURES[::-1]].copy()  # the table's column order need not be the models': matched by name
    test.insert(0, "id", ids)
    test.to_csv(HERE / "data" / "test.csv", index=False)
    pd.DataFrame({"id": ids, "label": CLASSES[0]}).to_csv(HERE / "data" / "sample_submission.csv", index=False)
    pd.DataFrame({"id": ids, "label": [CLASSES[k] for k in y[args.train_rows:]]}).to_csv(
        HERE / "data" / "test_labels.csv", index=False)
    train_folds(train_x, train_y, 5, args.rounds, HERE / "boosters")
    train_mlp(train_x, train_y, args.epochs, HERE / "checkpoints")
    print(f"wrote data/, boosters/lgb_fold0..4.txt and checkpoints/mlp.pt ({args.train_rows} training rows, "
          f"{args.test_rows} test rows)")


if __name__ == "__main__":
    main()
