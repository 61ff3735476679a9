"""The two models of the digits example: a small CNN and an MLP.

Inputs are the raw 0..16 pixel intensities of scikit-learn's 8x8 digits; the
scaling lives inside the models so the exported ONNX takes the table as is.
"""

import torch
from torch import nn


class DigitsCNN(nn.Module):
    def __init__(self, channels: int = 16):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(),
            nn.Conv2d(channels, 2 * channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * channels * 16, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(pixels / 16.0))


class DigitsMLP(nn.Module):
    def __init__(self, hidden: int = 128):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 10))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.net(pixels / 16.0)


def make_cnn(channels: int = 16) -> nn.Module:
    return DigitsCNN(channels)


def make_mlp(hidden: int = 128) -> nn.Module:
    return DigitsMLP(hidden)
