"""CIFAR-10/100, SVHN and Fashion-MNIST through torchvision's dataset readers.

torchvision checks the MD5 of every CIFAR and SVHN file against the official one before it
unpickles (CIFAR) or parses (SVHN) it, so a crafted or damaged file is refused as corrupt and
never unpickled. Fashion-MNIST's IDX files hold no code; they are read from
``<data_dir>/fashion-mnist/``, Debian's ``/usr/share/datasets/fashion-mnist/`` (gzipped) or
torchvision's own ``<data_dir>/FashionMNIST/raw/``, decompressed into a temporary folder
(nothing is written next to the sources) and parsed by torchvision's IDX reader.
"""

from __future__ import annotations

import gzip
import shutil
import tempfile
import zlib
from pathlib import Path

import torch

from ._common import corrupt, obtain

SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian package dataset-fashion-mnist
_FASHION_FILES = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
]
_CIFAR = {"cifar10": ("CIFAR10", "CIFAR-10"), "cifar100": ("CIFAR100", "CIFAR-100")}


def _fetch_hint(name: str, data_dir: Path) -> str:
    return f"run 'suite data download {name} --data-dir DIR' on a machine with internet, then copy DIR's contents into {data_dir}"


def _first_mismatch(folder: Path, files: list[tuple[str, str]]) -> Path | None:
    """The first of ``files`` (name, official MD5) in ``folder`` whose checksum differs."""
    from torchvision.datasets.utils import check_integrity

    return next((folder / name for name, md5 in files if not check_integrity(str(folder / name), md5)), None)


def _verified(make, folder: Path, files: list[tuple[str, str]]):
    """``make()`` (a torchvision dataset) with its checksum failure named by file."""
    try:
        return make()
    except RuntimeError as exc:  # torchvision: "Dataset not found or corrupted"
        bad = _first_mismatch(folder, files)
        if bad is None:
            raise corrupt(folder, exc) from exc
        raise corrupt(bad, detail="its MD5 differs from the official file's") from exc
    except (OSError, EOFError, ValueError, KeyError, TypeError) as exc:
        raise corrupt(folder, exc) from exc


def load_cifar(name: str, data_dir: Path, download: bool):
    import torchvision

    tv_class, pretty = _CIFAR[name]
    cls = getattr(torchvision.datasets, tv_class)
    folder = data_dir / cls.base_folder
    files = [(f, md5) for f, md5 in cls.train_list + cls.test_list]
    files.append((cls.meta["filename"], cls.meta["md5"]))
    fix = _fetch_hint(name, data_dir)
    obtain(
        pretty,
        folder,
        lambda: all((folder / f).is_file() for f, _ in files),
        download,
        lambda: cls(root=str(data_dir), download=True),
        fix,
    )
    out = []
    for train in (True, False):
        ds = _verified(lambda: cls(root=str(data_dir), train=train, download=False), folder, files)
        out += [torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous(), torch.tensor(ds.targets, dtype=torch.int64)]
    return tuple(out), folder


def load_svhn(data_dir: Path, download: bool):
    import torchvision

    cls = torchvision.datasets.SVHN
    folder = data_dir / "svhn"
    out = []
    for split in ("train", "test"):
        _, fname, md5 = cls.split_list[split]
        fix = _fetch_hint("svhn", data_dir)
        obtain(
            f"SVHN {split} set ({fname})",
            folder,
            (folder / fname).is_file,
            download,
            lambda split=split: cls(root=str(folder), split=split, download=True),
            fix,
        )
        ds = _verified(lambda: cls(root=str(folder), split=split, download=False), folder, [(fname, md5)])
        out += [torch.from_numpy(ds.data).contiguous(), torch.from_numpy(ds.labels.astype("int64"))]
    return tuple(out), folder


def _find(folder: Path, name: str) -> Path | None:
    for candidate in (folder / (name + ".gz"), folder / name):
        if candidate.is_file():
            return candidate
    return None


def _read_idx(path: Path, reader, staging: Path) -> torch.Tensor:
    """Decompress ``path`` (gzip or plain) into ``staging`` and parse it with ``reader``."""
    plain = staging / path.name.removesuffix(".gz")
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as src, open(plain, "wb") as dst:
            shutil.copyfileobj(src, dst)
        return reader(str(plain))
    except (OSError, EOFError, zlib.error, AssertionError, RuntimeError, TypeError, ValueError, KeyError) as exc:
        raise corrupt(path, exc) from exc


def fashion_mnist_folders(data_dir: Path) -> list[Path]:
    """Where Fashion-MNIST is looked for, in order: the data folder's own copy, Debian's, torchvision's."""
    return [data_dir / "fashion-mnist", SYSTEM_DIR, data_dir / "FashionMNIST" / "raw"]


def locate_fashion_mnist(data_dir: Path) -> tuple[Path, list[Path]] | None:
    """The first folder holding all four Fashion-MNIST files (gzipped or not), and the files."""
    for folder in fashion_mnist_folders(data_dir):
        paths = [_find(folder, n) for n in _FASHION_FILES]
        if all(p is not None for p in paths):
            return folder, paths
    return None


def load_fashion_mnist(data_dir: Path, download: bool):
    from torchvision.datasets import FashionMNIST
    from torchvision.datasets.mnist import read_image_file, read_label_file

    candidates = fashion_mnist_folders(data_dir)
    fix = "install the Debian package dataset-fashion-mnist, or " + _fetch_hint("fashion_mnist", data_dir)
    obtain(
        "Fashion-MNIST",
        ", ".join(str(c) for c in candidates),
        lambda: locate_fashion_mnist(data_dir) is not None,
        download,
        lambda: FashionMNIST(root=str(data_dir), download=True),
        fix,
    )
    folder, paths = locate_fashion_mnist(data_dir)
    readers = [read_image_file, read_label_file] * 2
    with tempfile.TemporaryDirectory(prefix="suite-fashion-mnist-") as staging:
        train_x, train_y, test_x, test_y = (_read_idx(p, r, Path(staging)) for p, r in zip(paths, readers))
    return (train_x.unsqueeze(1), train_y, test_x.unsqueeze(1), test_y), folder
