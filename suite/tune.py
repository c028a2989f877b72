"""Optuna studies over a method's hyperparameters; first of all Fast-BAT's lambda.

A study spec (YAML, see ``sweeps/lambda_*.yaml``) names the study, the base run
configuration, the search space, the objective, the sampler, the pruner and the number of
trials. Every trial is a real ``execute(...)`` run with its own run record; a callback
reports each epoch's validation robust accuracy to Optuna and stops the run when the
pruner says so (the run is then recorded as ``pruned``).

Storage: by default an Optuna journal file ``<results>/studies/<name>.journal`` (safe for
several processes on one machine); any Optuna storage URL (``sqlite:///...``,
``postgresql://user:pass@host/db``) shares one study between machines. Both storages run
a heartbeat: a trial whose worker died is failed after the grace period by the next
worker to start a trial, and re-queued with the same parameters (its run record resumes
from its last checkpoint). Optuna's journal storage has no heartbeat of its own, so
``HeartbeatJournalStorage`` adds one.

``n_trials`` is the number of finished (complete or pruned) trials the study should
hold: rerunning the same command resumes instead of adding trials, and a larger
``n_trials`` adds the difference. Storage URLs pass through ``redact`` wherever they are
printed or stored, so passwords never reach logs, W&B or exported files.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import multiprocessing
import os
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import yaml
from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import BaseHeartbeat  # no public base class exists for this
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from .callbacks import Callback, RunPruned
from .checks import check_number
from .config import RunConfig, RunOptions
from .errors import SuiteError
from .numbers import tidy_frame
from .records import RunDir, atomic_write_bytes, model_metrics, read_jsonl
from .settings import canonical, parse_setting, split_settings

STUDIES = "studies"
SPEC_KEYS = ("name", "description", "base", "search", "objective", "sampler", "pruner", "n_trials", "heartbeat",
             "enqueue")
# objective names -> where they come from: validation metrics of the early-stopped epoch, or
# the run summary's test metrics (tuning on the test set inflates them; prefer validation)
METRICS = ("val_robust_acc", "val_clean_acc", "sa", "ra_pgd", "ra_aa", "last_sa", "last_ra_pgd")
SAMPLERS = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler}
PRUNERS = {"median": optuna.pruners.MedianPruner, "percentile": optuna.pruners.PercentilePruner,
           "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
           "hyperband": optuna.pruners.HyperbandPruner, "threshold": optuna.pruners.ThresholdPruner,
           "none": optuna.pruners.NopPruner}
DEFAULT_SAMPLER = {"name": "tpe", "seed": 0}
DEFAULT_PRUNER = {"name": "median", "n_startup_trials": 5, "n_warmup_steps": 2}   # steps are epochs
HEARTBEAT = {"interval": 60, "grace_period": 180, "max_retry": 2}                 # seconds, seconds, retries
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


# -- secrets -------------------------------------------------------------------------------
def redact(text: str | None) -> str | None:
    """Hide passwords in a storage URL or in any text that contains one.

    ``postgresql://user:secret@host/db`` -> ``postgresql://user:***@host/db``; a
    ``password=`` query parameter is hidden too. Text without a password is unchanged.
    """
    if text is None:
        return None
    text = re.sub(r"(://[^:/@\s]*:)\S*@", r"\1***@", str(text))   # to the last @: a password may hold one
    return re.sub(r"(password=)[^&\s]*", r"\1***", text, flags=re.IGNORECASE)


# -- the spec ------------------------------------------------------------------------------
@dataclass
class StudySpec:
    """A parsed, validated study spec; ``base`` holds RunConfig fields and flat hyperparameters."""
    name: str
    base: dict
    search: dict                  # hyperparameter -> {"low", "high", "log"}
    objectives: list[str]
    coupled: bool = False         # ll_step = 255 / lmbda (a = 1/lambda, in /255 units)
    sampler: dict = field(default_factory=lambda: dict(DEFAULT_SAMPLER))
    pruner: dict = field(default_factory=lambda: dict(DEFAULT_PRUNER))
    n_trials: int = 20
    heartbeat: dict = field(default_factory=lambda: dict(HEARTBEAT))
    enqueue: list = field(default_factory=list)

    @property
    def directions(self) -> list[str]:
        return ["maximize"] * len(self.objectives)

    def fingerprint(self) -> dict:
        """What fixes the meaning of the study's trials: changing any of it needs a new study."""
        return json.loads(json.dumps({"base": self.base, "search": self.search, "coupled": self.coupled,
                                      "objective": self.objectives}, sort_keys=True))

    def run_config(self, hparams: dict) -> RunConfig:
        """The base configuration with the trial's hyperparameters; not yet resolved."""
        fields, base_hparams = split_settings(self.base)
        return RunConfig.from_dict({**fields, "hparams": {**base_hparams, **hparams}})

    def suggest(self, trial: optuna.Trial) -> dict:
        """Draw the trial's hyperparameters (the coupled ll_step is derived, not searched)."""
        params = {name: trial.suggest_float(name, r["low"], r["high"], log=r["log"]) for name, r in self.search.items()}
        if self.coupled:
            params["ll_step"] = 255.0 / params["lmbda"]
        return params


def apply_overrides(raw: dict, overrides: list[str] | dict | None) -> dict:
    """Apply ``key=value`` settings (values YAML-parsed) to a raw spec dict.

    ``a.b=v`` sets a nested key (``search.lmbda=[0.1, 10]``, ``pruner.name=none``); a plain
    key sets a top-level spec key (``n_trials``, ``name``), a searched range (``lmbda=[0.1, 10]``,
    ``coupled=true``) or else a base setting (``epochs=5``).
    """
    raw = json.loads(json.dumps(raw))
    if isinstance(overrides, list):
        overrides = dict(parse_setting(item) for item in overrides)
    searched = set(raw.get("search") or {"lmbda": None}) | {"coupled"}
    for key, value in (overrides or {}).items():
        if "." in key:
            path = key.split(".")
        else:
            path = [key] if key in SPEC_KEYS else ["search", key] if key in searched else ["base", key]
        node = raw
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {} if node.get(part) is None else {"name": node[part]}
            node = node[part]
        node[path[-1]] = value
    return raw


def _named(value, default: dict, what: str) -> dict:
    """``"median"`` / ``None`` / ``{"name": ..., **kwargs}`` -> ``{"name": ..., **kwargs}``."""
    if value is None:
        return {"name": "none"} if what == "pruner" else dict(default)
    if isinstance(value, str):
        return {"name": value}
    if not isinstance(value, dict) or "name" not in value:
        raise SuiteError(f"{what} must be a name or a mapping with a 'name' key, got {value!r}")
    return dict(value)


def load_spec(spec: str | Path | dict | StudySpec, overrides: list[str] | dict | None = None) -> StudySpec:
    """Read and validate a study spec (a YAML path or a dict); raises SuiteError on bad input."""
    if isinstance(spec, StudySpec):
        if overrides:
            raise SuiteError("overrides apply to a spec file or dict, not to a loaded StudySpec")
        return spec
    if not isinstance(spec, dict):
        path = Path(spec)
        if not path.is_file():
            raise SuiteError(f"study spec {path} not found")
        spec = yaml.safe_load(path.read_text()) or {}
        spec.setdefault("name", path.stem)
    raw = apply_overrides(spec, overrides)
    unknown = set(raw) - set(SPEC_KEYS)
    if unknown:
        raise SuiteError(f"unknown study spec key(s) {', '.join(sorted(unknown))}; valid: {', '.join(SPEC_KEYS)}")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", str(raw.get("name", ""))):
        raise SuiteError(f"study name must be letters, digits, '_', '-' or '.', got {raw.get('name')!r}")
    base = {canonical(k, f"study {raw['name']} base"): v for k, v in (raw.get("base") or {}).items()}
    search_raw = dict(raw.get("search") or {"lmbda": [0.01, 1000]})
    coupled = bool(search_raw.pop("coupled", False))
    search = {}
    for name, bounds in search_raw.items():
        if isinstance(bounds, (list, tuple)) and len(bounds) == 2:
            bounds = {"low": bounds[0], "high": bounds[1], "log": True}
        if not isinstance(bounds, dict) or not {"low", "high"} <= set(bounds):
            raise SuiteError(f"search.{name} must be [low, high] (log-uniform) or {{low, high, log}}, got {bounds!r}")
        low, high, log = float(bounds["low"]), float(bounds["high"]), bool(bounds.get("log", True))
        if not low < high or (log and low <= 0):
            raise SuiteError(f"search.{name}: need low < high (and low > 0 on a log scale), got [{low:g}, {high:g}]")
        search[name] = {"low": low, "high": high, "log": log}
    if not search:
        raise SuiteError("search is empty; give at least one hyperparameter range, e.g. lmbda: [0.01, 1000]")
    objectives = raw.get("objective", "val_robust_acc")
    objectives = [objectives] if isinstance(objectives, str) else list(objectives)
    bad = [o for o in objectives if o not in METRICS]
    if bad or not objectives or len(set(objectives)) < len(objectives):
        raise SuiteError(f"objective must be one or more distinct of {', '.join(METRICS)}; got {objectives}")
    pruner = _named(raw["pruner"], DEFAULT_PRUNER, "pruner") if "pruner" in raw else (
        dict(DEFAULT_PRUNER) if len(objectives) == 1 else {"name": "none"})
    sampler = _named(raw.get("sampler"), DEFAULT_SAMPLER, "sampler")
    for what, value, known in (("pruner", pruner, PRUNERS), ("sampler", sampler, SAMPLERS)):
        if value["name"] not in known:
            raise SuiteError(f"unknown {what} {value['name']!r}; choose one of: {', '.join(known)}")
    if len(objectives) > 1 and pruner["name"] != "none":
        raise SuiteError("Optuna cannot prune multi-objective studies; set pruner: none")
    heartbeat = {**HEARTBEAT, **(raw.get("heartbeat") or {})}
    if set(heartbeat) != set(HEARTBEAT) or any(not isinstance(heartbeat[k], int) or heartbeat[k] < 1
                                               for k in ("interval", "grace_period")):
        raise SuiteError(f"heartbeat takes positive integer interval and grace_period (seconds) and max_retry; "
                         f"got {heartbeat}")
    n_trials = raw.get("n_trials", 20)
    check_number("n_trials", n_trials, integer=True, minimum=1)
    result = StudySpec(name=str(raw["name"]), base=base, search=search, objectives=objectives, coupled=coupled,
                       sampler=sampler, pruner=pruner, n_trials=n_trials, heartbeat=heartbeat,
                       enqueue=list(raw.get("enqueue") or []))
    _validate(result)
    return result


def _validate(spec: StudySpec) -> None:
    """Check the base configuration, that searched names are the method's hyperparameters, and enqueue."""
    both = set(spec.search) & set(spec.base)
    if both:
        raise SuiteError(f"{', '.join(sorted(both))} is both set in base and searched; keep one")
    probe = {name: r["low"] for name, r in spec.search.items()}
    if spec.coupled:
        if "lmbda" not in spec.search or "ll_step" in spec.search or "ll_step" in spec.base:
            raise SuiteError("coupled: true derives ll_step = 255/lmbda: search lmbda, and set ll_step nowhere")
        probe["ll_step"] = 255.0 / probe["lmbda"]
    config = spec.run_config(probe).resolved()     # names that are no hyperparameter of the method fail here
    if "ra_aa" in spec.objectives and not config.aa_points:
        raise SuiteError("objective ra_aa needs aa_points > 0 in base")
    for params in spec.enqueue:
        if not isinstance(params, dict) or set(params) - set(spec.search):
            raise SuiteError(f"enqueue entries must set only searched hyperparameters ({', '.join(spec.search)}), "
                             f"got {params!r}")


# -- storage -------------------------------------------------------------------------------
class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """Optuna's journal storage with the heartbeat that ``RDBStorage`` has.

    A running trial records the time in its system attribute ``heartbeat`` every
    ``heartbeat_interval`` seconds; one whose last beat (or start) is older than
    ``grace_period`` counts as stale, and Optuna fails it (and calls the stale-trial
    callback) before the next trial of any worker starts. Clocks must agree, as they do
    on one machine, where a journal file belongs.
    """

    def __init__(self, backend, *, heartbeat_interval: int, grace_period: int,
                 heartbeat_stale_trial_callback=None):
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
def _quiet_experimental():
    """Optuna flags the heartbeat and retry machinery as experimental; that is known here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def journal_path(name: str, results_dir: Path) -> Path:
    return Path(results_dir) / STUDIES / f"{name}.journal"


# pip packages of the database drivers SQLAlchemy imports (module name -> package)
DRIVER_PACKAGES = {"psycopg2": "psycopg2-binary", "psycopg": "psycopg[binary]", "MySQLdb": "mysqlclient",
                   "pymysql": "pymysql", "asyncpg": "asyncpg", "oracledb": "oracledb", "pyodbc": "pyodbc"}


def open_storage(storage: str | None, spec: StudySpec, results_dir: Path, *, create: bool = True):
    """The study's storage with heartbeat: a journal file (default, or a path) or an RDB URL.
    Without ``create`` a missing journal file is an error (nothing is written)."""
    beat = spec.heartbeat
    with _quiet_experimental():
        kwargs = dict(heartbeat_interval=beat["interval"], grace_period=beat["grace_period"],
                      heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=beat["max_retry"]))
        if storage is None or "://" not in storage:
            path = Path(storage) if storage else journal_path(spec.name, results_dir)
            if not create and not path.is_file():
                raise SuiteError(f"no study {spec.name!r}: {path} does not exist; run `suite tune` on its spec first")
            path.parent.mkdir(parents=True, exist_ok=True)
            return HeartbeatJournalStorage(JournalFileBackend(str(path)), **kwargs)
        if storage.partition("://")[2].split("/")[0].count("@") > 1:
            raise SuiteError(f"cannot open storage {redact(storage)}: more than one '@' before the host; "
                             f"write an '@' in the password as %40 (better: keep the password in PGPASSWORD)")
        try:
            return RDBStorage(sqlalchemy_url(storage), engine_kwargs={"pool_pre_ping": True}, **kwargs)
        except ImportError as err:  # optuna: "Failed to import DB access module", from the driver's import
            missing = getattr(err.__cause__, "name", None) or getattr(err, "name", None)
            what = f"its database driver ({missing})" if missing else "its database driver"
            fix = f"pip install {DRIVER_PACKAGES.get(missing, missing)}" if missing else "install it"
            raise SuiteError(f"cannot open storage {redact(storage)}: {what} is not installed; {fix}") from None
        except Exception as err:  # connection or URL errors; their text may hold the URL
            reason = redact(f"{type(err).__name__}: {err}")
            raise SuiteError(f"cannot open storage {redact(storage)}: {reason}") from None


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


def storage_label(storage: str | None, spec: StudySpec, results_dir: Path) -> str:
    return redact(storage) if storage else str(journal_path(spec.name, results_dir))


def build_sampler(spec: StudySpec, seed_offset: int = 0):
    """The spec's sampler, its seed moved by ``seed_offset``.

    A worker's offset is the number of trials the study held when it started plus its slot
    on this machine, so parallel workers and resumed studies do not draw the same
    parameters again (the sampler's random state is not stored with the study).
    """
    kwargs = {k: v for k, v in spec.sampler.items() if k != "name"}
    if kwargs.get("seed") is not None:
        kwargs["seed"] = int(kwargs["seed"]) + seed_offset
    try:
        with _quiet_experimental():
            return SAMPLERS[spec.sampler["name"]](**kwargs)
    except TypeError as err:
        raise SuiteError(f"bad sampler settings {spec.sampler}: {err}") from None


def build_pruner(spec: StudySpec):
    kwargs = {k: v for k, v in spec.pruner.items() if k != "name"}
    try:
        return PRUNERS[spec.pruner["name"]](**kwargs)
    except (TypeError, ValueError) as err:
        raise SuiteError(f"bad pruner settings {spec.pruner}: {err}") from None


def open_study(spec: StudySpec, storage: str | None, results_dir: Path, *, create: bool, seed_offset: int = 0):
    """Create or load the study; a loaded study must have been made with the same settings."""
    store = open_storage(storage, spec, results_dir, create=create)
    sampler, pruner = build_sampler(spec, seed_offset), build_pruner(spec)
    if not create:
        try:
            return optuna.load_study(study_name=spec.name, storage=store, sampler=sampler, pruner=pruner)
        except KeyError:
            raise SuiteError(f"no study {spec.name!r} in {storage_label(storage, spec, results_dir)}; "
                             f"run `suite tune` on its spec first") from None
    study = optuna.create_study(study_name=spec.name, storage=store, sampler=sampler, pruner=pruner,
                                directions=spec.directions, load_if_exists=True)
    stored = study.user_attrs.get("spec")
    if stored is None:
        study.set_user_attr("spec", spec.fingerprint())
        study.set_user_attr("objectives", spec.objectives)
        for params in spec.enqueue:
            study.enqueue_trial(params, skip_if_exists=True)
    elif stored != spec.fingerprint():
        differ = sorted(k for k in stored if stored[k] != spec.fingerprint().get(k))
        raise SuiteError(f"study {spec.name!r} was created with other settings ({', '.join(differ)} differ: "
                         f"{ {k: stored[k] for k in differ} }); give the study a new name with --set name=...")
    return study


# -- one trial -----------------------------------------------------------------------------
class OptunaReporter(Callback):
    """Reports each epoch's validation robust accuracy to the trial; prunes when Optuna says so."""

    def __init__(self, trial: optuna.Trial):
        self.trial, self.reported = trial, set()

    def report(self, rows: list[dict]) -> None:
        for row in rows:
            if row["epoch"] not in self.reported:
                self.trial.report(float(row["val_robust_acc"]), int(row["epoch"]))
                self.reported.add(row["epoch"])

    def on_start(self, run, config, record: dict) -> None:
        self.report(read_jsonl(run.metrics))          # epochs done before a resume

    def on_epoch_end(self, epoch: int, metrics: dict) -> None:
        self.report([metrics])
        if self.trial.should_prune():
            raise RunPruned(f"pruned by Optuna after epoch {metrics['epoch']} "
                            f"(validation robust accuracy {metrics['val_robust_acc']:.1f})")


def run_metrics(summary: dict, rows: list[dict]) -> dict:
    """The metrics a trial records: validation ones of the early-stopped epoch, test ones of the summary."""
    result = {"status": summary.get("status"), "best_epoch": summary.get("best_epoch"), "epochs_done": len(rows)}
    if rows:
        best = max(rows, key=lambda r: r["val_robust_acc"])     # first maximum, as the engine keeps it
        result.update(val_robust_acc=best["val_robust_acc"], val_clean_acc=best["val_clean_acc"])
    result.update(model_metrics(lambda model, metric: (summary.get(model) or {}).get(metric)))
    return result


def trial_name(config: RunConfig, number: int, hparams: dict, searched) -> str:
    """A trial's W&B name: the run's, the trial number and the searched values
    (``fast_bat-cifar10-preact_resnet18-eps8-s0-trial7-lmbda12.3``)."""
    values = "-".join(f"{key}{hparams[key]:.3g}" for key in searched if key in hparams)
    return f"{config.name}-trial{number}" + (f"-{values}" if values else "")


@dataclass
class Objective:
    """Optuna's objective: one trial = one run of the spec's base configuration."""
    spec: StudySpec
    options: RunOptions
    storage: str                  # redacted label, for the W&B config

    def __call__(self, trial: optuna.Trial):
        try:
            return self.run(trial)
        except optuna.TrialPruned:
            raise
        except Exception as err:
            trial.set_user_attr("error", redact(f"{type(err).__name__}: {err}"))
            raise

    def run(self, trial: optuna.Trial):
        from .tracking import trackers
        from .train import execute

        hparams = self.spec.suggest(trial)
        config = self.spec.run_config(hparams).resolved()
        run = RunDir(self.options.results_dir, config.run_id)
        trial.set_user_attr("run_id", config.run_id)
        trial.set_user_attr("hparams", config.hparams)
        extra = {"optuna_study": self.spec.name, "optuna_trial": trial.number, "optuna_params": hparams,
                 "optuna_storage": self.storage}
        callbacks = trackers(self.options, group=self.options.wandb_group or self.spec.name,
                             name=trial_name(config, trial.number, hparams, self.spec.search),
                             tags=(f"study:{self.spec.name}", f"trial{trial.number}"), job_type="tune",
                             extra_config=extra)
        reporter = OptunaReporter(trial) if len(self.spec.objectives) == 1 else None
        summary = execute(config, self.options, callbacks + ([reporter] if reporter else []))
        rows = read_jsonl(run.metrics)
        if reporter:
            reporter.report(rows)                          # a reused finished run reports its history too
        metrics = run_metrics(summary, rows)
        for key, value in metrics.items():
            if value is not None:
                trial.set_user_attr(key, value)
        if summary["status"] == "pruned":
            raise optuna.TrialPruned(summary.get("error") or "pruned")
        if summary["status"] != "finished":
            raise SuiteError(f"run {config.run_id} ended with status {summary['status']!r}")
        values = [metrics.get(name) for name in self.spec.objectives]
        missing = [n for n, v in zip(self.spec.objectives, values) if v is None]
        if missing:
            raise SuiteError(f"run {config.run_id} has no {', '.join(missing)}")
        return values[0] if len(values) == 1 else values


# -- studies -------------------------------------------------------------------------------
def _counts(study: optuna.Study) -> dict:
    trials = study.get_trials(deepcopy=False)
    return {state: sum(t.state == state for t in trials) for state in TrialState}


def _worker(spec: StudySpec, options: RunOptions, storage: str | None, n_trials: int, seed_offset: int,
            threads: int | None = None) -> None:
    """Run up to ``n_trials`` trials of the study in this process (also a spawned worker's entry)."""
    if threads:
        import torch
        torch.set_num_threads(threads)
    study = open_study(spec, storage, options.results_dir, create=False, seed_offset=seed_offset)
    label = storage_label(storage, spec, options.results_dir)
    stop = optuna.study.MaxTrialsCallback(spec.n_trials, states=FINISHED)
    export = lambda study, trial: export_trials(study, options.results_dir)  # noqa: E731
    study.optimize(Objective(spec, options, label), n_trials=n_trials, catch=(Exception,), callbacks=[stop, export])


def run_study(spec_path, options: RunOptions, *, storage: str | None = None, workers: int = 1,
              n_trials: int | None = None, overrides: list[str] | dict | None = None) -> optuna.Study:
    """Create or resume the study and run trials until it holds ``n_trials`` finished ones.

    ``workers`` processes share the work on this machine (spawned, each with its own
    sampler seed); the same call on other machines against one database joins the study.
    Stale trials of dead workers are failed and re-queued first. Returns the study.
    """
    spec = load_spec(spec_path, overrides)
    if n_trials is not None:
        check_number("--n-trials", n_trials, integer=True, minimum=1)
        spec = dataclasses.replace(spec, n_trials=n_trials)
    check_number("--workers", workers, integer=True, minimum=1)
    results_dir = Path(options.results_dir)
    from .prefetch import ensure_data
    ensure_data(spec.run_config({}).dataset, options.data_dir, options.download)   # once, before any worker
    study = open_study(spec, storage, results_dir, create=True)
    with _quiet_experimental():
        optuna.storages.fail_stale_trials(study)
    counts = _counts(study)
    remaining = spec.n_trials - counts[TrialState.COMPLETE] - counts[TrialState.PRUNED] - counts[TrialState.RUNNING]
    label = storage_label(storage, spec, results_dir)
    print(f"study {spec.name} in {label}: {counts[TrialState.COMPLETE]} complete, {counts[TrialState.PRUNED]} "
          f"pruned, {counts[TrialState.FAIL]} failed, {counts[TrialState.RUNNING]} running; "
          f"target {spec.n_trials} finished -> {max(remaining, 0)} to run", flush=True)
    offset = sum(counts.values())
    if remaining > 0 and workers == 1:
        _worker(spec, options, storage, remaining, seed_offset=offset)
    elif remaining > 0:
        options = dataclasses.replace(options, progress=False)
        threads = max(1, (os.cpu_count() or 1) // workers)
        shares = [remaining // workers + (i < remaining % workers) for i in range(workers)]
        context = multiprocessing.get_context("spawn")
        procs = [context.Process(target=_worker, args=(spec, options, storage, share, offset + slot, threads),
                                 name=f"tune-worker-{slot}") for slot, share in enumerate(shares) if share]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join()
        failed = [f"{p.name} (exit code {p.exitcode})" for p in procs if p.exitcode != 0]
        if failed:
            raise SuiteError(f"worker(s) failed: {', '.join(failed)}; rerun the same command to resume")
    study = open_study(spec, storage, results_dir, create=False)
    export_trials(study, results_dir)
    return study


# -- results -------------------------------------------------------------------------------
COLUMNS = ["trial", "state", "lmbda", "ll_step", "val_robust_acc", "last_reported", "last_reported_epoch",
           "val_clean_acc", "sa", "ra_pgd", "ra_aa",
           "last_sa", "last_ra_pgd", "best_epoch", "epochs_done", "run_id", "retry_of", "duration_s", "error"]


def trials_dataframe(study: optuna.Study):
    """One row per trial: state, hyperparameters, validation and test metrics, run id."""
    import pandas as pd

    rows = []
    for t in study.get_trials(deepcopy=False):
        attrs = t.user_attrs
        row = {"trial": t.number, "state": t.state.name, **attrs.get("hparams", t.params)}
        row.update({k: attrs[k] for k in COLUMNS if k in attrs})
        if t.intermediate_values:          # the last per-epoch value reported (a pruned trial's is where it stopped)
            row["last_reported_epoch"] = max(t.intermediate_values)      # steps are 1-based epochs
            row["last_reported"] = t.intermediate_values[max(t.intermediate_values)]
        row["retry_of"] = t.system_attrs.get("failed_trial")
        row["duration_s"] = t.duration.total_seconds() if t.duration else None
        rows.append(row)
    frame = pd.DataFrame(rows)
    extra = [c for c in frame.columns if c not in COLUMNS]
    return frame.reindex(columns=COLUMNS[:2] + extra + COLUMNS[2:])


def export_trials(study: optuna.Study, results_dir: Path = Path("results"), path: Path | None = None):
    """Write the trials table to ``<results>/studies/<name>.csv`` (or ``path``) and return it.

    For pruned trials ``val_robust_acc`` is the best reached before pruning, ``last_reported``
    the validation robust accuracy of the last epoch reported (``last_reported_epoch``) and the
    test metrics are empty; plotting ``val_robust_acc`` or ``ra_pgd`` against ``lmbda`` gives the
    sensitivity curve without Optuna.
    """
    frame = trials_dataframe(study)
    path = Path(path) if path else Path(results_dir) / STUDIES / f"{study.study_name}.csv"
    atomic_write_bytes(path, tidy_frame(frame).to_csv(index=False).encode())
    return frame


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    """The best complete trial; for several objectives, the Pareto-optimal one best on the first."""
    if not any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
        raise SuiteError(f"study {study.study_name!r} has no complete trial yet")
    if len(study.directions) == 1:
        return study.best_trial
    return max(study.best_trials, key=lambda t: t.values[0])


def best_params(spec_path: str | Path, storage: str | None = None, results_dir=Path("results")) -> dict:
    """The best trial's hyperparameters (searched ones, plus ll_step when coupled)."""
    spec = load_spec(spec_path)
    trial = best_trial(open_study(spec, storage, Path(results_dir), create=False))
    params = dict(trial.params)
    if spec.coupled:
        params["ll_step"] = 255.0 / params["lmbda"]
    return params


def show(spec_path, *, storage: str | None = None, results_dir: Path = Path("results"),
         overrides: list[str] | dict | None = None) -> str:
    """The best parameters and the trials table as text; also exports the CSV."""
    spec = load_spec(spec_path, overrides)
    study = open_study(spec, storage, Path(results_dir), create=False)
    frame = export_trials(study, results_dir)
    lines = [f"study {spec.name} ({storage_label(storage, spec, results_dir)}): {len(frame)} trials, "
             f"objective {' + '.join(spec.objectives)} (maximize)"]
    try:
        best = best_trial(study)
        params = ", ".join(f"{k}={v:.4g}" for k, v in best.params.items())
        values = ", ".join(f"{n}={v:.2f}" for n, v in zip(spec.objectives, best.values))
        lines.append(f"best: trial {best.number}: {params}  ({values}; run {best.user_attrs.get('run_id')})")
    except SuiteError as err:
        lines.append(f"best: none ({err})")
    columns = ["trial", "state", *[c for c in frame.columns if c not in COLUMNS],
               "lmbda", "ll_step", *spec.objectives, "sa", "ra_pgd", "run_id"]
    table = frame.reindex(columns=list(dict.fromkeys(columns)))
    lines.append(table.to_string(index=False, float_format=lambda v: f"{v:.4g}", na_rep="-"))
    lines.append(f"exported: {Path(results_dir) / STUDIES / (spec.name + '.csv')}")
    return "\n".join(lines)
