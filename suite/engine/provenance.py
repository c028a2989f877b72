"""Provenance: which code and libraries made a record, and when."""

from __future__ import annotations

import functools
from datetime import datetime, timezone

import torch

from .. import __version__


@functools.cache
def code_version() -> str:
    """The suite's version and, when run from a git checkout, its commit."""
    import subprocess
    from pathlib import Path

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{__version__}+{commit}" if commit else __version__


def versions() -> dict:
    """The versions of the libraries that decide a result, and the suite's (with its commit)."""
    from importlib import metadata

    def version(package):
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    return {
        "torch": torch.__version__,
        "torchvision": version("torchvision"),
        "pyautoattack": version("pyautoattack"),
        "suite": code_version(),
    }


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
