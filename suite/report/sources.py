"""Where a report's runs come from: local run records (default) or a W&B project.

Both sources produce the same :class:`RunSet`: the ``runs_dataframe`` columns plus
``epochs``, ``protocol`` (a dict), ``config`` (the run's resolved configuration, a dict: what
makes a cell, :mod:`.cells`), ``finished_at`` (when the run ended), ``method_code`` (None where
the record has none), the CO verdict (``co``, ``co_epoch``) and a per-run history of epoch rows,
so every table and figure works the same on either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import SuiteError, warn
from ..store import RunDir, filter_runs, read_json, read_jsonl, runs_dataframe
from ..store.status import RunStatus
from .co import NOT_JUDGED, co_verdict


@dataclass
class RunSet:
    """The runs of one report: one row per run, and each run's per-epoch rows."""

    runs: pd.DataFrame
    histories: dict[str, pd.DataFrame] = field(default_factory=dict)
    source: str = ""

    @property
    def finished(self) -> pd.DataFrame:
        return self.runs[self.runs["status"] == RunStatus.FINISHED]


def data_label(dataset: str, inject_beta) -> str:
    """The data set as a report names it: with ``--inject-beta`` the data differ, so the injected
    runs form a setting of their own (their own table, their own figure panels)."""
    return dataset if inject_beta is None or pd.isna(inject_beta) else f"{dataset} + β {inject_beta:g}/255 injected"


def finalize(runs: pd.DataFrame, histories: dict[str, pd.DataFrame], source: str) -> RunSet:
    """Add the CO verdict columns and order the rows; shared by every source."""
    runs = runs.copy()
    for column in ("config", "finished_at", "method_code"):  # older records and sources lack some
        if column not in runs:
            runs[column] = None
    if "inject_beta" in runs:
        runs["dataset"] = [data_label(d, b) for d, b in zip(runs["dataset"], runs["inject_beta"])]
    verdicts = [
        co_verdict(histories[r].to_dict("records")) if r in histories and m not in NOT_JUDGED else co_verdict([])
        for r, m in zip(runs["run_id"], runs["method"])
    ]
    runs["co"] = pd.array([v.flagged for v in verdicts], dtype="boolean")
    runs["co_epoch"] = pd.array([v.epoch for v in verdicts], dtype="Int64")
    runs["eps"] = runs["eps"].astype(float)
    runs = runs.sort_values(["dataset", "arch", "method", "eps", "seed", "run_id"]).reset_index(drop=True)
    return RunSet(runs, {r: h for r, h in histories.items() if r in set(runs["run_id"])}, source)


def load_local(results_dir: Path, run_ids=None, **filters) -> RunSet:
    """The local run records under ``<results_dir>/runs/`` selected by run id and filters."""
    frame = filter_runs(runs_dataframe(results_dir), run_ids, **filters)
    protocols, betas, configs, finished_at, histories = [], [], [], [], {}
    for row in frame.itertuples():
        run = RunDir(results_dir, row.run_id)
        summary, config = run.read_summary() or {}, read_json(run.config)
        protocols.append(summary.get("protocol") or config.get("protocol") or {})
        configs.append(config.get("config") or {})
        betas.append(configs[-1].get("inject_beta"))
        finished_at.append(summary.get("finished"))
        try:
            rows = read_jsonl(run.metrics) if row.status != RunStatus.INCOMPLETE else []
        except SuiteError as err:  # an unfinished run's damaged curve: left out, named
            warn(f"{err}: its curves are left out of the report")
            rows = []
        if rows:
            histories[row.run_id] = pd.DataFrame(rows)
    frame["protocol"] = protocols
    frame["config"] = pd.Series(configs, index=frame.index, dtype=object)
    frame["finished_at"] = pd.Series(finished_at, index=frame.index, dtype=object)
    frame["inject_beta"] = pd.array(betas, dtype="Float64") if betas else pd.array([], dtype="Float64")
    return finalize(frame, histories, f"local run records under {Path(results_dir) / 'runs'}")


def study_trials(results_dir: Path, name: str) -> pd.DataFrame:
    """A tuning study's exported trials (``<results_dir>/studies/<name>.csv``)."""
    path = Path(results_dir) / "studies" / f"{name}.csv"
    if not path.exists():
        raise SuiteError(f"no exported study {path}; run `suite tune` (or `suite reproduce lambda`) first")
    return pd.read_csv(path)
