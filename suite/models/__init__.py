"""Network architectures and the normalizing wrapper.

``ARCHS`` maps an architecture name to ``builder(in_channels, num_classes)``, which returns an
un-normalized network; the builders of the networks with dropout (``DROPOUT``) also take
``dropout``. ``build_model`` wraps one in :class:`Normalized`, so the model takes inputs in [0, 1].
``preact_resnet18``, ``wrn16_8``, ``resnet18`` and ``resnet50`` are the Fast-BAT reference
implementation's networks, ``preact_resnet18_gradalign`` GradAlign's (tests pin them all to
``suite/reference/arch_fixture/``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn

from suite.errors import SuiteError, unknown_name
from suite.models.normalize import Normalized
from suite.models.preact_resnet import preact_resnet18, preact_resnet18_gradalign, preact_resnet18_preact_shortcut
from suite.models.resnet import resnet18, resnet50
from suite.models.small_cnn import small_cnn
from suite.models.wide_resnet import DEFAULT_DROPOUT, wrn16_8

ARCHS: dict[str, Callable[..., nn.Module]] = {
    "preact_resnet18": preact_resnet18,
    "preact_resnet18_gradalign": preact_resnet18_gradalign,
    "preact_resnet18_preact_shortcut": preact_resnet18_preact_shortcut,
    "wrn16_8": wrn16_8,
    "resnet18": resnet18,
    "resnet50": resnet50,
    "small_cnn": small_cnn,
}
# The networks with dropout, and their default rate (the reference's).
DROPOUT: dict[str, float] = {"wrn16_8": DEFAULT_DROPOUT}
# Bumped when a network's function changes under its name, so that the run ids of its runs change
# and records of the old network are never taken for runs of the new one. 2: the reference's
# networks replaced the suite's first ones (PreActResNet-18's shortcut on the raw input, WRN-16-8
# with 3 units per group, dropout and the reference's initialisation).
REVISIONS: dict[str, int] = {"preact_resnet18": 2, "wrn16_8": 2}
# Names a network was recorded under and no longer has: old name -> its name now. Records keep
# the name they were made with; a new run under the old name is refused with the new one.
RENAMED: dict[str, str] = {"preact_resnet18_wong": "preact_resnet18_preact_shortcut"}


def check_arch(arch: str) -> None:
    """Raise a one-line SuiteError unless ``arch`` is a network of :data:`ARCHS`."""
    if arch in RENAMED:
        raise SuiteError(
            f"arch {arch!r} is now called {RENAMED[arch]!r} (its shortcut takes the pre-activated "
            f"input, unlike Wong et al.'s network, which is preact_resnet18); use --arch {RENAMED[arch]}"
        )
    if arch not in ARCHS:
        raise unknown_name("arch", arch, ARCHS)


def resolve_dropout(arch: str, dropout: float | None) -> float | None:
    """The dropout rate ``arch`` is built with: ``dropout``, its default when None, None for a
    network without dropout. Raises SuiteError on a rate for such a network or out of [0, 1)."""
    if arch not in DROPOUT:
        if dropout is not None:
            raise SuiteError(
                f"arch {arch!r} has no dropout; leave dropout unset (networks with dropout: {', '.join(DROPOUT)})"
            )
        return None
    if dropout is None:
        return DROPOUT[arch]
    if not 0 <= dropout < 1:
        raise SuiteError(f"dropout must be in [0, 1), got {dropout:g}")
    return float(dropout)


def build_model(
    arch: str,
    in_channels: int,
    num_classes: int,
    mean: Sequence[float],
    std: Sequence[float],
    *,
    dropout: float | None = None,
) -> nn.Module:
    """Build ``arch`` for ``in_channels``/``num_classes``, normalizing inside; ``dropout`` None
    is the network's default (see :func:`resolve_dropout`)."""
    check_arch(arch)
    mean, std = list(mean), list(std)
    if len(mean) != in_channels or len(std) != in_channels:
        raise SuiteError(f"mean/std need one value per input channel ({in_channels}); got {len(mean)} and {len(std)}")
    if any(s <= 0 for s in std):
        raise SuiteError(f"std values must be positive, got {std}")
    dropout = resolve_dropout(arch, dropout)
    extra = {} if dropout is None else {"dropout": dropout}
    return Normalized(ARCHS[arch](in_channels, num_classes, **extra), mean, std)


__all__ = ["ARCHS", "DROPOUT", "RENAMED", "REVISIONS", "Normalized", "build_model", "check_arch", "resolve_dropout"]
