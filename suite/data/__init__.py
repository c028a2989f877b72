"""Data sets of the suite: registry, loading with a fixed train/validation split.

``load_splits(name, data_dir)`` reads a data set from its official on-disk format through
torchvision's readers (downloading it when possible; Tiny-ImageNet from the folder that
``prepare_tiny_imagenet`` makes; ``synthetic_cifar10`` is generated, from no files) and returns uint8 NCHW tensors
split into train / validation (a fixed fraction of the official training set) / test
(the official test set). ``DeviceLoader`` turns such tensors into augmented batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from suite.errors import SuiteError, unknown_name

from .device_loader import DeviceLoader
from .imagefolder import load_tiny_imagenet, prepare_tiny_imagenet
from .synthetic import load_synthetic_cifar10
from .torchvision_sets import load_cifar, load_fashion_mnist, load_svhn

__all__ = ["DatasetInfo", "Splits", "DATASETS", "load_splits", "DeviceLoader", "prepare_tiny_imagenet"]


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    in_channels: int
    num_classes: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_padding: int  # 4 where the paper augments with random crop, 0 for none
    flip: bool  # random horizontal flip
    generated: bool = False  # made from a seed, no files: always present, never downloaded


@dataclass
class Splits:
    info: DatasetInfo
    train_x: torch.Tensor  # uint8 NCHW
    train_y: torch.Tensor  # int64
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


DATASETS: dict[str, DatasetInfo] = {
    "cifar10": DatasetInfo("cifar10", 3, 10, 32, (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616), 4, True),
    "cifar100": DatasetInfo("cifar100", 3, 100, 32, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), 4, True),
    "svhn": DatasetInfo("svhn", 3, 10, 32, (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970), 0, False),
    "tiny_imagenet": DatasetInfo(
        "tiny_imagenet", 3, 200, 64, (0.4802, 0.4481, 0.3975), (0.2770, 0.2691, 0.2821), 4, True
    ),
    "fashion_mnist": DatasetInfo("fashion_mnist", 1, 10, 28, (0.2860,), (0.3530,), 0, False),
    # CIFAR-10's shape, size and augmentation, generated (suite/data/synthetic.py); NOT CIFAR-10.
    # mean and std: the generated training images' (a test checks them).
    "synthetic_cifar10": DatasetInfo(
        "synthetic_cifar10", 3, 10, 32, (0.5000, 0.5002, 0.4998), (0.2061, 0.2058, 0.2153), 4, True, generated=True
    ),
}


def _read(name: str, data_dir: Path, download: bool):
    if name in ("cifar10", "cifar100"):
        return load_cifar(name, data_dir, download)
    if name == "svhn":
        return load_svhn(data_dir, download)
    if name == "fashion_mnist":
        return load_fashion_mnist(data_dir, download)
    if name == "tiny_imagenet":
        return load_tiny_imagenet(data_dir, download, DATASETS[name].image_size)
    if name == "synthetic_cifar10":
        return load_synthetic_cifar10()
    raise AssertionError(name)


def _check(info: DatasetInfo, x: torch.Tensor, y: torch.Tensor, where: Path, split: str):
    want = (info.in_channels, info.image_size, info.image_size)
    if x.dtype != torch.uint8 or tuple(x.shape[1:]) != want or y.shape != x.shape[:1]:
        raise SuiteError(
            f"{info.name} {split} images in {where} have shape "
            f"{tuple(x.shape[1:])} ({x.dtype}, {y.shape[0]} labels), expected {want} "
            f"(uint8, one label each): the files are corrupt"
        )
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= info.num_classes):
        raise SuiteError(
            f"{info.name} {split} labels in {where} lie outside 0..{info.num_classes - 1}: the files are corrupt"
        )


def load_splits(
    name: str, data_dir: str | Path, download: bool = True, val_fraction: float = 0.1, split_seed: int = 0
) -> Splits:
    """Load data set ``name``; split its training set into train/val with a fixed
    permutation drawn from ``split_seed``; the official test set is the test split."""
    aliases = {k.replace("_", ""): k for k in DATASETS}
    key = aliases.get(name.lower().replace("-", "").replace("_", ""))
    if key is None:
        raise unknown_name("dataset", name, DATASETS)
    if not 0.0 <= val_fraction < 1.0:
        raise SuiteError(f"val_fraction must be in [0, 1), got {val_fraction}")
    info = DATASETS[key]
    data_dir = Path(data_dir).expanduser()
    (train_x, train_y, test_x, test_y), where = _read(key, data_dir, download)
    _check(info, train_x, train_y, where, "training")
    _check(info, test_x, test_y, where, "test")

    n = train_x.shape[0]
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed))
    n_val = int(round(n * val_fraction))
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    return Splits(info, train_x[train_idx], train_y[train_idx], train_x[val_idx], train_y[val_idx], test_x, test_y)
