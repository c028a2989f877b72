"""Where a study lives: an Optuna journal file (default) or a database, both with a heartbeat.

Storage: by default an Optuna journal file ``<results>/studies/<name>.journal`` (safe for
several processes on one machine); any Optuna storage URL (``sqlite:///...``,
``postgresql://user:pass@host/db``) shares one study between machines. Both storages run
a heartbeat: a trial whose worker died is failed after the grace period by the next
worker to start a trial, and re-queued with the same parameters (its run record resumes
from its last checkpoint). Optuna's journal storage has no heartbeat of its own, so
``HeartbeatJournalStorage`` adds one. Storage URLs pass through ``redact`` wherever they are
printed or stored, so passwords never reach logs, W&B or exported files.

Workers started together on a fresh database race to create Optuna's tables (SQLite answers
``table version_info already exists``, or a unique-constraint failure on ``alembic_version``);
every step of that creation checks first, so ``open_storage`` simply tries again. Studies in a
file (a journal or SQLite) are created under :func:`creation_lock`.
"""

from __future__ import annotations

import contextlib
import fcntl
import random
import re
import time
import warnings
from pathlib import Path

import optuna
from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import BaseHeartbeat  # no public base class exists for this
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from ...errors import SuiteError

STUDIES = "studies"
CREATE_ATTEMPTS = 8  # tries at opening a database whose tables other workers are creating
SQLITE_BUSY_SECONDS = 60  # how long a SQLite write waits for another worker's to end


def redact(text: str | None) -> str | None:
    """Hide passwords in a storage URL or in any text that contains one.

    ``postgresql://user:secret@host/db`` -> ``postgresql://user:***@host/db``; a
    ``password=`` query parameter is hidden too. Text without a password is unchanged.
    """
    if text is None:
        return None
    text = re.sub(r"(://[^:/@\s]*:)\S*@", r"\1***@", str(text))  # to the last @: a password may hold one
    return re.sub(r"(password=)[^&\s]*", r"\1***", text, flags=re.IGNORECASE)


class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """Optuna's journal storage with the heartbeat that ``RDBStorage`` has.

    A running trial records the time in its system attribute ``heartbeat`` every
    ``heartbeat_interval`` seconds; one whose last beat (or start) is older than
    ``grace_period`` counts as stale, and Optuna fails it (and calls the stale-trial
    callback) before the next trial of any worker starts. Clocks must agree, as they do
    on one machine, where a journal file belongs.
    """

    def __init__(self, backend, *, heartbeat_interval: int, grace_period: int, heartbeat_stale_trial_callback=None):
        super().__init__(backend)
        self.heartbeat_interval, self.grace_period = heartbeat_interval, grace_period
        self.stale_callback = heartbeat_stale_trial_callback

    def record_heartbeat(self, trial_id: int) -> None:
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):  # another worker failed it
            self.set_trial_system_attr(trial_id, "heartbeat", time.time())

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.time()
        stale = []
        for trial in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            beat = trial.system_attrs.get("heartbeat") or trial.datetime_start.timestamp()
            if now - beat > self.grace_period:
                stale.append(trial._trial_id)
        return stale

    def get_heartbeat_interval(self) -> int:
        return self.heartbeat_interval

    def get_heartbeat_stale_trial_callback(self):
        return self.stale_callback


@contextlib.contextmanager
def quiet_experimental():
    """Optuna flags the heartbeat and retry machinery as experimental; that is known here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def journal_path(name: str, results_dir: Path) -> Path:
    return Path(results_dir) / STUDIES / f"{name}.journal"


# pip packages of the database drivers SQLAlchemy imports (module name -> package)
DRIVER_PACKAGES = {
    "psycopg2": "psycopg2-binary",
    "psycopg": "psycopg[binary]",
    "MySQLdb": "mysqlclient",
    "pymysql": "pymysql",
    "asyncpg": "asyncpg",
    "oracledb": "oracledb",
    "pyodbc": "pyodbc",
}


def open_storage(storage: str | None, spec, results_dir: Path, *, create: bool = True):
    """The study's storage with heartbeat: a journal file (default, or a path) or an RDB URL.
    Without ``create`` a missing journal file is an error (nothing is written)."""
    beat = spec.heartbeat
    with quiet_experimental():
        kwargs = dict(
            heartbeat_interval=beat["interval"],
            grace_period=beat["grace_period"],
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=beat["max_retry"]),
        )
        if storage is None or "://" not in storage:
            path = Path(storage) if storage else journal_path(spec.name, results_dir)
            if not create and not path.is_file():
                raise SuiteError(f"no study {spec.name!r}: {path} does not exist; run `suite tune` on its spec first")
            path.parent.mkdir(parents=True, exist_ok=True)
            return HeartbeatJournalStorage(JournalFileBackend(str(path)), **kwargs)
        if storage.partition("://")[2].split("/")[0].count("@") > 1:
            raise SuiteError(
                f"cannot open storage {redact(storage)}: more than one '@' before the host; "
                f"write an '@' in the password as %40 (better: keep the password in PGPASSWORD)"
            )
        engine = {"pool_pre_ping": True}
        if storage.startswith("sqlite"):  # several workers write: wait for each other's writes
            engine["connect_args"] = {"timeout": SQLITE_BUSY_SECONDS}
        try:
            return _retried(lambda: RDBStorage(sqlalchemy_url(storage), engine_kwargs=engine, **kwargs))
        except ImportError as err:  # optuna: "Failed to import DB access module", from the driver's import
            missing = getattr(err.__cause__, "name", None) or getattr(err, "name", None)
            what = f"its database driver ({missing})" if missing else "its database driver"
            fix = f"pip install {DRIVER_PACKAGES.get(missing, missing)}" if missing else "install it"
            raise SuiteError(f"cannot open storage {redact(storage)}: {what} is not installed; {fix}") from None
        except Exception as err:  # connection or URL errors; their text may hold the URL
            reason = redact(f"{type(err).__name__}: {err}")
            raise SuiteError(f"cannot open storage {redact(storage)}: {reason}") from None


def creating_elsewhere(err: Exception) -> bool:
    """Whether a database error is another worker creating the same tables at the same moment."""
    import sqlalchemy.exc

    if isinstance(err, sqlalchemy.exc.IntegrityError):  # both inserted the schema version
        return True
    text = str(err).lower()
    return isinstance(err, sqlalchemy.exc.DatabaseError) and ("already exists" in text or "locked" in text)


def _retried(make, attempts: int = CREATE_ATTEMPTS):
    """``make()``, tried again after a short random pause while another worker is creating the
    database's tables (the last error is raised; any other at once)."""
    for attempt in range(attempts):
        try:
            return make()
        except Exception as err:
            if attempt == attempts - 1 or not creating_elsewhere(err):
                raise
            time.sleep(random.uniform(0.1, 0.5) * (attempt + 1))


def storage_file(storage: str | None, spec, results_dir: Path) -> Path | None:
    """The file a study's storage lives in (a journal, a SQLite database), or None for a server."""
    if storage is None or "://" not in storage:
        return Path(storage) if storage else journal_path(spec.name, results_dir)
    scheme, _, rest = storage.partition("://")
    if scheme.startswith("sqlite") and rest.startswith("/") and rest != "/:memory:":
        return Path(rest[1:])
    return None


@contextlib.contextmanager
def creation_lock(storage: str | None, spec, results_dir: Path):
    """Hold an exclusive flock beside a file storage while one worker creates (or loads) the study
    and records its settings, so workers started together create it once; nothing on a server
    (its creation is retried, and a study's settings are written the same by every worker)."""
    path = storage_file(storage, spec, results_dir)
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".create-lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def sqlalchemy_url(url: str) -> str:
    """Pick an installed PostgreSQL driver for a bare ``postgresql://`` URL.

    SQLAlchemy 2.1 maps it to psycopg 3; the suite's test extra installs psycopg2.
    """
    import importlib.util

    scheme, sep, rest = url.partition("://")
    if scheme in ("postgresql", "postgres"):
        driver = "psycopg" if importlib.util.find_spec("psycopg") else "psycopg2"
        return f"postgresql+{driver}://{rest}"
    return url


def storage_label(storage: str | None, spec, results_dir: Path) -> str:
    return redact(storage) if storage else str(journal_path(spec.name, results_dir))
