"""WRN-16-8 as the Fast-BAT reference implementation builds it (after Zagoruyko & Komodakis, 2016).

Each of the three groups is one downsampling unit followed by (depth - 4) / 6 basic units, so
WRN-16-8 has 3 units of two 3x3 convolutions per group (not the textbook 2). A unit computes
``a = relu(bn1(x))``, then ``conv2(dropout(relu(bn2(conv1(a)))))`` plus a shortcut: a 1x1
(strided) convolution of ``a`` in the downsampling unit, ``x`` itself in a basic unit. Stem 3x3
conv; head BN-ReLU, global average pooling, linear. Dropout 0.1 by default. Initialisation:
convolutions Kaiming normal (fan_in, ReLU), BN weight 1 and bias 0, linear weight and bias 0.

Changes from the source: any number of input channels; no in-place ops, so double backward works.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from suite.models.second_order import BatchNorm2d, Conv2d

DEFAULT_DROPOUT = 0.1


class WideUnit(nn.Module):
    """A pre-activation unit; ``downsample`` gives it the 1x1 projection shortcut."""

    def __init__(self, in_planes: int, out_planes: int, stride: int, dropout: float, downsample: bool):
        super().__init__()
        self.bn1 = BatchNorm2d(in_planes)
        self.conv1 = Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = BatchNorm2d(out_planes)
        self.conv2 = Conv2d(out_planes, out_planes, 3, stride=1, padding=1, bias=False)
        self.dropout = dropout
        self.shortcut = Conv2d(in_planes, out_planes, 1, stride=stride, bias=False) if downsample else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.bn1(x))
        out = F.relu(self.bn2(self.conv1(a)))
        if self.dropout > 0:
            out = F.dropout(out, p=self.dropout, training=self.training)
        return self.conv2(out) + (x if self.shortcut is None else self.shortcut(a))


class WideResNet(nn.Module):
    def __init__(
        self,
        depth: int = 16,
        widen_factor: int = 8,
        in_channels: int = 3,
        num_classes: int = 10,
        dropout: float = DEFAULT_DROPOUT,
    ):
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise ValueError(f"WideResNet depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=False)
        self.block1 = self._make_group(widths[0], widths[1], n, 1, dropout)
        self.block2 = self._make_group(widths[1], widths[2], n, 2, dropout)
        self.block3 = self._make_group(widths[2], widths[3], n, 2, dropout)
        self.bn1 = BatchNorm2d(widths[3])
        self.fc = nn.Linear(widths[3], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.weight)
                nn.init.zeros_(m.bias)

    @staticmethod
    def _make_group(in_planes: int, out_planes: int, n: int, stride: int, dropout: float) -> nn.Sequential:
        """One downsampling unit, then ``n`` basic units."""
        return nn.Sequential(
            WideUnit(in_planes, out_planes, stride, dropout, downsample=True),
            *(WideUnit(out_planes, out_planes, 1, dropout, downsample=False) for _ in range(n)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = F.relu(self.bn1(out))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.fc(out)


def wrn16_8(in_channels: int = 3, num_classes: int = 10, dropout: float = DEFAULT_DROPOUT) -> WideResNet:
    return WideResNet(16, 8, in_channels, num_classes, dropout)
