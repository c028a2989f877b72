"""PreActResNet-18 (He et al. 2016, "Identity Mappings in Deep Residual Networks"), as the fast
adversarial training papers build it, and two variants:

- ``preact_resnet18``: the network of the Fast-BAT reference implementation, of Wong et al.'s
  fast_adversarial ("Fast is better than free", 2020), of N-FGSM and of RobustBench's Fast-AT
  models. Each block's projection shortcut (1x1 conv, no BN) takes the block's raw input ``x``;
  a final BN-ReLU comes before the pooling.
- ``preact_resnet18_gradalign``: GradAlign's own network (Andriushchenko & Flammarion 2020,
  github.com/tml-epfl/understanding-fast-adv-training, ``models.py``): the same blocks, but no
  final BN-ReLU: layer 4's output is pooled directly. Pinned to that code by its own fixture.
- ``preact_resnet18_preact_shortcut``: the shortcut taken from the pre-activated ``relu(bn1(x))``;
  the same parameter shapes as ``preact_resnet18``, another function, used by none of the papers
  above (records made before it was named so list it as ``preact_resnet18_wong``).

Changes from the sources: any number of input channels, adaptive average pooling instead of
``avg_pool2d(4)`` (any input size >= 28x28), and no in-place ops, so double backward works.
Default PyTorch initialisation, as the sources.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from suite.models.second_order import BatchNorm2d, Conv2d


def make_stage(block, in_planes: int, planes: int, num_blocks: int, stride: int) -> tuple[nn.Sequential, int]:
    """``num_blocks`` blocks, the first with ``stride``; returns the stage and its output width."""
    blocks = []
    for s in [stride] + [1] * (num_blocks - 1):
        blocks.append(block(in_planes, planes, s))
        in_planes = planes * block.expansion
    return nn.Sequential(*blocks), in_planes


class PreActBlock(nn.Module):
    """Pre-activation basic block: ``conv2(relu(bn2(conv1(relu(bn1(x)))))) + shortcut(x)``."""

    expansion = 1
    shortcut_on_preactivation = False  # the reference: the projection takes the raw input x

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.bn1 = BatchNorm2d(in_planes)
        self.conv1 = Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = BatchNorm2d(planes)
        self.conv2 = Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        if stride != 1 or in_planes != planes * self.expansion:
            self.shortcut = nn.Sequential(Conv2d(in_planes, planes * self.expansion, 1, stride=stride, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        if hasattr(self, "shortcut"):
            shortcut = self.shortcut(out if self.shortcut_on_preactivation else x)
        else:
            shortcut = x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreactShortcutBlock(PreActBlock):
    """The block whose projection shortcut takes ``relu(bn1(x))`` instead of ``x``."""

    shortcut_on_preactivation = True


class PreActResNet(nn.Module):
    """The stem conv, four stages, then (``final_bn``) BN-ReLU, global average pooling, linear."""

    def __init__(self, block, num_blocks, in_channels: int = 3, num_classes: int = 10, final_bn: bool = True):
        super().__init__()
        width = 64
        self.conv1 = Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        self.layer1, width = make_stage(block, width, 64, num_blocks[0], 1)
        self.layer2, width = make_stage(block, width, 128, num_blocks[1], 2)
        self.layer3, width = make_stage(block, width, 256, num_blocks[2], 2)
        self.layer4, width = make_stage(block, width, 512, num_blocks[3], 2)
        if final_bn:
            self.bn = BatchNorm2d(512 * block.expansion)
        self.linear = nn.Linear(512 * block.expansion, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        if hasattr(self, "bn"):
            out = F.relu(self.bn(out))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def preact_resnet18(in_channels: int = 3, num_classes: int = 10) -> PreActResNet:
    """The paper's PreActResNet-18: the Fast-BAT reference's, Wong et al.'s, N-FGSM's, RobustBench's."""
    return PreActResNet(PreActBlock, [2, 2, 2, 2], in_channels, num_classes)


def preact_resnet18_gradalign(in_channels: int = 3, num_classes: int = 10) -> PreActResNet:
    """GradAlign's PreActResNet-18: no BN-ReLU before the pooling."""
    return PreActResNet(PreActBlock, [2, 2, 2, 2], in_channels, num_classes, final_bn=False)


def preact_resnet18_preact_shortcut(in_channels: int = 3, num_classes: int = 10) -> PreActResNet:
    """PreActResNet-18 with the projection shortcut on the pre-activated input (no paper's network)."""
    return PreActResNet(PreactShortcutBlock, [2, 2, 2, 2], in_channels, num_classes)
