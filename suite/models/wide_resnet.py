"""Wide ResNet (Zagoruyko & Komodakis, 2016), in the form used by the
adversarial-training literature (TRADES, Rice et al. 2020 "Overfitting in
adversarially robust deep learning"); ``wrn16_8`` is depth 16, widen factor 8.

Adaptive average pooling instead of ``avg_pool2d(8)`` (any input size >= 28x28);
any number of input channels; no in-place ops, so double backward works.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from suite.models.layers import BatchNorm2d, Conv2d


class WideBasicBlock(nn.Module):
    """Pre-activation block: BN-ReLU-conv3x3-(dropout)-BN-ReLU-conv3x3 + shortcut."""

    def __init__(self, in_planes: int, out_planes: int, stride: int, drop_rate: float = 0.0):
        super().__init__()
        self.bn1 = BatchNorm2d(in_planes)
        self.conv1 = Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = BatchNorm2d(out_planes)
        self.conv2 = Conv2d(out_planes, out_planes, 3, stride=1, padding=1, bias=False)
        self.drop_rate = drop_rate
        self.equal_in_out = in_planes == out_planes and stride == 1
        self.conv_shortcut = None if self.equal_in_out else Conv2d(
            in_planes, out_planes, 1, stride=stride, bias=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = F.relu(self.bn1(x))
        shortcut = x if self.equal_in_out else self.conv_shortcut(o)
        out = F.relu(self.bn2(self.conv1(o)))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        return self.conv2(out) + shortcut


class WideResNet(nn.Module):
    def __init__(self, depth: int = 16, widen_factor: int = 8, in_channels: int = 3,
                 num_classes: int = 10, drop_rate: float = 0.0):
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise ValueError(f"WideResNet depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=False)
        self.block1 = self._make_group(widths[0], widths[1], n, 1, drop_rate)
        self.block2 = self._make_group(widths[1], widths[2], n, 2, drop_rate)
        self.block3 = self._make_group(widths[2], widths[3], n, 2, drop_rate)
        self.bn1 = BatchNorm2d(widths[3])
        self.fc = nn.Linear(widths[3], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    @staticmethod
    def _make_group(in_planes: int, out_planes: int, n: int, stride: int, drop_rate: float):
        return nn.Sequential(*[
            WideBasicBlock(in_planes if i == 0 else out_planes, out_planes,
                           stride if i == 0 else 1, drop_rate)
            for i in range(n)
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = F.relu(self.bn1(out))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.fc(out)


def wrn16_8(in_channels: int = 3, num_classes: int = 10) -> WideResNet:
    return WideResNet(16, 8, in_channels, num_classes)
