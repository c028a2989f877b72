"""The folder of one run: its files, its lock, and the repairs a damaged record allows.

``<results>/runs/<run_id>/`` holds

* ``config.json``   the resolved configuration, run id, code version;
* ``metrics.jsonl`` one JSON line per finished epoch;
* ``summary.json``  status (running | finished | failed | pruned | interrupted), error, final metrics;
* ``last.pt`` / ``last.prev.pt`` / ``best.pt``  checkpoints (``torch.load(weights_only=True)``).

Every file in it is written atomically (:mod:`suite.store.atomic`). The folder and its record
files are real ones: a symbolic link among them is refused before anything is written or
deleted, so a run never writes (nor cleans up) wherever a link points.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from ..errors import SuiteError, warn
from .atomic import TMP_SUFFIX, load_checkpoint, read_json, read_jsonl, refuse_link, save_checkpoint
from .status import RunStatus

RUNS = "runs"


class RunDir:
    """The folder of one run and the files in it."""

    def __init__(self, results_dir: Path, run_id: str):
        if not run_id or run_id in (".", "..") or "/" in run_id or os.sep in run_id or "\0" in run_id:
            raise SuiteError(f"{run_id!r} is not a run id: a run id names one folder under {Path(results_dir) / RUNS}")
        self.path = Path(results_dir) / RUNS / run_id
        self.run_id = run_id

    config = property(lambda self: self.path / "config.json")
    metrics = property(lambda self: self.path / "metrics.jsonl")
    summary = property(lambda self: self.path / "summary.json")
    last = property(lambda self: self.path / "last.pt")
    last_prev = property(lambda self: self.path / "last.prev.pt")
    best = property(lambda self: self.path / "best.pt")
    requeues = property(lambda self: self.path / "requeues.json")  # a scheduler's stops without progress

    def refuse_links(self) -> None:
        """Raise a one-line SuiteError when the run folder, or a record file in it, is a symbolic link."""
        refuse_link(self.path)
        if self.path.is_dir():
            names = {p.name for p in (self.config, self.metrics, self.summary, self.requeues)} | {".lock", "error.txt"}
            for entry in self.path.iterdir():
                if entry.name in names or entry.suffix == ".pt":
                    refuse_link(entry)

    def read_config(self):
        """The run's :class:`~suite.config.RunConfig`, from ``config.json``."""
        from ..config import RunConfig

        return RunConfig.from_dict(read_json(self.config)["config"])

    def read_summary(self) -> dict | None:
        """The summary, or None when there is none or it is damaged (with a warning: a rerun rewrites it)."""
        try:
            summary = read_json(self.summary) if self.summary.exists() else None
        except (SuiteError, OSError) as err:
            warn(f"{err}; the run will be resumed (rerun it) or redone (--force)")
            return None
        return summary if isinstance(summary, dict) else None

    def is_finished(self) -> bool:
        """Finished, with intact records: a rerun repairs a finished run whose config or
        per-epoch records are damaged (it resumes from ``last.pt``: no epoch is trained again)."""
        summary = self.read_summary()
        if not summary or summary.get("status") != RunStatus.FINISHED:
            return False
        problem = self.damage(summary)
        if problem:
            warn(f"{problem}; rebuilding the run's records from its checkpoint")
        return problem is None

    def damage(self, summary: dict) -> str | None:
        """What is wrong with this run's config and per-epoch records, or None when they are sound:
        config.json must parse and metrics.jsonl hold epochs 1..N of the N the summary counts."""
        try:
            config = read_json(self.config)
            rows = read_jsonl(self.metrics)
        except (SuiteError, OSError) as err:
            return str(err)
        if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
            return f"{self.config} is not a run configuration"
        epochs, done = [row.get("epoch") for row in rows], summary.get("epochs_done")
        if done is not None and epochs != list(range(1, done + 1)):
            return (
                f"{self.metrics} holds {len(epochs)} of the {done} epochs the summary counts "
                f"(epochs {', '.join(map(str, epochs)) or 'none'})"
            )
        return None

    def save_last(self, state: dict) -> None:
        """Write the resume checkpoint, keeping the previous one as a fallback."""
        if self.last.exists():
            os.replace(self.last, self.last_prev)
        save_checkpoint(self.last, state)

    def repair_best(self, state: dict) -> None:
        """Make ``best.pt`` hold the best epoch the resume ``state`` names, where it does not.

        The loop writes ``last.pt`` before ``best.pt``: a run killed between the two has a
        ``last.pt`` whose epoch is its best, and an older (or no) ``best.pt``; a damaged
        ``best.pt`` may still be held by ``last.prev.pt``. Otherwise a warning says so.
        """
        epoch = state["best"]["epoch"]
        if epoch is not None:
            _, problem = self.recover_best(epoch, state)
            if problem:
                warn(problem)

    def recover_best(self, epoch: int, state: dict | None = None, map_location="cpu") -> tuple[dict | None, str | None]:
        """``(weights, None)`` of the early-stopped model (0-based ``epoch``) from ``best.pt``, else
        from the checkpoint ``state`` or ``last.prev.pt`` when one holds that epoch (``best.pt`` is
        rewritten from it); ``(None, why)`` when none does."""
        try:
            best = load_checkpoint(self.best, map_location)
            if best.get("epoch") == epoch:
                return best["model"], None
            problem = f"{self.best} holds epoch {best.get('epoch', -1) + 1}, not the best epoch {epoch + 1}"
        except FileNotFoundError:
            problem = f"{self.best} is missing"
        except (SuiteError, KeyError, TypeError, AttributeError) as err:
            problem = str(err).split("; delete it")[0]

        def candidates():
            yield "the resume checkpoint", state
            yield self.last_prev.name, load_checkpoint(self.last_prev, map_location)

        with contextlib.suppress(FileNotFoundError, SuiteError):
            for name, source in candidates():
                if source is not None and source.get("epoch") == epoch:
                    save_checkpoint(self.best, {"model": source["model"], "epoch": epoch})
                    warn(f"{problem}; rebuilt it from {name}")
                    return source["model"], None
        return None, (
            f"{problem} and no checkpoint holds that epoch any more, so the early-stopped model "
            f"cannot be evaluated (the last model is); rerun with --force to train it again"
        )

    def load_resume_state(self, map_location="cpu") -> dict | None:
        """The newest readable resume checkpoint, or None when there is none.

        A corrupt ``last.pt`` falls back to ``last.prev.pt`` with a warning; when no
        checkpoint is readable the SuiteError names the corrupt file.
        """
        error = None
        for path in (self.last, self.last_prev):
            if not path.exists():
                continue
            try:
                state = load_checkpoint(path, map_location)
            except SuiteError as err:
                error = error or err
                continue
            if error is not None:
                warn(f"{error}; resuming from the previous checkpoint {path.name}")
            return state
        if error is not None:
            raise error
        return None

    @contextlib.contextmanager
    def lock(self):
        """Hold an exclusive lock on this run; raises RunLocked when another process holds it.

        The lock is an ``flock`` on ``.lock``: the kernel releases it when the holder dies,
        so a crashed worker never blocks the run forever. The temporary files a killed
        holder left behind are removed once the lock is taken.
        """
        self.refuse_links()
        self.path.mkdir(parents=True, exist_ok=True)
        handle = os.fdopen(os.open(self.path / ".lock", os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644), "w")
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunLocked(f"run {self.run_id} is being trained by another process; skipped") from None
            for leftover in self.path.glob(f".*{TMP_SUFFIX}"):
                leftover.unlink(missing_ok=True)
            yield
        finally:
            handle.close()

    def is_held(self) -> bool:
        """Whether a live process holds this run's lock (is training it right now)."""
        try:
            handle = open(self.path / ".lock")
        except FileNotFoundError:
            return False
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            return False  # closing the handle releases the probe's lock


class RunLocked(SuiteError):
    """Another live process is training this run."""


def iter_run_dirs(results_dir: Path):
    root = Path(results_dir) / RUNS
    if root.is_dir():
        for path in sorted(root.iterdir()):
            if (path / "config.json").exists():
                yield RunDir(results_dir, path.name)


# Settings beside ``epochs`` that the reports show and check against the paper's protocol.
