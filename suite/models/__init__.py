"""Network architectures and the normalizing wrapper.

``ARCHS`` maps an architecture name to ``builder(in_channels, num_classes)``,
which returns an un-normalized network. ``build_model`` wraps one in
:class:`Normalized`, so the model takes inputs in [0, 1].
"""
from __future__ import annotations

from typing import Callable, Sequence

from torch import nn

from suite.errors import SuiteError
from suite.models.normalize import Normalized
from suite.models.preact_resnet import preact_resnet18
from suite.models.resnet import resnet18, resnet50
from suite.models.small_cnn import small_cnn
from suite.models.wide_resnet import wrn16_8

ARCHS: dict[str, Callable[[int, int], nn.Module]] = {
    "preact_resnet18": preact_resnet18,
    "wrn16_8": wrn16_8,
    "resnet18": resnet18,
    "resnet50": resnet50,
    "small_cnn": small_cnn,
}


def build_model(arch: str, in_channels: int, num_classes: int,
                mean: Sequence[float], std: Sequence[float]) -> nn.Module:
    """Build ``arch`` for ``in_channels``/``num_classes``, normalizing inside."""
    if arch not in ARCHS:
        raise SuiteError(f"unknown arch {arch!r}; choose one of: {', '.join(ARCHS)}")
    mean, std = list(mean), list(std)
    if len(mean) != in_channels or len(std) != in_channels:
        raise SuiteError(
            f"mean/std need one value per input channel ({in_channels}); "
            f"got {len(mean)} and {len(std)}"
        )
    if any(s <= 0 for s in std):
        raise SuiteError(f"std values must be positive, got {std}")
    return Normalized(ARCHS[arch](in_channels, num_classes), mean, std)


__all__ = ["ARCHS", "Normalized", "build_model"]
