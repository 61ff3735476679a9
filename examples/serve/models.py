"""The members of the serve example: three regressors of the next responder, from a row's features and its lags.

Each takes one input, ``x``: the row's 8 market features, then the two lag
features the features hook adds (``lag1``: the symbol's responder on the
previous date, ``lag_mean5``: its mean over the last five dates).
"""

import torch
from torch import nn

#: The model input's columns, in order (the spec names them in the same order).
COLUMNS = [f"f{i}" for i in range(8)] + ["lag1", "lag_mean5"]


class Linear(nn.Module):
    def __init__(self, n: int = len(COLUMNS)):
        super().__init__()
        self.net = nn.Linear(n, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MLP(nn.Module):
    def __init__(self, n: int = len(COLUMNS), hidden: int = 64, depth: int = 2):
        super().__init__()
        layers, width = [], n
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.GELU()]
            width = hidden
        self.net = nn.Sequential(*layers, nn.Linear(width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def make_linear() -> nn.Module:
    return Linear()


def make_mlp(hidden: int = 64, depth: int = 2) -> nn.Module:
    return MLP(hidden=hidden, depth=depth)
