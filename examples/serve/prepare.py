"""Prepare the serve example: a small time-series competition made offline, and three trained members.

A market of 40 symbols over 230 dates: each row has 8 features, and the
responder to predict follows its own past (the previous date's, and the mean
of the last five) plus a nonlinear function of the features. The first 200
dates train the members; the last 30 are the public test, which the
competition's gateway sends one date per call, in time order, with the
previous date's responders as ``lags`` (as Jane Street's did).

Writes, next to this file:
  data/train.csv                   row_id, date_id, symbol_id, f0..f7, lag1, lag_mean5, responder
  data/test.csv                    row_id, date_id, symbol_id, f0..f7 (dates 200-229)
  data/lags.csv                    date_id, symbol_id, responder_lag_1 (the previous date's responder)
  data/sample_submission.csv       row_id, responder (all 0.0), in test order
  data/test_labels.csv             row_id, responder (to score the submission)
  checkpoints/{linear,mlp,deep}.pt state_dicts

Runs in about ten seconds on a CPU. Deterministic (fixed seeds).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from models import COLUMNS, make_linear, make_mlp

HERE = Path(__file__).resolve().parent
SYMBOLS, DATES, TEST_DATES, FEATURES, HISTORY = 40, 230, 30, 8, 5


def simulate(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features (dates, symbols, 8) and responders (dates, symbols)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((DATES, SYMBOLS, FEATURES)).astype(np.float32)
    y = np.zeros((DATES, SYMBOLS), dtype=np.float32)
    for t in range(DATES):
        past = y[max(0, t - HISTORY):t]
        lag1 = y[t - 1] if t else 0.0
        mean5 = past.mean(axis=0) if len(past) else 0.0
        g = 0.6 * x[t, :, 0] - 0.4 * x[t, :, 1] * x[t, :, 2] + 0.3 * np.tanh(2 * x[t, :, 3]) + 0.2 * x[t, :, 4] ** 2 - 0.2
        y[t] = 0.45 * lag1 + 0.25 * mean5 + g + 0.3 * rng.standard_normal(SYMBOLS)
    return x, y


def lag_features(y: np.ndarray, t: int) -> np.ndarray:
    """(symbols, 2): lag1 and lag_mean5 at date t, as the features hook computes them with full history."""
    past = y[max(0, t - HISTORY):t]
    if not len(past):
        return np.zeros((SYMBOLS, 2), dtype=np.float32)
    return np.stack([past[-1], past.mean(axis=0)], axis=1)


def write(path: Path, header: list[str], rows) -> None:
    with open(path, "w") as f:
        f.write(",".join(header) + "\n")
        for row in rows:
            f.write(",".join(row) + "\n")


def train(model: torch.nn.Module, X: np.ndarray, y: np.ndarray, epochs: int) -> torch.nn.Module:
    torch.manual_seed(0)
    xs, ys = torch.tensor(X), torch.tensor(y).unsqueeze(1)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(epochs):
        perm = torch.randperm(len(xs))
        for b in range(0, len(xs), 256):
            idx = perm[b:b + 256]
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(xs[idx]), ys[idx]).backward()
            opt.step()
    return model.eval()


def r2(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(1 - ((pred - truth) ** 2).sum() / ((truth - truth.mean()) ** 2).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=15)
    args = ap.parse_args()
    torch.set_num_threads(2)
    x, y = simulate()
    first_test = DATES - TEST_DATES
    data = HERE / "data"
    data.mkdir(exist_ok=True)
    feats = [f"f{i}" for i in range(FEATURES)]

    def num(v: float) -> str:
        return f"{v:.6g}"

    write(data / "train.csv", ["row_id", "date_id", "symbol_id", *feats, "lag1", "lag_mean5", "responder"],
          ([f"{t}_{s}", str(t), str(s), *map(num, x[t, s]), *map(num, lag_features(y, t)[s]), num(y[t, s])]
           for t in range(first_test) for s in range(SYMBOLS)))
    test_dates = range(first_test, DATES)
    write(data / "test.csv", ["row_id", "date_id", "symbol_id", *feats],
          ([f"{t}_{s}", str(t), str(s), *map(num, x[t, s])] for t in test_dates for s in range(SYMBOLS)))
    write(data / "lags.csv", ["date_id", "symbol_id", "responder_lag_1"],
          ([str(t), str(s), num(y[t - 1, s])] for t in test_dates for s in range(SYMBOLS)))
    write(data / "sample_submission.csv", ["row_id", "responder"],
          ([f"{t}_{s}", "0.0"] for t in test_dates for s in range(SYMBOLS)))
    write(data / "test_labels.csv", ["row_id", "responder"],
          ([f"{t}_{s}", num(y[t, s])] for t in test_dates for s in range(SYMBOLS)))

    # Train on dates 5..179, validate on 180..199 (the lag features need five dates of history).
    rows = np.concatenate([np.concatenate([x[t], lag_features(y, t)], axis=1) for t in range(first_test)])
    target = y[:first_test].reshape(-1)
    fit = slice(HISTORY * SYMBOLS, (first_test - 20) * SYMBOLS)
    val = slice((first_test - 20) * SYMBOLS, first_test * SYMBOLS)
    assert rows.shape[1] == len(COLUMNS)
    ck = HERE / "checkpoints"
    ck.mkdir(exist_ok=True)
    for name, make in (("linear", make_linear), ("mlp", make_mlp), ("deep", lambda: make_mlp(hidden=128, depth=4))):
        t0 = time.perf_counter()
        torch.manual_seed(0)
        model = train(make(), rows[fit], target[fit], args.epochs)
        with torch.no_grad():
            score = r2(model(torch.tensor(rows[val])).squeeze(1).numpy(), target[val])
        torch.save(model.state_dict(), ck / f"{name}.pt")
        print(f"trained {name}: validation R2 {score:.3f} in {time.perf_counter() - t0:.1f}s")
    print(f"wrote {first_test * SYMBOLS} train rows, {TEST_DATES * SYMBOLS} test rows ({TEST_DATES} dates) to {data}")


if __name__ == "__main__":
    main()
