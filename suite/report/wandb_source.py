"""Build a report's :class:`RunSet` from a Weights & Biases project instead of local records.

Reads what :class:`suite.tracking.WandbTracker` logs: the run configuration (with
``run_id``) as the W&B config, the per-epoch rows as history, and the summary keys
``status``, ``best/sa`` ... ``last/ra_aa``, ``best_epoch``, ``epoch_seconds``, ``error``.
"""

from __future__ import annotations

import dataclasses

import pandas as pd

from ..config.run_config import RunConfig, recorded_arch
from ..errors import SuiteError
from ..store import filter_runs, model_metrics
from ..store.runs_table import PROTOCOL_SETTINGS, RUN_COLUMNS
from .sources import RunSet, finalize


def _summary_value(summary, key: str):
    """``summary["best/sa"]``, or the nested form ``summary["best"]["sa"]``."""
    if key in summary:
        return summary.get(key)
    head, _, tail = key.partition("/")
    nested = summary.get(head) if head in summary else None
    return nested.get(tail) if tail and hasattr(nested, "get") else None


def _protocol(config: dict) -> dict:
    """The evaluation protocol as far as the W&B config records it."""
    c = config.get
    return {
        "test_points": c("test_points") or "all",
        "pgd": f"PGD-{c('pgd_steps')}-{c('pgd_restarts')}",
        "autoattack": f"AutoAttack standard on the first {c('aa_points')} test points" if c("aa_points") else None,
        "validation": f"PGD-{c('val_pgd_steps')}-{c('val_pgd_restarts')} on {c('val_points') or 'all'} validation points",
        "train_points": c("train_points") or "all",
    }


def _run_config(config: dict) -> dict:
    """The run settings among a W&B config's keys (it also holds ``run_id`` and the sweep's name),
    hyperparameters nested as ``hparams`` (or flattened as ``hparams.<name>``)."""
    names = {f.name for f in dataclasses.fields(RunConfig)}
    out = {k: v for k, v in config.items() if k in names}
    flat = {k.split(".", 1)[1]: v for k, v in config.items() if k.startswith("hparams.")}
    if flat:
        out["hparams"] = {**flat, **(out.get("hparams") or {})}
    return out


def wandb_row(run) -> tuple[dict, pd.DataFrame | None]:
    """One W&B run as a ``runs_dataframe`` row and its per-epoch history."""
    config = dict(run.config)
    summary = run.summary
    if "method" not in config:
        raise SuiteError(f"W&B run {run.id} has no 'method' in its config; was it logged by this suite?")
    row = {
        "run_id": config.get("run_id") or run.id,
        "method": config["method"],
        "dataset": config.get("dataset"),
        "arch": recorded_arch(config.get("run_id") or "", config),
        "eps": config.get("eps"),
        "seed": config.get("seed"),
        "inject_beta": config.get("inject_beta"),
        "status": _summary_value(summary, "status") or getattr(run, "state", "unknown"),
        "best_epoch": _summary_value(summary, "best_epoch"),
        "epoch_seconds": _summary_value(summary, "epoch_seconds"),
        "error": _summary_value(summary, "error"),
        "wandb_id": run.id,
        "config": _run_config(config),
        "finished_at": _summary_value(summary, "finished") or getattr(run, "heartbeat_at", None),
        "method_code": config.get("method_code") or _summary_value(summary, "method_code"),
    }
    row.update(model_metrics(lambda model, metric: _summary_value(summary, f"{model}/{metric}")))
    row.update({f"hp_{k}": v for k, v in (config.get("hparams") or {}).items()})
    rows = [r for r in run.scan_history() if r.get("epoch") is not None]
    history = pd.DataFrame(rows).sort_values("epoch").drop_duplicates("epoch", keep="last") if rows else None
    row["epochs_done"] = len(history) if history is not None else None
    row.update(
        path=getattr(run, "url", run.id),
        epochs=config.get("epochs"),
        protocol=_protocol(config),
        **{k: config.get(k) for k in PROTOCOL_SETTINGS},
    )
    return row, history


def load_wandb(project: str, run_ids=None, api=None, **filters) -> RunSet:
    """The runs of W&B ``project`` (``entity/project`` or ``project``), selected like local ones."""
    if api is None:
        import wandb

        api = wandb.Api()
    rows, histories = [], {}
    for run in api.runs(project):
        row, history = wandb_row(run)
        rows.append(row)
        if history is not None:
            histories[row["run_id"]] = history
    if not rows:
        raise SuiteError(f"W&B project {project!r} has no runs")
    frame = pd.DataFrame(rows)
    for column in RUN_COLUMNS:
        if column not in frame:
            frame[column] = None
    return finalize(filter_runs(frame, run_ids, **filters), histories, f"W&B project {project}")
