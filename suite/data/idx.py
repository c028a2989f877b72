"""Fashion-MNIST in the IDX format (gzipped or plain)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch

from ._common import corrupt, obtain

SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian package dataset-fashion-mnist
_NAMES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
          "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
           0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file (gzip detected from its magic bytes)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError) as exc:
        raise corrupt(path, exc) from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise corrupt(path, detail="bad IDX magic number")
    dtype, ndim = np.dtype(_DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise corrupt(path, detail="truncated IDX header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise corrupt(path, detail=f"IDX dims {dims} need {expected} bytes, "
                                   f"file has {len(raw) - header}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def _find(folder: Path, name: str) -> Path | None:
    for candidate in (folder / (name + ".gz"), folder / name):
        if candidate.is_file():
            return candidate
    return None


def load_fashion_mnist(data_dir: Path, download: bool):
    candidates = [data_dir / "fashion-mnist", SYSTEM_DIR, data_dir / "FashionMNIST" / "raw"]

    def located():
        for folder in candidates:
            paths = [_find(folder, n) for n in _NAMES]
            if all(p is not None for p in paths):
                return folder, paths
        return None

    def fetch():
        import torchvision

        torchvision.datasets.FashionMNIST(root=str(data_dir), download=True)

    searched = ", ".join(str(c) for c in candidates)
    fix = (f"install the Debian package dataset-fashion-mnist, or run 'python -c \"import "
           f"torchvision; torchvision.datasets.FashionMNIST(\\\"{data_dir}\\\", download=True)\"' "
           f"on a machine with internet and copy the folder FashionMNIST into {data_dir}")
    obtain("Fashion-MNIST", searched, lambda: located() is not None, download, fetch, fix)
    folder, paths = located()

    arrays = [read_idx(p) for p in paths]
    out = []
    for (images, labels), (pi, pl) in zip([arrays[:2], arrays[2:]], [paths[:2], paths[2:]]):
        if images.ndim != 3 or images.dtype != np.uint8:
            raise corrupt(pi, detail=f"expected uint8 N x H x W images, got {images.shape}")
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise corrupt(pl, detail=f"{labels.shape} labels for {images.shape[0]} images")
        out += [torch.from_numpy(images.copy()).unsqueeze(1),
                torch.from_numpy(labels.astype(np.int64))]
    return tuple(out), folder
