"""Optuna studies over a method's hyperparameters; first of all Fast-BAT's lambda.

Every trial is a real ``execute(...)`` run with its own run record; a callback reports each
epoch's validation robust accuracy to Optuna and stops the run when the pruner says so (the
run is then recorded as ``pruned``).

``n_trials`` is the number of finished (complete or pruned) trials the study should
hold: rerunning the same command resumes instead of adding trials, and a larger
``n_trials`` adds the difference.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from ...config import RunConfig, RunOptions
from ...config.checks import check_number
from ...engine.callbacks import Callback, RunPruned
from ...errors import SuiteError
from ...store import RunDir, model_metrics, read_jsonl
from ...store.status import RunStatus
from .export import export_trials
from .spec import PRUNERS, SAMPLERS, StudySpec, load_spec
from .storage import open_storage, quiet_experimental, redact, storage_label

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


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
        with quiet_experimental():
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
            raise SuiteError(
                f"no study {spec.name!r} in {storage_label(storage, spec, results_dir)}; "
                f"run `suite tune` on its spec first"
            ) from None
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
            trial.set_user_attr("error", redact(f"{type(err).__name__}: {err}"))
            raise

    def run(self, trial: optuna.Trial):
        from ...engine import execute
        from ...tracking import trackers

        hparams = self.spec.suggest(trial)
        config = self.spec.run_config(hparams).resolved()
        run = RunDir(self.options.results_dir, config.run_id)
        trial.set_user_attr("run_id", config.run_id)
        trial.set_user_attr("hparams", config.hparams)
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
        summary = execute(config, self.options, callbacks + ([reporter] if reporter else []))
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


# -- studies -------------------------------------------------------------------------------
def _counts(study: optuna.Study) -> dict:
    trials = study.get_trials(deepcopy=False)
    return {state: sum(t.state == state for t in trials) for state in TrialState}


def _worker(
    spec: StudySpec,
    options: RunOptions,
    storage: str | None,
    n_trials: int,
    seed_offset: int,
    threads: int | None = None,
) -> None:
    """Run up to ``n_trials`` trials of the study in this process (also a spawned worker's entry)."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    study = open_study(spec, storage, options.results_dir, create=False, seed_offset=seed_offset)
    label = storage_label(storage, spec, options.results_dir)
    stop = optuna.study.MaxTrialsCallback(spec.n_trials, states=FINISHED)
    export = lambda study, trial: export_trials(study, options.results_dir)  # noqa: E731
    study.optimize(Objective(spec, options, label), n_trials=n_trials, catch=(Exception,), callbacks=[stop, export])


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
    offset = sum(counts.values())
    if remaining > 0 and workers == 1:
        _worker(spec, options, storage, remaining, seed_offset=offset)
    elif remaining > 0:
        options = dataclasses.replace(options, progress=False)
        threads = max(1, (os.cpu_count() or 1) // workers)
        shares = [remaining // workers + (i < remaining % workers) for i in range(workers)]
        context = multiprocessing.get_context("spawn")
        procs = [
            context.Process(
                target=_worker, args=(spec, options, storage, share, offset + slot, threads), name=f"tune-worker-{slot}"
            )
            for slot, share in enumerate(shares)
            if share
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
