"""SVHN cropped digits (format 2): train_32x32.mat and test_32x32.mat."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ._common import corrupt, obtain

_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}


def read_mat(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """A .mat file -> (uint8 N x 3 x 32 x 32, int64 N) with label 10 mapped to 0."""
    import scipy.io

    try:
        mat = scipy.io.loadmat(str(path))
        x = np.asarray(mat["X"], dtype=np.uint8)
        y = np.asarray(mat["y"], dtype=np.int64).reshape(-1)
    except Exception as exc:  # scipy raises assorted errors on truncated files
        raise corrupt(path, exc) from exc
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.shape[3] != y.shape[0]:
        raise corrupt(path, detail=f"X shape {x.shape}, {y.shape[0]} labels")
    y = np.where(y == 10, 0, y)
    x = torch.from_numpy(np.ascontiguousarray(x.transpose(3, 2, 0, 1)))
    return x, torch.from_numpy(y)


def load_svhn(data_dir: Path, download: bool):
    folder = data_dir / "svhn"

    for split, fname in _FILES.items():
        def fetch(split=split):
            import torchvision

            torchvision.datasets.SVHN(root=str(folder), split=split, download=True)

        fix = (f"run 'python -c \"import torchvision; torchvision.datasets.SVHN"
               f"(\\\"{folder}\\\", split=\\\"{split}\\\", download=True)\"' on a machine "
               f"with internet and copy {fname} into {folder}")
        obtain(f"SVHN {split} set ({fname})", folder, (folder / fname).is_file, download,
               fetch, fix)

    return (*read_mat(folder / _FILES["train"]), *read_mat(folder / _FILES["test"])), folder
