"""Helpers shared by the format readers: one-line errors and guarded downloads."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from suite.errors import SuiteError


def one_line(exc: BaseException, limit: int = 200) -> str:
    """An exception as a short single line (type and message)."""
    text = " ".join(str(exc).split())
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def obtain(
    what: str, folder: Path | str, present: Callable[[], bool], download: bool, fetch: Callable[[], object], fix: str
) -> None:
    """Make sure a dataset's files are present, downloading them if allowed.

    ``present`` says whether the files are there; ``fetch`` downloads them
    (a torchvision dataset constructor); ``fix`` tells the user what to do.
    Raises SuiteError with one line naming the dataset and the folder.
    """
    if present():
        return
    if not download:
        raise SuiteError(f"{what} not found in {folder} (download disabled): {fix}")
    try:
        fetch()
    except Exception as exc:  # no internet, HTTP error, bad archive, ...
        raise SuiteError(
            f"{what} not found in {folder} and could not be downloaded (offline? {one_line(exc)}): {fix}"
        ) from exc
    if not present():
        raise SuiteError(f"{what} not found in {folder} even after downloading: {fix}")


def corrupt(path: Path, exc: BaseException | None = None, detail: str = "") -> SuiteError:
    """The error for an unreadable data file."""
    why = detail or (one_line(exc) if exc is not None else "unreadable")
    return SuiteError(f"corrupt or truncated data file {path} ({why}): delete it and download it again")
