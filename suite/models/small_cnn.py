"""A small, fast CNN for CPU runs (Fashion-MNIST 28x28 on a few cores).

Not from the Fast-BAT paper: a LeNet-style stand-in. Two 3x3 conv layers
(32, 64 channels) with ReLU and 2x2 max-pooling, adaptive average pooling to
4x4 (so any input size >= 28x28 works), then a 1024-128-classes MLP.
About 151k parameters for 1 input channel and 10 classes. No BatchNorm.
"""

from __future__ import annotations

import torch
from torch import nn

from suite.models.second_order import Conv2d, MaxPool2d


class SmallCNN(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 10, hidden: int = 128):
        super().__init__()
        self.features = nn.Sequential(
            Conv2d(in_channels, 32, 3, padding=1),
            nn.ReLU(),
            MaxPool2d(2),
            Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            MaxPool2d(2),
            nn.AdaptiveAvgPool2d(4),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64 * 4 * 4, hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def small_cnn(in_channels: int = 1, num_classes: int = 10) -> SmallCNN:
    return SmallCNN(in_channels, num_classes)
