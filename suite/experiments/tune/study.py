"""Optuna studies over any method's hyperparameters (the sweeps/lambda_*.yaml specs: Fast-BAT's lambda).

Every trial is a real ``execute(...)`` run with its own run record; a callback reports each
epoch's validation robust accuracy to Optuna and stops the run when the pruner says so (the
run is then recorded as ``pruned``).

``n_trials`` is the number of finished (complete or pruned) trials the study should
hold: rerunning the same command resumes instead of adding trials, and a larger
``n_trials`` adds the difference.

Any number of workers may share a study (processes of one ``suite tune --workers N``, or
``suite tune`` commands on one storage, started together or not):

* the study is created once (:func:`open_study`, under a file lock for a file storage);
* each worker's sampler is seeded by the number of its first trial that draws parameters,
  which no other worker has, so two workers never draw from one random stream
  (:class:`WorkerSampler`);
* a trial starts only while the trials finished, under way or waiting before it are fewer
  than the target (:func:`taken`), so the study stops at the target whatever the timing;
* a configuration is trained and counted once: a trial whose run another trial of the study
  has finished, or is training, fails as a duplicate (and does not count), while one whose run
  a process outside the study holds waits for it and takes its result.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from ...config import RunConfig, RunOptions
from ...config.checks import check_number
from ...engine.callbacks import Callback, RunPruned
from ...errors import SuiteError, error_line
from ...store import RunDir, RunLocked, model_metrics, read_jsonl
from ...store.status import RunStatus
from .export import export_trials
from .spec import PRUNERS, SAMPLERS, StudySpec, load_spec
from .storage import creation_lock, open_storage, quiet_experimental, redact, storage_label

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
STARTED = (*FINISHED, TrialState.RUNNING)  # trials that count towards the target
TAKEN = (*STARTED, TrialState.WAITING)  # ... and those that a worker is about to start
LOCK_POLL_SECONDS = 2.0  # how often a trial waiting for a run held outside the study looks again


def build_sampler(spec: StudySpec, seed_offset: int = 0):
    """The spec's sampler, its seed moved by ``seed_offset``."""
    kwargs = {k: v for k, v in spec.sampler.items() if k != "name"}
    if kwargs.get("seed") is not None:
        kwargs["seed"] = int(kwargs["seed"]) + seed_offset
    try:
        with quiet_experimental():
            return SAMPLERS[spec.sampler["name"]](**kwargs)
    except TypeError as err:
        raise SuiteError(f"bad sampler settings {spec.sampler}: {err}") from None


class WorkerSampler(optuna.samplers.BaseSampler):
    """The spec's sampler, seeded when the worker's first trial that draws parameters starts
    (the first not enqueued with fixed ones): the spec's seed plus that trial's number.

    Trial numbers are unique in a study, so no two workers (of one machine or many, started
    together or not) share a seed, and a resumed study does not draw its first parameters
    again (the sampler's random state is not stored with the study). A single worker draws as
    a sampler seeded with the spec's seed plus the trials the study held when it started.
    An enqueued trial before that gets a sampler of its own (for any parameter it leaves open).
    """

    def __init__(self, spec: StudySpec):
        build_sampler(spec)  # bad settings fail here, before any trial
        self.spec, self.inner, self.current = spec, None, None

    def before_trial(self, study, trial) -> None:
        if self.inner is None and not trial.system_attrs.get("fixed_params"):
            self.inner = build_sampler(self.spec, seed_offset=trial.number)
        self.current = self.inner or build_sampler(self.spec, seed_offset=trial.number)
        self.current.before_trial(study, trial)

    def infer_relative_search_space(self, study, trial):
        return self.current.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self.current.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self.current.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values) -> None:
        self.current.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        for sampler in {id(s): s for s in (self.inner, self.current) if s is not None}.values():
            sampler.reseed_rng()


def taken(study: optuna.Study, before: int | None = None) -> int:
    """The trials that count towards the target: finished or under way; with ``before``, those
    numbered below it, waiting ones included (a worker is starting them: it asked before this one)."""
    if before is None:
        return len(study.get_trials(deepcopy=False, states=STARTED))
    return sum(t.number < before for t in study.get_trials(deepcopy=False, states=TAKEN))


class WorkerStop:
    """Optuna callback: stop this worker once the finished trials and those under way (other
    workers') reach the target, instead of starting one the study does not need (a waiting
    trial does not stop it: it is the next one this worker takes), or once it has run
    ``budget`` trials that count (a NotCounted one does not; twice the budget in all at most)."""

    def __init__(self, target: int, budget: int):
        self.target, self.budget, self.counted, self.ran = target, budget, 0, 0

    def __call__(self, study: optuna.Study, trial) -> None:
        self.ran += 1
        self.counted += not trial.user_attrs.get("not_counted")
        if taken(study) >= self.target or self.counted >= self.budget or self.ran >= 2 * self.budget:
            study.stop()


class NotCounted(SuiteError):
    """A trial the study does not need (its target is reached) or whose configuration another
    trial trains: it is failed, so that it counts neither towards the target nor twice."""


class _NoTracebackForNotCounted(logging.Filter):
    """Optuna logs a failed trial with its traceback; a NotCounted one is expected: its line suffices."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], NotCounted):
            record.exc_info, record.exc_text = None, None
        return True


def quiet_not_counted() -> None:
    """Install :class:`_NoTracebackForNotCounted` on Optuna's log handlers (once per process)."""
    for handler in logging.getLogger("optuna").handlers:
        if not any(isinstance(f, _NoTracebackForNotCounted) for f in handler.filters):
            handler.addFilter(_NoTracebackForNotCounted())


def build_pruner(spec: StudySpec):
    kwargs = {k: v for k, v in spec.pruner.items() if k != "name"}
    try:
        return PRUNERS[spec.pruner["name"]](**kwargs)
    except (TypeError, ValueError) as err:
        raise SuiteError(f"bad pruner settings {spec.pruner}: {err}") from None


def open_study(spec: StudySpec, storage: str | None, results_dir: Path, *, create: bool):
    """Create or load the study; a loaded study must have been made with the same settings.
    Its sampler is a :class:`WorkerSampler`: each process that opens the study draws its own stream."""
    sampler, pruner = WorkerSampler(spec), build_pruner(spec)
    if not create:
        store = open_storage(storage, spec, results_dir, create=False)
        try:
            return optuna.load_study(study_name=spec.name, storage=store, sampler=sampler, pruner=pruner)
        except KeyError:
            raise SuiteError(
                f"no study {spec.name!r} in {storage_label(storage, spec, results_dir)}; "
                f"run `suite tune` on its spec first"
            ) from None
    with creation_lock(storage, spec, results_dir):
        return _create_study(spec, open_storage(storage, spec, results_dir), sampler, pruner)


def _create_study(spec: StudySpec, store, sampler, pruner) -> optuna.Study:
    study = optuna.create_study(
        study_name=spec.name,
        storage=store,
        sampler=sampler,
        pruner=pruner,
        directions=spec.directions,
        load_if_exists=True,
    )
    stored = study.user_attrs.get("spec")
    if stored is None:
        study.set_user_attr("spec", spec.fingerprint())
        study.set_user_attr("objectives", spec.objectives)
        for params in spec.enqueue:
            study.enqueue_trial(params, skip_if_exists=True)
    elif stored != spec.fingerprint():
        differ = sorted(k for k in stored if stored[k] != spec.fingerprint().get(k))
        raise SuiteError(
            f"study {spec.name!r} was created with other settings ({', '.join(differ)} differ: "
            f"{ {k: stored[k] for k in differ} }); give the study a new name with --set name=..."
        )
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
        self.report(read_jsonl(run.metrics))  # epochs done before a resume

    def on_epoch_end(self, epoch: int, metrics: dict) -> None:
        self.report([metrics])
        if self.trial.should_prune():
            raise RunPruned(
                f"pruned by Optuna after epoch {metrics['epoch']} "
                f"(validation robust accuracy {metrics['val_robust_acc']:.1f})"
            )


def run_metrics(summary: dict, rows: list[dict]) -> dict:
    """The metrics a trial records: validation ones of the early-stopped epoch, test ones of the summary."""
    result = {"status": summary.get("status"), "best_epoch": summary.get("best_epoch"), "epochs_done": len(rows)}
    if rows:
        best = max(rows, key=lambda r: r["val_robust_acc"])  # first maximum, as the engine keeps it
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
    storage: str  # redacted label, for the W&B config

    def __call__(self, trial: optuna.Trial):
        try:
            return self.run(trial)
        except optuna.TrialPruned:
            raise
        except Exception as err:
            trial.set_user_attr("error", redact(error_line(err)))
            if isinstance(err, NotCounted):
                trial.set_user_attr("not_counted", True)
            raise

    def run(self, trial: optuna.Trial):
        from ...tracking import trackers

        target = self.spec.n_trials
        if taken(trial.study, before=trial.number) >= target:  # other workers started the last ones meanwhile
            trial.study.stop()
            raise NotCounted(f"not needed: the study had its {target} trials finished or under way when it started")
        hparams = self.spec.suggest(trial)
        config = self.spec.run_config(hparams).resolved()
        run = RunDir(self.options.results_dir, config.run_id)
        trial.set_user_attr("run_id", config.run_id)
        trial.set_user_attr("hparams", config.hparams)
        self.refuse_twin(trial, config.run_id, FINISHED)
        extra = {
            "optuna_study": self.spec.name,
            "optuna_trial": trial.number,
            "optuna_params": hparams,
            "optuna_storage": self.storage,
        }
        callbacks = trackers(
            self.options,
            group=self.options.wandb_group or self.spec.name,
            name=trial_name(config, trial.number, hparams, self.spec.search),
            tags=(f"study:{self.spec.name}", f"trial{trial.number}"),
            job_type="tune",
            extra_config=extra,
        )
        reporter = OptunaReporter(trial) if len(self.spec.objectives) == 1 else None
        summary = self.train(trial, config, callbacks + ([reporter] if reporter else []))
        rows = read_jsonl(run.metrics)
        if reporter:
            reporter.report(rows)  # a reused finished run reports its history too
        metrics = run_metrics(summary, rows)
        for key, value in metrics.items():
            if value is not None:
                trial.set_user_attr(key, value)
        if summary["status"] == RunStatus.PRUNED:
            raise optuna.TrialPruned(summary.get("error") or "pruned")
        if summary["status"] != RunStatus.FINISHED:
            raise SuiteError(f"run {config.run_id} ended with status {summary['status']!r}")
        values = [metrics.get(name) for name in self.spec.objectives]
        missing = [n for n, v in zip(self.spec.objectives, values) if v is None]
        if missing:
            raise SuiteError(f"run {config.run_id} has no {', '.join(missing)}")
        return values[0] if len(values) == 1 else values

    def refuse_twin(self, trial: optuna.Trial, run_id: str, states) -> None:
        """Fail the trial (uncounted) when another trial of the study in ``states`` has its run."""
        twin = next(
            (
                t
                for t in trial.study.get_trials(deepcopy=False, states=states)
                if t.number != trial.number and t.user_attrs.get("run_id") == run_id
            ),
            None,
        )
        if twin is not None:
            trial.set_user_attr("duplicate_of", twin.number)
            raise NotCounted(
                f"same configuration as trial {twin.number} ({twin.state.name.lower()}, run {run_id}): "
                f"trained and counted once, by that trial"
            )

    def train(self, trial: optuna.Trial, config: RunConfig, callbacks: list) -> dict:
        """``execute`` the trial's run. A run held by another trial of this study makes this trial a
        duplicate; one held by a process outside the study (a sweep, a ``suite run``) is waited for,
        and then resumed or, when that process finished it, its result taken."""
        from ...engine import execute

        run = RunDir(self.options.results_dir, config.run_id)
        while True:
            try:
                return execute(config, self.options, callbacks)
            except RunLocked:
                self.refuse_twin(trial, config.run_id, (TrialState.RUNNING,))
                print(
                    f"trial {trial.number}: run {config.run_id} is being trained elsewhere; waiting for it", flush=True
                )
                while run.is_held():
                    time.sleep(LOCK_POLL_SECONDS)


# -- studies -------------------------------------------------------------------------------
def _counts(study: optuna.Study) -> dict:
    trials = study.get_trials(deepcopy=False)
    return {state: sum(t.state == state for t in trials) for state in TrialState}


def _worker(
    spec: StudySpec,
    options: RunOptions,
    storage: str | None,
    n_trials: int,
    threads: int | None = None,
) -> None:
    """Run trials of the study in this process until it holds its target (``spec.n_trials``
    finished or under way), at most ``n_trials`` of them that count (also a spawned worker's entry)."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    study = open_study(spec, storage, options.results_dir, create=False)
    if taken(study) >= spec.n_trials:  # other workers have started the last trials meanwhile
        return
    quiet_not_counted()
    label = storage_label(storage, spec, options.results_dir)
    export = lambda study, trial: export_trials(study, options.results_dir)  # noqa: E731
    callbacks = [WorkerStop(spec.n_trials, n_trials), export]
    study.optimize(Objective(spec, options, label), catch=(Exception,), callbacks=callbacks)


def run_study(
    spec_path,
    options: RunOptions,
    *,
    storage: str | None = None,
    workers: int = 1,
    n_trials: int | None = None,
    overrides: list[str] | dict | None = None,
) -> optuna.Study:
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
    from ...data.prefetch import ensure_data

    ensure_data(spec.run_config({}).dataset, options.data_dir, options.download)  # once, before any worker
    study = open_study(spec, storage, results_dir, create=True)
    with quiet_experimental():
        optuna.storages.fail_stale_trials(study)
    counts = _counts(study)
    remaining = spec.n_trials - counts[TrialState.COMPLETE] - counts[TrialState.PRUNED] - counts[TrialState.RUNNING]
    label = storage_label(storage, spec, results_dir)
    print(
        f"study {spec.name} in {label}: {counts[TrialState.COMPLETE]} complete, {counts[TrialState.PRUNED]} "
        f"pruned, {counts[TrialState.FAIL]} failed, {counts[TrialState.RUNNING]} running; "
        f"target {spec.n_trials} finished -> {max(remaining, 0)} to run",
        flush=True,
    )
    if remaining > 0 and workers == 1:
        _worker(spec, options, storage, remaining)
    elif remaining > 0:
        options = dataclasses.replace(options, progress=False)
        threads = max(1, (os.cpu_count() or 1) // workers)
        context = multiprocessing.get_context("spawn")
        procs = [  # each may run all the remaining trials: they stop together at the target
            context.Process(
                target=_worker, args=(spec, options, storage, remaining, threads), name=f"tune-worker-{slot}"
            )
            for slot in range(min(workers, remaining))
        ]
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
