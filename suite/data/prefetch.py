"""Data sets fetched once, before anything is launched.

``ensure_data`` makes sure a data set is readable in ``data_dir``: it reads it, and when it
is missing downloads it under an exclusive ``flock`` on ``<data_dir>/.<name>.lock``, so that
concurrent launches (or a login node and its array tasks) never download into one folder at
once: the second one waits, then finds the files. Sweeps and presets call it for each of
their data sets before submitting or starting any run. ``suite data download`` calls
:func:`fetch_into`, which also copies a data set found outside the data folder (Debian's
Fashion-MNIST under ``/usr/share/datasets``) into it, so that the folder alone serves compute
nodes without that package.
"""

from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path

from ..errors import SuiteError

NOT_DOWNLOADABLE = {
    "tiny_imagenet": "Tiny-ImageNet cannot be downloaded automatically: download the official "
    "tiny-imagenet-200.zip (http://cs231n.stanford.edu/tiny-imagenet-200.zip), then "
    "run suite data prepare-tiny-imagenet tiny-imagenet-200.zip --data-dir {dir}"
}


@contextlib.contextmanager
def data_lock(data_dir: Path, name: str):
    """An exclusive flock on ``<data_dir>/.<name>.lock`` (released when the holder dies)."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / f".{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def ensure_data(name: str, data_dir: Path, download: bool = True) -> None:
    """Make sure data set ``name`` can be read from ``data_dir``; download it once if allowed.

    Raises a one-line SuiteError when it is missing and cannot be fetched here (offline, or
    ``download=False``), saying how to get it.
    """
    from . import DATASETS, load_splits

    if name in DATASETS and DATASETS[name].generated:  # made from a seed: nothing to fetch or check
        return
    data_dir = Path(data_dir).expanduser()
    try:
        load_splits(name, data_dir, download=False)
        return
    except SuiteError as missing:
        if name in NOT_DOWNLOADABLE:
            raise SuiteError(f"{missing}; " + NOT_DOWNLOADABLE[name].format(dir=data_dir)) from None
        if not download:
            hint = "" if "suite data download" in str(missing) else "; fetch it first with: "
            hint += f"suite data download {name} --data-dir {data_dir}" if hint else ""
            raise SuiteError(f"{missing}{hint}") from None
    with data_lock(data_dir, name):  # one download per folder; a waiter then finds the files
        try:
            load_splits(name, data_dir, download=True)
        except SuiteError as err:
            if "suite data download" in str(err):
                raise
            raise SuiteError(
                f"{err}; or on a machine with internet: suite data download {name} --data-dir DIR, "
                f"then copy DIR's contents into {data_dir}"
            ) from None


def fetch_into(name: str, data_dir: Path) -> str:
    """Make data set ``name`` readable from ``data_dir`` alone, downloading it or copying it there
    from where this machine has it; returns what was done (one line)."""
    from . import DATASETS, load_splits
    from .torchvision_sets import locate_fashion_mnist

    if name in DATASETS and DATASETS[name].generated:
        return "ready: generated from a seed when a run loads it, no files to fetch"
    data_dir = Path(data_dir).expanduser()
    if name == "fashion_mnist":
        found = locate_fashion_mnist(data_dir)
        if found is not None and not found[0].resolve().is_relative_to(data_dir.resolve()):
            return _copy_files(found[1], data_dir / "fashion-mnist", name, found[0])
    try:
        load_splits(name, data_dir, download=False)
        return f"already in {data_dir}; nothing to do"
    except SuiteError:
        pass
    ensure_data(name, data_dir, download=True)
    return f"downloaded into {data_dir}"


def _copy_files(files: list[Path], folder: Path, name: str, source: Path) -> str:
    """Copy a data set's files into ``folder`` (each atomically) under the data folder's lock, then read them back."""
    from ..store.atomic import atomic_write_bytes
    from . import load_splits

    with data_lock(folder.parent, name):
        size = 0
        for path in files:
            data = path.read_bytes()
            atomic_write_bytes(folder / path.name, data)
            (folder / path.name).chmod(0o644)  # readable by the jobs of a shared data folder
            size += len(data)
    load_splits(name, folder.parent, download=False)  # the copy is complete and readable
    return f"copied {len(files)} files ({size / 2**20:.0f} MiB) from {source} into {folder}"


def ensure_datasets(configs, data_dir: Path, download: bool = True) -> None:
    """:func:`ensure_data` for every data set the run configurations use (each once)."""
    for name in sorted({config.dataset for config in configs}):
        ensure_data(name, data_dir, download)
