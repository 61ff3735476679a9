"""Prepare the digits example: split scikit-learn's 8x8 digits, train two models.

Writes, next to this file:
  data/train.csv, data/test.csv        id, px0..px63 (test has no label)
  data/sample_submission.csv           id, label (all 0), in test order
  data/test_labels.csv                 id, label (to score the submission)
  checkpoints/cnn.pt, checkpoints/mlp.pt   state_dicts

Runs in well under a minute on a CPU. Deterministic (fixed seeds).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from models import make_cnn, make_mlp
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

HERE = Path(__file__).resolve().parent


def write_table(path: Path, ids: np.ndarray, X: np.ndarray, labels: np.ndarray | None = None) -> None:
    cols = ["id", *(f"px{i}" for i in range(X.shape[1]))] + (["label"] if labels is not None else [])
    with open(path, "w") as f:
        f.write(",".join(cols) + "\n")
        for n, (i, row) in enumerate(zip(ids, X.astype(int))):
            cells = [str(i), *map(str, row)] + ([str(labels[n])] if labels is not None else [])
            f.write(",".join(cells) + "\n")


def train(model: torch.nn.Module, X: np.ndarray, y: np.ndarray, shape: tuple[int, ...], epochs: int, seed: int) -> float:
    torch.manual_seed(seed)
    xs = torch.tensor(X, dtype=torch.float32).reshape(-1, *shape)
    ys = torch.tensor(y, dtype=torch.long)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(xs))
        for b in range(0, len(xs), 64):
            idx = perm[b:b + 64]
            opt.zero_grad()
            loss = loss_fn(model(xs[idx]), ys[idx])
            loss.backward()
            opt.step()
    model.eval()
    return loss.item()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=30)
    args = ap.parse_args()
    torch.set_num_threads(2)
    digits = load_digits()
    ids = np.array([f"d{i:04d}" for i in range(len(digits.target))])
    X_tr, X_te, y_tr, y_te, id_tr, id_te = train_test_split(
        digits.data, digits.target, ids, test_size=0.3, random_state=0, stratify=digits.target
    )
    data = HERE / "data"
    data.mkdir(exist_ok=True)
    write_table(data / "train.csv", id_tr, X_tr, y_tr)
    write_table(data / "test.csv", id_te, X_te)
    with open(data / "sample_submission.csv", "w") as f:
        f.write("id,label\n" + "".join(f"{i},0\n" for i in id_te))
    with open(data / "test_labels.csv", "w") as f:
        f.write("id,label\n" + "".join(f"{i},{y}\n" for i, y in zip(id_te, y_te)))
    ck = HERE / "checkpoints"
    ck.mkdir(exist_ok=True)
    for name, make, shape in (("cnn", make_cnn, (1, 8, 8)), ("mlp", make_mlp, (64,))):
        t = time.perf_counter()
        torch.manual_seed(0)  # the random init too: the same accuracy on every run
        model = make()
        train(model, X_tr, y_tr, shape, args.epochs, seed=0)
        with torch.no_grad():
            acc = (model(torch.tensor(X_te, dtype=torch.float32).reshape(-1, *shape)).argmax(1).numpy() == y_te).mean()
        torch.save(model.state_dict(), ck / f"{name}.pt")
        print(f"trained {name}: test accuracy {acc:.4f} in {time.perf_counter() - t:.1f}s")
    print(f"wrote {len(id_tr)} train and {len(id_te)} test rows to {data}")


if __name__ == "__main__":
    main()
