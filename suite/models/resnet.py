"""CIFAR-style ResNet-18 / ResNet-50, after kuangliu/pytorch-cifar and
He et al. (2016), "Deep Residual Learning for Image Recognition".

3x3 stride-1 stem conv and no max-pool; adaptive average pooling instead of
``avg_pool2d(4)`` (any input size >= 28x28); any number of input channels;
no in-place ops, so double backward works.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from suite.models.preact_resnet import make_stage
from suite.models.second_order import BatchNorm2d, Conv2d


def _shortcut(in_planes: int, out_planes: int, stride: int) -> nn.Module:
    if stride == 1 and in_planes == out_planes:
        return nn.Identity()
    return nn.Sequential(
        Conv2d(in_planes, out_planes, 1, stride=stride, bias=False),
        BatchNorm2d(out_planes),
    )


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = BatchNorm2d(planes)
        self.conv2 = Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = BatchNorm2d(planes)
        self.shortcut = _shortcut(in_planes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = BatchNorm2d(planes)
        self.conv2 = Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = BatchNorm2d(planes)
        self.conv3 = Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = BatchNorm2d(planes * self.expansion)
        self.shortcut = _shortcut(in_planes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, block, num_blocks, in_channels: int = 3, num_classes: int = 10):
        super().__init__()
        width = 64
        self.conv1 = Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = BatchNorm2d(64)
        self.layer1, width = make_stage(block, width, 64, num_blocks[0], 1)
        self.layer2, width = make_stage(block, width, 128, num_blocks[1], 2)
        self.layer3, width = make_stage(block, width, 256, num_blocks[2], 2)
        self.layer4, width = make_stage(block, width, 512, num_blocks[3], 2)
        self.linear = nn.Linear(512 * block.expansion, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def resnet18(in_channels: int = 3, num_classes: int = 10) -> ResNet:
    return ResNet(BasicBlock, [2, 2, 2, 2], in_channels, num_classes)


def resnet50(in_channels: int = 3, num_classes: int = 10) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 6, 3], in_channels, num_classes)
