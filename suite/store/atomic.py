"""Durable files: every write lands whole or not at all, and checkpoints load without running code.

Every file is written to a temporary name in its folder, flushed, fsynced and renamed into place,
so readers never see half-written JSON and a killed run keeps its last complete epoch.
Checkpoints load with ``torch.load(weights_only=True)``: tensors and plain containers only.
A file that is a symbolic link is never replaced (nor written through): the writer refuses it.
A failed write raises the operating system's error (``No space left on device``), also where
``torch.save`` would hide it behind its own ``RuntimeError``.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import tempfile
from pathlib import Path

import torch

from ..config.numbers import tidy
from ..errors import SuiteError, os_error_in

TMP_SUFFIX = ".tmp"


@contextlib.contextmanager
def atomic_file(path: Path):
    """Yield a binary handle to a temporary file that replaces ``path`` only on success.

    The data is flushed and fsynced before the rename and the folder after it, so
    ``path`` always holds either its old content or the complete new one; on any error
    the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    refuse_link(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def refuse_link(path: Path) -> None:
    """Raise a one-line SuiteError when ``path`` is a symbolic link: a record is written and
    deleted only in its own folder, never wherever a link points."""
    if Path(path).is_symlink():
        raise SuiteError(
            f"{path} is a symbolic link (to {os.readlink(path)}); refusing to write or delete through it: "
            f"remove the link, or move the real folder there"
        )


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: not every file system allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically (see ``atomic_file``)."""
    with atomic_file(path) as handle:
        handle.write(data)


def write_json(path: Path, data) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=True, default=str) + "\n").encode())


def write_jsonl(path: Path, rows: list[dict]) -> None:
    """One JSON line per row, float noise rounded away (:func:`suite.numbers.tidy`)."""
    atomic_write_bytes(path, "".join(json.dumps(tidy(r), sort_keys=True) + "\n" for r in rows).encode())


def write_summary(path: Path, record: dict) -> None:
    """Write a run's summary with float noise rounded away; ``record`` is tidied in place, so
    what the caller returns and what the file holds agree."""
    record.update(tidy(record))
    write_json(path, record)


def read_json(path: Path):
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise SuiteError(f"{path} is not valid JSON ({err}); delete it or rerun the run with --force") from err


def read_jsonl(path: Path) -> list[dict]:
    """The rows of a JSON-lines file ([] when it does not exist); a bad line is a SuiteError naming it."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise SuiteError(
                    f"{path} line {n} is not valid JSON ({err.msg}); rerun the run to rebuild it "
                    f"from its checkpoint, or with --force"
                ) from err
            if not isinstance(row, dict):
                raise SuiteError(
                    f"{path} line {n} is not a JSON object; rerun the run to rebuild it "
                    f"from its checkpoint, or with --force"
                )
            rows.append(row)
    return rows


def save_checkpoint(path: Path, state: dict) -> None:
    """Atomically save ``state`` (tensors, numbers, strings, lists and dicts only).

    torch.save reports a failed write as ``RuntimeError: [enforce fail at inline_container.cc ...]
    unexpected pos``; the OSError it hides (a full disk, no permission) is raised instead."""
    with atomic_file(path) as handle:
        try:
            torch.save(state, handle)
        except RuntimeError as err:
            cause = os_error_in(err)
            if cause is None:
                raise
            raise type(cause)(cause.errno, cause.strerror, str(path)) from err


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    """Load a checkpoint safely (``weights_only=True``: tensors and plain containers only).

    A corrupt or truncated file, or one holding other objects, raises a one-line
    SuiteError naming it; nothing in the file is ever executed.
    """
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError as err:
        if "weights only" not in str(err).lower():
            raise SuiteError(
                f"checkpoint {path} is corrupt or truncated (UnpicklingError: {_first_sentence(err)}); "
                f"delete it, or rerun with --force to start the run over"
            ) from err
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        detail = next((line for line in lines if "GLOBAL" in line or "Unsupported" in line), lines[0])
        raise SuiteError(
            f"checkpoint {path} holds objects other than tensors and plain containers ({detail}); "
            f"refusing to load it: checkpoints are loaded with weights_only=True"
        ) from err
    except Exception as err:  # torch raises RuntimeError, EOFError, ... for bad files
        raise SuiteError(
            f"checkpoint {path} is corrupt or truncated ({type(err).__name__}: {_first_sentence(err)}); "
            f"delete it, or rerun with --force to start the run over"
        ) from err


def _first_sentence(err: Exception) -> str:
    """An error message cut to its first sentence (torch's go on for paragraphs), on one line."""
    text = next((line.strip() for line in str(err).splitlines() if line.strip()), "") or type(err).__name__
    return text.split(". ")[0].rstrip(".")
