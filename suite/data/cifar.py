"""CIFAR-10 / CIFAR-100 in the official "python version" pickle batches."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from ._common import corrupt, obtain

_SPEC = {
    # name: (folder, train files, test files, label key, torchvision class, pretty name)
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"],
                "labels", "CIFAR10", "CIFAR-10"),
    "cifar100": ("cifar-100-python", ["train"], ["test"], "fine_labels", "CIFAR100", "CIFAR-100"),
}


def read_batch(path: Path, label_key: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One pickle batch -> (uint8 N x 3 x 32 x 32, int64 N)."""
    try:
        with open(path, "rb") as f:
            entry = pickle.load(f, encoding="latin1")
        data = np.asarray(entry["data"], dtype=np.uint8)
        labels = np.asarray(entry[label_key], dtype=np.int64)
    except (OSError, EOFError, pickle.UnpicklingError, KeyError, TypeError, ValueError,
            AttributeError, IndexError) as exc:
        raise corrupt(path, exc) from exc
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] != labels.shape[0]:
        raise corrupt(path, detail=f"data shape {data.shape}, {labels.shape[0]} labels")
    x = torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())
    return x, torch.from_numpy(labels)


def load_cifar(name: str, data_dir: Path, download: bool):
    folder_name, train_files, test_files, label_key, tv_class, pretty = _SPEC[name]
    folder = data_dir / folder_name

    def present() -> bool:
        return all((folder / f).is_file() for f in train_files + test_files)

    def fetch():
        import torchvision

        getattr(torchvision.datasets, tv_class)(root=str(data_dir), download=True)

    fix = (f"run 'python -c \"import torchvision; torchvision.datasets.{tv_class}"
           f"(\\\"{data_dir}\\\", download=True)\"' on a machine with internet "
           f"and copy the folder {folder_name} into {data_dir}")
    obtain(pretty, folder, present, download, fetch, fix)

    def read(files):
        parts = [read_batch(folder / f, label_key) for f in files]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    return (*read(train_files), *read(test_files)), folder
