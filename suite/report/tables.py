"""The report's tables: our results over seeds, the paper's Table 1 beside them, training cost.

Means and standard deviations are over the finished runs (seeds) of a cell; the standard
deviation is the sample one (ddof=1), as papers report it, and undefined for a single seed.
"""
from __future__ import annotations

import math
from importlib import resources

import pandas as pd

from .co import NOT_JUDGED
from .palette import method_label, method_rank

METRICS = {"sa": "SA", "ra_pgd": "RA-PGD", "ra_aa": "RA-AA"}
MODELS = {"": "early-stopped", "last_": "last epoch"}
CELL = ["dataset", "arch", "method", "eps", "variant"]
PAPER_SETTING = {"dataset": "cifar10", "arch": "preact_resnet18"}   # the setting of the paper's Table 1
SPREAD_FACTOR = 2.0
SPREAD_RULE = (
    f"Ours lies within the paper's spread when |ours_mean - paper_mean| <= {SPREAD_FACTOR:g} x max(paper_std, ours_std), "
    f"both standard deviations over seeds (ours: sample std, ddof=1, taken as 0 for a single seed)."
)


def paper_table() -> pd.DataFrame:
    """The paper's Table 1 (package data copy of ``shared/reference/paper_table1.csv``)."""
    with (resources.files("suite") / "reference" / "paper_table1.csv").open() as handle:
        return pd.read_csv(handle, comment="#")


def with_variants(runs: pd.DataFrame) -> pd.DataFrame:
    """Add ``variant``: the hyperparameters (``hp_*``) that differ between runs of the same
    dataset, arch, method and eps, e.g. ``lmbda=1``; empty where they all agree."""
    runs = runs.copy()
    hp_columns = [c for c in runs.columns if c.startswith("hp_")]
    labels = pd.Series("", index=runs.index, dtype=object)
    for _, group in runs.groupby(["dataset", "arch", "method", "eps"], sort=False):
        varying = [c for c in hp_columns if group[c].astype(str).nunique() > 1]
        for index, row in group.iterrows():
            labels[index] = ", ".join(f"{c[3:]}={row[c]:g}" if isinstance(row[c], float) else f"{c[3:]}={row[c]}"
                                      for c in varying)
    runs["variant"] = labels
    return runs


def _sort(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    key = lambda col: col.map(method_rank) if col.name == "method" else col  # noqa: E731
    return frame.sort_values(by, key=key).reset_index(drop=True)


def summary_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per dataset x arch x method x eps (x variant): n seeds, mean and std of every
    metric for the early-stopped and the last-epoch model, seconds per epoch, CO count."""
    finished = with_variants(runs[runs["status"] == "finished"])
    rows = []
    for key, group in finished.groupby(CELL, sort=False):
        row = dict(zip(CELL, key))
        row.update(n=len(group), seeds=" ".join(str(s) for s in sorted(group["seed"])))
        for prefix in MODELS:
            for metric in METRICS:
                values = pd.to_numeric(group[prefix + metric], errors="coerce")
                row[f"{prefix}{metric}_mean"], row[f"{prefix}{metric}_std"] = values.mean(), values.std(ddof=1)
        seconds = pd.to_numeric(group["epoch_seconds"], errors="coerce")
        row.update(epoch_seconds_mean=seconds.mean(), epoch_seconds_std=seconds.std(ddof=1),
                   co_runs=int((group["co"] == True).sum()), co_judged=int(group["co"].notna().sum()))  # noqa: E712
        rows.append(row)
    columns = CELL + ["n", "seeds"] + [f"{p}{m}_{s}" for p in MODELS for m in METRICS for s in ("mean", "std")] + [
        "epoch_seconds_mean", "epoch_seconds_std", "co_runs", "co_judged"]
    return _sort(pd.DataFrame(rows, columns=columns), ["dataset", "arch", "method", "eps", "variant"])


def within_spread(ours_mean: float, ours_std: float, paper_mean: float, paper_std: float) -> bool | None:
    """:data:`SPREAD_RULE`; None when our mean is missing."""
    if ours_mean is None or math.isnan(ours_mean):
        return None
    ours_std = 0.0 if ours_std is None or math.isnan(ours_std) else ours_std
    return bool(abs(ours_mean - paper_mean) <= SPREAD_FACTOR * max(paper_std, ours_std))


def comparison_table(summary: pd.DataFrame, paper: pd.DataFrame | None = None) -> pd.DataFrame:
    """Ours beside the paper's Table 1 for every cell the paper has (early-stopped model)."""
    paper = paper_table() if paper is None else paper
    ours = summary[(summary["dataset"] == PAPER_SETTING["dataset"]) & (summary["arch"] == PAPER_SETTING["arch"])
                   & (summary["variant"] == "")]
    paper = paper.rename(columns={c: f"paper_{c}" for c in paper.columns if c not in ("method", "eps")})
    merged = ours.merge(paper.astype({"eps": float}), on=["method", "eps"], how="inner")
    rows = []
    for cell in merged.itertuples():
        for metric, label in METRICS.items():
            mean, std = getattr(cell, f"{metric}_mean"), getattr(cell, f"{metric}_std")
            p_mean, p_std = getattr(cell, f"paper_{metric}_mean"), getattr(cell, f"paper_{metric}_std")
            rows.append({"method": cell.method, "eps": cell.eps, "metric": label, "n": cell.n, "ours_mean": mean,
                         "ours_std": std, "paper_mean": p_mean, "paper_std": p_std, "delta": mean - p_mean,
                         "within_spread": within_spread(mean, std, p_mean, p_std)})
    columns = ["method", "eps", "metric", "n", "ours_mean", "ours_std", "paper_mean", "paper_std", "delta",
               "within_spread"]
    return _sort(pd.DataFrame(rows, columns=columns), ["method", "eps"]) if rows else pd.DataFrame(columns=columns)


def cost_table(runs: pd.DataFrame, paper: pd.DataFrame | None = None) -> pd.DataFrame:
    """Seconds per training epoch by dataset x arch x method, its ratio to Fast-AT in the same
    setting, and the paper's ratio (its seconds were measured on another GPU; only ratios compare)."""
    paper = paper_table() if paper is None else paper
    paper_seconds = paper.groupby("method")["time_per_epoch_s"].first()
    finished = runs[runs["status"] == "finished"].copy()
    finished["epoch_seconds"] = pd.to_numeric(finished["epoch_seconds"], errors="coerce")
    frame = (finished.groupby(["dataset", "arch", "method"])["epoch_seconds"]
             .agg(n="count", seconds_mean="mean", seconds_std=lambda s: s.std(ddof=1)).reset_index())
    reference = frame[frame["method"] == "fast_at"].set_index(["dataset", "arch"])["seconds_mean"]
    frame["rel_fast_at"] = [row.seconds_mean / reference.get((row.dataset, row.arch), math.nan)
                            for row in frame.itertuples()]
    frame["paper_rel_fast_at"] = [paper_seconds.get(m, math.nan) / paper_seconds.get("fast_at", math.nan)
                                  for m in frame["method"]]
    return _sort(frame, ["dataset", "arch", "method"])


RUN_TABLE_COLUMNS = ["run_id", "dataset", "arch", "method", "eps", "seed", "variant", "status", "sa", "ra_pgd", "ra_aa",
                     "last_sa", "last_ra_pgd", "last_ra_aa", "best_epoch", "epochs_done", "epoch_seconds", "co",
                     "co_epoch", "error"]


def run_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Every selected run with its test metrics and CO verdict."""
    return _sort(with_variants(runs)[RUN_TABLE_COLUMNS], ["dataset", "arch", "method", "eps", "seed"])


def protocol_notes(runs: pd.DataFrame) -> dict[str, str]:
    """The evaluation protocol of ``runs`` (one setting), each entry's distinct values joined."""
    notes = {"runs": str(len(runs)), "seeds": " ".join(str(s) for s in sorted(set(runs["seed"]))),
             "epochs": " / ".join(str(e) for e in sorted(set(runs.get("epochs", pd.Series()).dropna())))}
    keys = []
    for protocol in runs["protocol"]:
        keys += [k for k in (protocol or {}) if k not in keys]
    for key in keys:
        values = []
        for protocol in runs["protocol"]:
            value = (protocol or {}).get(key)
            value = "not run" if value is None else str(value)
            if value not in values:
                values.append(value)
        notes[key] = " / ".join(values)
    return notes


# -- display ---------------------------------------------------------------------------------

def fmt(value, digits: int = 2) -> str:
    """A number with ``digits`` decimals; ``—`` for a missing one."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "—"
    try:
        value = float(value)
    except (TypeError, ValueError):
        return str(value)
    return "—" if math.isnan(value) else f"{value:.{digits}f}"


def fmt_pm(mean, std, digits: int = 2) -> str:
    """``45.47 ± 0.39``; the mean alone when the std is undefined; ``—`` when there is no mean."""
    if fmt(mean) == "—":
        return "—"
    return fmt(mean, digits) if fmt(std) == "—" else f"{fmt(mean, digits)} ± {fmt(std, digits)}"


def display_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary of one setting as strings, ready for Markdown or HTML."""
    out = pd.DataFrame({"method": summary["method"].map(method_label), "eps (/255)": summary["eps"].map("{:g}".format)})
    if (summary["variant"] != "").any():
        out["variant"] = summary["variant"]
    out["n"] = summary["n"]
    for prefix, model in MODELS.items():
        for metric, label in METRICS.items():
            out[f"{label} (%), {model}"] = [fmt_pm(m, s) for m, s in
                                            zip(summary[f"{prefix}{metric}_mean"], summary[f"{prefix}{metric}_std"])]
    out["s/epoch"] = [fmt_pm(m, s, 1) for m, s in zip(summary["epoch_seconds_mean"], summary["epoch_seconds_std"])]
    out["CO runs"] = ["n/a" if m in NOT_JUDGED else f"{c}/{j}"
                      for c, j, m in zip(summary["co_runs"], summary["co_judged"], summary["method"])]
    return out


def display_comparison(comparison: pd.DataFrame) -> pd.DataFrame:
    yes_no = lambda w: "—" if w is None or pd.isna(w) else ("yes" if w else "NO")  # noqa: E731
    return pd.DataFrame({
        "method": comparison["method"].map(method_label), "eps (/255)": comparison["eps"].map("{:g}".format),
        "metric": comparison["metric"], "n": comparison["n"],
        "ours (%)": [fmt_pm(m, s) for m, s in zip(comparison["ours_mean"], comparison["ours_std"])],
        "paper (%)": [fmt_pm(m, s) for m, s in zip(comparison["paper_mean"], comparison["paper_std"])],
        "ours - paper": [fmt(d) if fmt(d) == "—" else f"{d:+.2f}" for d in comparison["delta"]],
        "within spread": [yes_no(w) for w in comparison["within_spread"]],
    })


def display_cost(cost: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "dataset": cost["dataset"], "arch": cost["arch"], "method": cost["method"].map(method_label), "n": cost["n"],
        "s/epoch": [fmt_pm(m, s, 1) for m, s in zip(cost["seconds_mean"], cost["seconds_std"])],
        "x Fast-AT (ours)": [fmt(r) for r in cost["rel_fast_at"]],
        "x Fast-AT (paper)": [fmt(r) for r in cost["paper_rel_fast_at"]],
    })


def display_runs(table: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({"run": table["run_id"], "method": table["method"].map(method_label),
                        "eps": table["eps"].map("{:g}".format), "seed": table["seed"], "status": table["status"]})
    for column in ("sa", "ra_pgd", "ra_aa", "last_sa", "last_ra_pgd", "last_ra_aa"):
        out[column] = [fmt(v) for v in table[column]]
    out["best epoch"] = [fmt(v, 0) for v in table["best_epoch"]]
    out["co"] = ["n/a" if m in NOT_JUDGED else "?" if pd.isna(v) else ("CO" if v else "no")
                 for v, m in zip(table["co"], table["method"])]
    out["co epoch"] = [fmt(v, 0) for v in table["co_epoch"]]
    return out
