"""Run records: the durable, atomic files of one run and the table of all runs.

``<results>/runs/<run_id>/`` holds

* ``config.json``   the resolved configuration, run id, code version;
* ``metrics.jsonl`` one JSON line per finished epoch;
* ``summary.json``  status (running | finished | failed | pruned | interrupted), error, final metrics;
* ``last.pt`` / ``last.prev.pt`` / ``best.pt``  checkpoints (``torch.load(weights_only=True)``).

Every file is written to a temporary name and renamed into place, so readers never see
half-written JSON and a killed run keeps its last complete epoch.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pickle
import sys
import tempfile
from pathlib import Path

import torch

from .errors import SuiteError
from .numbers import tidy

RUNS = "runs"
TMP_SUFFIX = ".tmp"


@contextlib.contextmanager
def atomic_file(path: Path):
    """Yield a binary handle to a temporary file that replaces ``path`` only on success.

    The data is flushed and fsynced before the rename and the folder after it, so
    ``path`` always holds either its old content or the complete new one; on any error
    the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
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
                raise SuiteError(f"{path} line {n} is not valid JSON ({err.msg}); rerun the run to rebuild it "
                                 f"from its checkpoint, or with --force") from err
            if not isinstance(row, dict):
                raise SuiteError(f"{path} line {n} is not a JSON object; rerun the run to rebuild it "
                                 f"from its checkpoint, or with --force")
            rows.append(row)
    return rows


def warn(message: str) -> None:
    """A one-line warning on stderr (stdout may carry a table or CSV)."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


def save_checkpoint(path: Path, state: dict) -> None:
    """Atomically save ``state`` (tensors, numbers, strings, lists and dicts only)."""
    with atomic_file(path) as handle:
        torch.save(state, handle)


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
            raise SuiteError(f"checkpoint {path} is corrupt or truncated (UnpicklingError: {_first_sentence(err)}); "
                             f"delete it, or rerun with --force to start the run over") from err
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        detail = next((line for line in lines if "GLOBAL" in line or "Unsupported" in line), lines[0])
        raise SuiteError(f"checkpoint {path} holds objects other than tensors and plain containers ({detail}); "
                         f"refusing to load it: checkpoints are loaded with weights_only=True") from err
    except Exception as err:  # torch raises RuntimeError, EOFError, ... for bad files
        raise SuiteError(f"checkpoint {path} is corrupt or truncated ({type(err).__name__}: {_first_sentence(err)}); "
                         f"delete it, or rerun with --force to start the run over") from err


def _first_sentence(err: Exception) -> str:
    """An error message cut to its first sentence (torch's go on for paragraphs), on one line."""
    text = next((line.strip() for line in str(err).splitlines() if line.strip()), "") or type(err).__name__
    return text.split(". ")[0].rstrip(".")


class RunDir:
    """The folder of one run and the files in it."""

    def __init__(self, results_dir: Path, run_id: str):
        self.path = Path(results_dir) / RUNS / run_id
        self.run_id = run_id

    config = property(lambda self: self.path / "config.json")
    metrics = property(lambda self: self.path / "metrics.jsonl")
    summary = property(lambda self: self.path / "summary.json")
    last = property(lambda self: self.path / "last.pt")
    last_prev = property(lambda self: self.path / "last.prev.pt")
    best = property(lambda self: self.path / "best.pt")

    def read_config(self):
        """The run's :class:`~suite.config.RunConfig`, from ``config.json``."""
        from .config import RunConfig

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
        if not summary or summary.get("status") != "finished":
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
            return (f"{self.metrics} holds {len(epochs)} of the {done} epochs the summary counts "
                    f"(epochs {', '.join(map(str, epochs)) or 'none'})")
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

    def recover_best(self, epoch: int, state: dict | None = None,
                     map_location="cpu") -> tuple[dict | None, str | None]:
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
        return None, (f"{problem} and no checkpoint holds that epoch any more, so the early-stopped model "
                      f"cannot be evaluated (the last model is); rerun with --force to train it again")

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
        self.path.mkdir(parents=True, exist_ok=True)
        handle = open(self.path / ".lock", "w")
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
            handle = open(self.path / ".lock", "r")
        except FileNotFoundError:
            return False
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            return False                  # closing the handle releases the probe's lock


class RunLocked(SuiteError):
    """Another live process is training this run."""


def iter_run_dirs(results_dir: Path):
    root = Path(results_dir) / RUNS
    if root.is_dir():
        for path in sorted(root.iterdir()):
            if (path / "config.json").exists():
                yield RunDir(results_dir, path.name)


# Settings beside ``epochs`` that the reports show and check against the paper's protocol.
PROTOCOL_SETTINGS = ["dropout", "pgd_steps", "pgd_restarts", "test_points", "aa_points"]
RUN_COLUMNS = ["run_id", "method", "dataset", "arch", "eps", "seed", "status", "sa", "ra_pgd", "ra_aa",
               "ra_pgd_aa_subset", "last_sa", "last_ra_pgd", "last_ra_aa", "last_ra_pgd_aa_subset", "best_epoch",
               "epochs_done", "epochs", *PROTOCOL_SETTINGS, "epoch_seconds", "wandb_id", "error"]


def _live_status(run: RunDir, summary: dict) -> str:
    """The recorded status, except that a 'running' run nobody holds was killed: 'interrupted'."""
    status = summary.get("status", "unknown")
    return "interrupted" if status == "running" and not run.is_held() else status


def runs_dataframe(results_dir: Path = Path("results"), **filters):
    """One row per run record: identity, status and the best/last test metrics.

    ``sa``, ``ra_pgd``, ``ra_aa`` are the early-stopped model's; ``last_*`` the last epoch's;
    ``epochs_done`` of ``epochs``; ``hp_<name>`` the method's hyperparameters. ``arch`` is
    ``<arch>@r<n>`` for a record of an earlier revision of a network (``suite.config.recorded_arch``).
    Keyword filters keep rows whose column equals the value (or is in it, for a list).
    """
    import pandas as pd

    from .config import recorded_arch

    rows = []
    for run in iter_run_dirs(results_dir):
        try:
            c = read_json(run.config)["config"]
            summary = read_json(run.summary) if run.summary.exists() else {}
            row = {"run_id": run.run_id, "method": c["method"], "dataset": c["dataset"],
                   "arch": recorded_arch(run.run_id, c),
                   "eps": c["eps"], "seed": c["seed"], "status": _live_status(run, summary),
                   "best_epoch": summary.get("best_epoch"), "epochs_done": summary.get("epochs_done"),
                   "epochs": c["epochs"], "epoch_seconds": summary.get("epoch_seconds"),
                   "wandb_id": summary.get("wandb_id"), "error": summary.get("error"),
                   **{k: c.get(k) for k in PROTOCOL_SETTINGS}}
        except (SuiteError, OSError, KeyError, TypeError, AttributeError) as err:
            warn(f"skipping the unreadable run record {run.path} ({type(err).__name__}: {err}); "
                 f"rerun the run to repair it, or delete the folder")
            continue
        problem = run.damage(summary) if row["status"] == "finished" else None
        if problem:
            warn(f"{problem}: run {run.run_id} is listed as incomplete and left out of reports; "
                 f"rerun it to rebuild its records")
            row.update(status="incomplete", error=problem)
        row.update(model_metrics(lambda model, metric: (summary.get(model) or {}).get(metric)))
        row.update({f"hp_{k}": v for k, v in c.get("hparams", {}).items()})
        row["path"] = str(run.path)
        rows.append(row)
    hparams = sorted({key for row in rows for key in row if key.startswith("hp_")})
    return filter_runs(pd.DataFrame(rows).reindex(columns=RUN_COLUMNS + hparams + ["path"]), **filters)


def model_metrics(lookup) -> dict:
    """The test-metric columns: ``sa``, ``ra_pgd``, ``ra_aa`` and ``ra_pgd_aa_subset`` (RA-PGD on
    AutoAttack's points) of the early-stopped model and ``last_*`` of the last epoch's, each read as
    ``lookup(model, metric)`` (model: best or last)."""
    return {prefix + metric: lookup(model, metric)
            for model, prefix in (("best", ""), ("last", "last_"))
            for metric in ("sa", "ra_pgd", "ra_aa", "ra_pgd_aa_subset")}


def filter_runs(frame, run_ids=None, **filters):
    """Rows whose run id is in ``run_ids`` (when given) and whose columns match ``filters``
    (a value or a list of values; None keeps everything; eps compares as a number)."""
    if run_ids is not None:
        frame = frame[frame["run_id"].isin(list(run_ids))]
    for column, wanted in filters.items():
        if wanted is None:
            continue
        if column not in frame:
            raise SuiteError(f"cannot filter on {column!r}; columns: {', '.join(frame.columns)}")
        values = list(wanted) if isinstance(wanted, (list, tuple, set)) else [wanted]
        if column == "eps":
            frame = frame[frame["eps"].astype(float).isin([float(v) for v in values])]
        else:
            frame = frame[frame[column].isin(values)]
    return frame.reset_index(drop=True)
