"""A study's results: the trials table (CSV for the reports), the best trial, the text of ``--show``.

The table's hyperparameter columns are the study's own: the searched ones first, then the rest
of the run's hyperparameters (derived ones among them); ``method`` and ``searched`` say which
method and which hyperparameters, so that the report's figure plots against the searched one.
"""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.trial import TrialState

from ...config.numbers import tidy_frame
from ...errors import SuiteError
from ...store import atomic_write_bytes
from .storage import STUDIES, storage_label

COLUMNS = [
    "trial",
    "state",
    "val_robust_acc",
    "last_reported",
    "last_reported_epoch",
    "val_clean_acc",
    "sa",
    "ra_pgd",
    "ra_aa",
    "last_sa",
    "last_ra_pgd",
    "best_epoch",
    "epochs_done",
    "run_id",
    "retry_of",
    "duration_s",
    "error",
    "method",
    "searched",
]


def trials_dataframe(study: optuna.Study):
    """One row per trial: state, hyperparameters, validation and test metrics, run id."""
    import pandas as pd

    method, searched = study_method(study)
    rows = []
    for t in study.get_trials(deepcopy=False):
        attrs = t.user_attrs
        hparams = attrs.get("hparams", t.params)
        row = {"trial": t.number, "state": t.state.name, **hparams}  # the searched ones go first below
        row.update({k: attrs[k] for k in COLUMNS if k in attrs})
        if t.intermediate_values:  # the last per-epoch value reported (a pruned trial's is where it stopped)
            row["last_reported_epoch"] = max(t.intermediate_values)  # steps are 1-based epochs
            row["last_reported"] = t.intermediate_values[max(t.intermediate_values)]
        row["retry_of"] = t.system_attrs.get("failed_trial")
        row["duration_s"] = t.duration.total_seconds() if t.duration else None
        row.update(method=method, searched=",".join(searched))
        rows.append(row)
    frame = pd.DataFrame(rows)
    extra = [c for c in [*searched, *frame.columns] if c not in COLUMNS and c in frame.columns]
    return frame.reindex(columns=COLUMNS[:2] + list(dict.fromkeys(extra)) + COLUMNS[2:])


def study_method(study: optuna.Study) -> tuple[str, list[str]]:
    """The study's method and searched hyperparameters, from the spec it was created with."""
    from ...config import RunConfig

    spec = study.user_attrs.get("spec") or {}
    return str((spec.get("base") or {}).get("method", RunConfig.method)), list(spec.get("search") or {})


def export_trials(study: optuna.Study, results_dir: Path = Path("results"), path: Path | None = None):
    """Write the trials table to ``<results>/studies/<name>.csv`` (or ``path``) and return it.

    For pruned trials ``val_robust_acc`` is the best reached before pruning, ``last_reported``
    the validation robust accuracy of the last epoch reported (``last_reported_epoch``) and the
    test metrics are empty; plotting ``val_robust_acc`` or ``ra_pgd`` against the searched
    hyperparameter gives the sensitivity curve without Optuna.
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
    """The best trial's hyperparameters (searched ones, plus the derived ones when coupled)."""
    from .spec import load_spec
    from .study import open_study

    spec = load_spec(spec_path)
    trial = best_trial(open_study(spec, storage, Path(results_dir), create=False))
    return spec.derived(dict(trial.params))


def show(
    spec_path,
    *,
    storage: str | None = None,
    results_dir: Path = Path("results"),
    overrides: list[str] | dict | None = None,
) -> str:
    """The best parameters and the trials table as text; also exports the CSV."""
    from .spec import load_spec
    from .study import open_study

    spec = load_spec(spec_path, overrides)
    study = open_study(spec, storage, Path(results_dir), create=False)
    frame = export_trials(study, results_dir)
    lines = [
        f"study {spec.name} ({storage_label(storage, spec, results_dir)}): {len(frame)} trials, "
        f"objective {' + '.join(spec.objectives)} (maximize)"
    ]
    try:
        best = best_trial(study)
        params = ", ".join(f"{k}={v:.4g}" for k, v in best.params.items())
        values = ", ".join(f"{n}={v:.2f}" for n, v in zip(spec.objectives, best.values))
        lines.append(f"best: trial {best.number}: {params}  ({values}; run {best.user_attrs.get('run_id')})")
    except SuiteError as err:
        lines.append(f"best: none ({err})")
    columns = [
        "trial",
        "state",
        *[c for c in frame.columns if c not in COLUMNS],
        *spec.objectives,
        "sa",
        "ra_pgd",
        "run_id",
    ]
    table = frame.reindex(columns=list(dict.fromkeys(columns)))
    lines.append(table.to_string(index=False, float_format=lambda v: f"{v:.4g}", na_rep="-"))
    lines.append(f"exported: {Path(results_dir) / STUDIES / (spec.name + '.csv')}")
    return "\n".join(lines)
