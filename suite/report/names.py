"""Readable names for data sets and networks in the report's titles and tables.

Records keep their ids (``fashion_mnist``, ``small_cnn``); a reader of a figure or a paper table
wants "Fashion-MNIST, small CNN". An id missing here is shown as it is.
"""

from __future__ import annotations

DATASET_NAMES = {
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
    "svhn": "SVHN",
    "tiny_imagenet": "Tiny-ImageNet",
    "fashion_mnist": "Fashion-MNIST",
}
ARCH_NAMES = {
    "preact_resnet18": "PreActResNet-18",
    "preact_resnet18_gradalign": "PreActResNet-18 (GradAlign's)",
    "preact_resnet18_preact_shortcut": "PreActResNet-18 (pre-activation shortcut)",
    "wrn16_8": "WRN-16-8",
    "resnet18": "ResNet-18",
    "resnet50": "ResNet-50",
    "small_cnn": "small CNN",
}


def dataset_name(label: str) -> str:
    """A report's data label (``fashion_mnist + β 24/255 injected``, see
    :func:`suite.report.sources.data_label`) with the data set's readable name."""
    dataset, plus, rest = str(label).partition(" + ")
    return DATASET_NAMES.get(dataset, dataset) + (plus + rest if plus else "")


def arch_name(arch: str) -> str:
    """A network's readable name; ``<arch>@r<n>`` (a record of an earlier revision) says so."""
    base, at, revision = str(arch).partition("@r")
    return ARCH_NAMES.get(base, base) + (f" (revision {revision})" if at else "")


def setting_title(dataset: str, arch: str) -> str:
    """``Fashion-MNIST, small CNN``."""
    return f"{dataset_name(dataset)}, {arch_name(arch)}"
