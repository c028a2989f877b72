"""What a cell of the report is: the runs of one configuration, seeds aside.

Two runs fall into one cell only when their resolved configurations (every ``RunConfig`` field
and every hyperparameter of the method, as ``config.json`` records them) are equal except for the
seed; a mean over a cell is then a mean over seeds and nothing else. Where several cells share a
dataset, arch, method and eps, each is labelled with the settings in which it differs from the
most common configuration among them (``lr=0.05``, ``val_pgd_steps=2``). A cell holds one run
per seed: of two finished runs with the same configuration and seed, the one that finished last
is kept and the other named in a warning.

Pairs for a paired comparison come from cells whose configurations are equal apart from the
method and its hyperparameters (:func:`pair_settings`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections import Counter

import pandas as pd

from ..config.run_config import RunConfig
from ..errors import warn
from ..store.status import RunStatus

GROUP = ["dataset", "arch", "method", "eps"]  # a cell's label names what differs within these
SETTING_FIELDS = [f.name for f in dataclasses.fields(RunConfig) if f.name not in ("seed", "hparams")]
HP = "hp_"  # a hyperparameter's key among the settings (as in ``runs_dataframe``'s columns)
CELL_RULE = (
    "a cell is one configuration, seeds aside: its runs' resolved configurations (every run setting and "
    "hyperparameter in config.json) are equal except for the seed, with one run per seed (of two finished runs "
    "of one configuration and seed, the one that finished last is kept, the other is named in a warning and "
    "listed under the runs left out). Where a method and eps have several cells, each is labelled with the "
    "settings in which it differs from the most common configuration among them (e.g. lr=0.05)"
)


def normal(value):
    """A setting's value in one canonical form: numbers as floats (8 and 8.0 are one setting),
    NaN as None, sequences as lists."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, (list, tuple)):
        return [normal(v) for v in value]
    if isinstance(value, dict):
        return {str(k): normal(v) for k, v in sorted(value.items())}
    try:
        return None if pd.isna(value) else float(value)
    except (TypeError, ValueError):
        return str(value)


def settings(run: dict) -> dict:
    """A run's configuration minus the seed, flat: the run settings by name, the hyperparameters
    as ``hp_<name>``. ``dataset`` and ``arch`` are the report's (the data label with its injection,
    the recorded network revision). From the run's ``config`` dict, else from its columns."""
    config = run.get("config")
    if not isinstance(config, dict):
        config = {name: run.get(name) for name in SETTING_FIELDS}
        config["hparams"] = {k[len(HP) :]: v for k, v in run.items() if k.startswith(HP)}
    out = {name: normal(config.get(name)) for name in SETTING_FIELDS}
    out.update({HP + str(k): normal(v) for k, v in (config.get("hparams") or {}).items()})
    out = {k: v for k, v in out.items() if not (k.startswith(HP) and v is None)}
    out.update({key: normal(run[key]) for key in GROUP})
    return out


def pair_settings(run_settings: dict) -> dict:
    """The settings a paired comparison holds fixed: all but the method and its hyperparameters."""
    return {k: v for k, v in run_settings.items() if k != "method" and not k.startswith(HP)}


def digest(values: dict) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:10]


def show(value, key: str = "") -> str:
    """A setting's value in a label: ``0.05``, ``8``, ``none`` (``all`` for a ``*_points`` count)."""
    if value is None:
        return "all" if key.endswith("_points") else "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def labels(cells: dict[str, dict], runs_per_cell: dict[str, int]) -> dict[str, str]:
    """Per cell of one method and eps: the settings where it differs from the most common value
    (by runs; none where no value is the most common), ``name=value, ...``; empty for one cell. Two
    labels that read alike (values equal when shown with 6 digits) get the cell's id appended."""
    if len(cells) < 2:
        return {cell: "" for cell in cells}
    keys = list(dict.fromkeys(k for values in cells.values() for k in values))
    varying = [k for k in keys if len({json.dumps(v.get(k), default=str) for v in cells.values()}) > 1]
    reference = {}
    for key in varying:
        votes = Counter()
        for cell, values in cells.items():
            votes[json.dumps(values.get(key), default=str)] += runs_per_cell[cell]
        (top, first), *rest = votes.most_common()
        if not rest or rest[0][1] < first:
            reference[key] = top
    out = {}
    for cell, values in cells.items():
        differs = [k for k in varying if reference.get(k) != json.dumps(values.get(k), default=str)]
        out[cell] = ", ".join(f"{k.removeprefix(HP)}={show(values.get(k), k)}" for k in differs)
    seen = Counter(out.values())
    return {cell: f"{label} [{cell[:6]}]" if seen[label] > 1 else label for cell, label in out.items()}


def with_cells(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with ``cell`` (an id of its configuration minus the seed), ``variant`` (its label,
    :func:`labels`) and ``pair`` (an id of :func:`pair_settings`)."""
    runs = runs.copy()
    every = [settings(row) for row in runs.to_dict("records")]
    runs["cell"] = [digest(s) for s in every]
    runs["pair"] = [digest(pair_settings(s)) for s in every]
    variant = pd.Series("", index=runs.index, dtype=object)
    for _, group in runs.groupby(GROUP, sort=False, dropna=False):
        cells = {runs.at[i, "cell"]: every[runs.index.get_loc(i)] for i in group.index}
        named = labels(cells, group["cell"].value_counts().to_dict())
        for index in group.index:
            variant[index] = named[runs.at[index, "cell"]]
    runs["variant"] = variant
    return runs


def prepare(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the finished runs with their cells, one run per seed in each; the finished runs left out as
    duplicates, with ``kept``: the run kept instead). Warns once per duplicate."""
    finished = with_cells(runs[runs["status"] == RunStatus.FINISHED])
    when = pd.to_datetime(finished.get("finished_at"), utc=True, errors="coerce", format="ISO8601")
    order = finished.assign(_when=when if when is not None else pd.NaT).sort_values(["_when", "run_id"])
    kept = order.drop_duplicates(["cell", "seed"], keep="last")
    dropped = order.loc[order.index.difference(kept.index)].drop(columns="_when")
    keeper = kept.set_index(["cell", "seed"])["run_id"]
    where = kept.set_index(["cell", "seed"]).get("path")
    dropped["kept"] = [keeper[(c, s)] for c, s in zip(dropped["cell"], dropped["seed"])]
    for row in dropped.itertuples():
        same = row.kept == row.run_id  # one run id twice (e.g. two W&B runs of one record)
        other = f"{row.run_id} ({getattr(row, 'path', '')})" if same else row.run_id
        kept_name = f"{row.kept} ({where[(row.cell, row.seed)]})" if same and where is not None else row.kept
        warn(
            f"runs {kept_name} and {other} have the same configuration and seed {row.seed}: the report keeps "
            f"{kept_name}, which finished last, and leaves out {other}; delete the one you do not want"
        )
    return kept.drop(columns="_when").sort_index(), dropped


def prepared(runs: pd.DataFrame) -> pd.DataFrame:
    """The finished runs of ``runs`` in their cells (:func:`prepare`), unless that is done already."""
    return runs[runs["status"] == RunStatus.FINISHED] if "cell" in runs else prepare(runs)[0]
