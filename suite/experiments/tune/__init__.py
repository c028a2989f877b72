"""Optuna studies over any method's hyperparameters: specs, storages, the study loop, its results."""

from .export import best_params, best_trial, export_trials, show, trials_dataframe
from .spec import StudySpec, apply_overrides, load_spec
from .storage import HeartbeatJournalStorage, journal_path, open_storage, redact, storage_label
from .study import Objective, OptunaReporter, open_study, run_metrics, run_study, trial_name

__all__ = [
    "HeartbeatJournalStorage",
    "Objective",
    "OptunaReporter",
    "StudySpec",
    "apply_overrides",
    "best_params",
    "best_trial",
    "export_trials",
    "journal_path",
    "load_spec",
    "open_storage",
    "open_study",
    "redact",
    "run_metrics",
    "run_study",
    "show",
    "storage_label",
    "trial_name",
    "trials_dataframe",
]
