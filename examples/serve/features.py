"""The features hook of the serve example: lag features, with state kept across the gateway's calls.

A class: ninefit makes one instance for the run and calls it batch by batch,
in the order the gateway sends them (one date per call, time order). Each call
gets the date's rows (a pandas DataFrame) and, as a keyword argument named
like ``predict``'s, the ``lags`` the gateway sends with them: each symbol's
responder on the previous date. The instance keeps every symbol's last five,
so ``lag_mean5`` carries history no single batch holds.

Where there are no lags (packaging checks the hook on the whole public test,
and a file run has none), the history is what earlier calls gave: nothing,
so the lag features are 0.
"""

from collections import deque

import numpy as np
import pandas as pd

HISTORY = 5


class LagFeatures:
    def __init__(self):
        self.history: dict[int, deque] = {}

    def __call__(self, frame: pd.DataFrame, lags=None) -> pd.DataFrame:
        if lags is not None:
            if hasattr(lags, "to_pandas"):  # the gateway sends polars frames
                lags = lags.to_pandas()
            for symbol, value in zip(lags["symbol_id"].to_numpy(), lags["responder_lag_1"].to_numpy()):
                self.history.setdefault(int(symbol), deque(maxlen=HISTORY)).append(float(value))
        last = [self.history.get(int(s)) for s in frame["symbol_id"].to_numpy()]
        return pd.DataFrame({
            "lag1": np.array([h[-1] if h else 0.0 for h in last], dtype=np.float32),
            "lag_mean5": np.array([np.mean(h) if h else 0.0 for h in last], dtype=np.float32),
        })
