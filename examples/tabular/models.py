"""The net of the tabular example: an MLP over the standardised features (missing values filled with 0)."""

from __future__ import annotations

import torch
from torch import nn

N_FEATURES = 12
N_CLASSES = 3


class MLP(nn.Module):
    def __init__(self, hidden: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(N_FEATURES, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, N_CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def make_mlp(hidden: int = 64) -> MLP:
    return MLP(hidden)
