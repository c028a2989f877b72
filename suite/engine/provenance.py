"""Provenance: which code and libraries made a record, and when."""

from __future__ import annotations

import functools
from datetime import datetime, timezone

import torch

from .. import __version__


def _git(*args: str) -> str | None:
    """A git command's output in the suite's own checkout, or None outside one (an installed wheel)."""
    import subprocess
    from pathlib import Path

    try:
        done = subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=10, cwd=Path(__file__).resolve().parent
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@functools.cache
def git_state() -> dict:
    """The suite's commit and whether its tree had uncommitted changes (``dirty``) when this process
    started using it; ``{"commit": None, "dirty": None}`` outside a git checkout."""
    commit = _git("rev-parse", "HEAD")
    if not commit:
        return {"commit": None, "dirty": None}
    changes = _git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if changes is None else bool(changes)}


@functools.cache
def code_version() -> str:
    """The suite's version and, when run from a git checkout, its commit (``+<commit>.dirty`` when the
    tree had uncommitted changes)."""
    state = git_state()
    if not state["commit"]:
        return __version__
    return f"{__version__}+{state['commit'][:7]}" + (".dirty" if state["dirty"] else "")


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
