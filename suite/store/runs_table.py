"""The table of all run records: one row per run, for ``suite runs``, reports and Python users."""

from __future__ import annotations

from pathlib import Path

from ..errors import SuiteError, warn
from .atomic import read_json
from .run_dir import RunDir, iter_run_dirs
from .status import RunStatus

PROTOCOL_SETTINGS = ["dropout", "pgd_steps", "pgd_restarts", "test_points", "aa_points"]
RUN_COLUMNS = [
    "run_id",
    "method",
    "dataset",
    "arch",
    "eps",
    "seed",
    "status",
    "sa",
    "ra_pgd",
    "ra_aa",
    "ra_pgd_aa_subset",
    "last_sa",
    "last_ra_pgd",
    "last_ra_aa",
    "last_ra_pgd_aa_subset",
    "best_epoch",
    "epochs_done",
    "epochs",
    *PROTOCOL_SETTINGS,
    "epoch_seconds",
    "wandb_id",
    "error",
    "kind",
    "method_code",
]


def _live_status(run: RunDir, summary: dict) -> str:
    """The recorded status, except that a 'running' run nobody holds was killed: 'interrupted'."""
    status = summary.get("status", "unknown")
    return RunStatus.INTERRUPTED.value if status == RunStatus.RUNNING and not run.is_held() else status


def runs_dataframe(results_dir: Path = Path("results"), **filters):
    """One row per run record: identity, status and the best/last test metrics.

    ``sa``, ``ra_pgd``, ``ra_aa`` are the early-stopped model's; ``last_*`` the last epoch's;
    ``epochs_done`` of ``epochs``; ``hp_<name>`` the method's hyperparameters. ``arch`` is
    ``<arch>@r<n>`` for a record of an earlier revision of a network (``suite.config.run_config.recorded_arch``).
    Keyword filters keep rows whose column equals the value (or is in it, for a list).
    """
    import pandas as pd

    from ..config.run_config import recorded_arch

    rows = []
    for run in iter_run_dirs(results_dir):
        try:
            c = read_json(run.config)["config"]
            summary = read_json(run.summary) if run.summary.exists() else {}
            row = {
                "run_id": run.run_id,
                "method": c["method"],
                "dataset": c["dataset"],
                "arch": recorded_arch(run.run_id, c),
                "eps": c["eps"],
                "seed": c["seed"],
                "status": _live_status(run, summary),
                "best_epoch": summary.get("best_epoch"),
                "epochs_done": summary.get("epochs_done"),
                "epochs": c["epochs"],
                "epoch_seconds": summary.get("epoch_seconds"),
                "wandb_id": summary.get("wandb_id"),
                "error": summary.get("error"),
                "kind": read_json(run.config).get("kind", "train"),  # "eval": a suite eval record
                "method_code": summary.get("method_code"),  # None: recorded before code hashes
                **{k: c.get(k) for k in PROTOCOL_SETTINGS},
            }
        except (SuiteError, OSError, KeyError, TypeError, AttributeError) as err:
            warn(
                f"skipping the unreadable run record {run.path} ({type(err).__name__}: {err}); "
                f"rerun the run to repair it, or delete the folder"
            )
            continue
        problem = run.damage(summary) if row["status"] == RunStatus.FINISHED else None
        if problem:
            warn(
                f"{problem}: run {run.run_id} is listed as incomplete and left out of reports; "
                f"rerun it to rebuild its records"
            )
            row.update(status=RunStatus.INCOMPLETE.value, error=problem)
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
    return {
        prefix + metric: lookup(model, metric)
        for model, prefix in (("best", ""), ("last", "last_"))
        for metric in ("sa", "ra_pgd", "ra_aa", "ra_pgd_aa_subset")
    }


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
