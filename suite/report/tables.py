"""The report's tables: our results over seeds, the paper's Table 1 beside them, training cost.

Means and standard deviations are over the finished runs (seeds) of a cell; the standard
deviation is the sample one (ddof=1), as papers report it, and undefined for a single seed.
"""

from __future__ import annotations

import math
from importlib import resources

import pandas as pd

from ..store.status import RunStatus
from .co import NOT_JUDGED
from .palette import method_label, method_rank

METRICS = {"sa": "SA", "ra_pgd": "RA-PGD", "ra_aa": "RA-AA"}  # the paper's
# Ours: RA-PGD on AutoAttack's points too, beside RA-AA (RA-PGD covers all the test points evaluated).
SUMMARY_METRICS = {"sa": "SA", "ra_pgd": "RA-PGD", "ra_pgd_aa_subset": "RA-PGD on AA points", "ra_aa": "RA-AA"}
MODELS = {"": "early-stopped", "last_": "last epoch"}
CELL = ["dataset", "arch", "method", "eps", "variant"]
PAPER_SETTING = {"dataset": "cifar10", "arch": "preact_resnet18"}  # the setting of the paper's Table 1
# The paper's protocol beyond its setting: 20 epochs, PGD-50-10 and AutoAttack on the whole CIFAR-10 test
# set (the reference's evaluation.py attacks every test batch), and at least MIN_SEEDS seeds here.
PAPER_EPOCHS, PAPER_PGD, PAPER_TEST_POINTS, MIN_SEEDS = "20", "PGD-50-10", "10000", 3
PROTOCOL_RULE = (
    f"Ours is compared with the paper only where its protocol is the paper's: CIFAR-10, the reference's "
    f"PreActResNet-18, {PAPER_EPOCHS} epochs, at least {MIN_SEEDS} seeds (the paper: 10), and for SA and RA-PGD "
    f"({PAPER_PGD}) all {PAPER_TEST_POINTS} test points, for RA-AA AutoAttack (standard) on all "
    f"{PAPER_TEST_POINTS} test points too. Otherwise the row names what differs instead of a verdict. Cells "
    f"whose runs differ in their hyperparameters (a study's trials) are left out."
)
AA_TOLERANCE = 1e-9  # percent: AutoAttack is weaker than PGD when RA-AA exceeds RA-PGD on its points by more
AA_WEAKER_RULE = (
    "AutoAttack is flagged as weaker than PGD where a model's RA-AA is above its RA-PGD on the same test points "
    "(the first aa_points, PGD's per-point result on them): AutoAttack should break at least what PGD breaks."
)
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
    """Add ``variant``: the hyperparameters (``hp_*``, and the network's ``dropout``) that differ
    between runs of the same dataset, arch, method and eps, e.g. ``lmbda=1``; empty where they all agree."""
    runs = runs.copy()
    hp_columns = [c for c in runs.columns if c.startswith("hp_") or c == "dropout"]
    labels = pd.Series("", index=runs.index, dtype=object)
    for _, group in runs.groupby(["dataset", "arch", "method", "eps"], sort=False):
        varying = [c for c in hp_columns if group[c].astype(str).nunique() > 1]
        for index, row in group.iterrows():
            labels[index] = ", ".join(
                f"{c.removeprefix('hp_')}={row[c]:g}"
                if isinstance(row[c], float)
                else f"{c.removeprefix('hp_')}={row[c]}"
                for c in varying
            )
    runs["variant"] = labels
    return runs


def _sort(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    key = lambda col: col.map(method_rank) if col.name == "method" else col  # noqa: E731
    return frame.sort_values(by, key=key).reset_index(drop=True)


def summary_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per dataset x arch x method x eps (x variant): n seeds, mean and std of every
    metric for the early-stopped and the last-epoch model, seconds per epoch, CO count."""
    finished = with_variants(runs[runs["status"] == RunStatus.FINISHED])
    rows = []
    for key, group in finished.groupby(CELL, sort=False):
        row = dict(zip(CELL, key))
        row.update(n=len(group), seeds=" ".join(str(s) for s in sorted(group["seed"])), **cell_protocol(group))
        for prefix in MODELS:
            for metric in SUMMARY_METRICS:
                values = pd.to_numeric(
                    group.get(prefix + metric, pd.Series(index=group.index, dtype=float)), errors="coerce"
                )
                row[f"{prefix}{metric}_mean"], row[f"{prefix}{metric}_std"] = values.mean(), values.std(ddof=1)
        seconds = pd.to_numeric(group["epoch_seconds"], errors="coerce")
        row.update(
            epoch_seconds_mean=seconds.mean(),
            epoch_seconds_std=seconds.std(ddof=1),
            co_runs=int((group["co"] == True).sum()),  # noqa: E712  (nullable booleans: NA is not True)
            co_judged=int(group["co"].notna().sum()),
            aa_weaker_runs=sum(bool(m) for m in aa_weaker_models(group)),
        )
        rows.append(row)
    columns = (
        CELL
        + ["n", "seeds", *PROTOCOL_COLUMNS]
        + [f"{p}{m}_{s}" for p in MODELS for m in SUMMARY_METRICS for s in ("mean", "std")]
        + ["epoch_seconds_mean", "epoch_seconds_std", "co_runs", "co_judged", "aa_weaker_runs"]
    )
    return _sort(pd.DataFrame(rows, columns=columns), ["dataset", "arch", "method", "eps", "variant"])


def within_spread(ours_mean: float, ours_std: float, paper_mean: float, paper_std: float) -> bool | None:
    """:data:`SPREAD_RULE`; None when our mean is missing."""
    if ours_mean is None or math.isnan(ours_mean):
        return None
    ours_std = 0.0 if ours_std is None or math.isnan(ours_std) else ours_std
    return bool(abs(ours_mean - paper_mean) <= SPREAD_FACTOR * max(paper_std, ours_std))


def comparison_table(summary: pd.DataFrame, paper: pd.DataFrame | None = None) -> pd.DataFrame:
    """Ours beside the paper's Table 1 for every cell the paper has (early-stopped model): per
    metric, the difference and the spread verdict where the protocol is the paper's
    (:data:`PROTOCOL_RULE`), else ``differs``: what is not the paper's (verdict None)."""
    paper = paper_table() if paper is None else paper
    ours = summary[summary["variant"] == ""]
    paper = paper.rename(columns={c: f"paper_{c}" for c in paper.columns if c not in ("method", "eps")})
    merged = ours.merge(paper.astype({"eps": float}), on=["method", "eps"], how="inner")
    rows = []
    for cell in merged.to_dict("records"):
        differences, spread = compare(cell, {k[6:]: v for k, v in cell.items() if k.startswith("paper_")})
        for metric, label in METRICS.items():
            mean, p_mean = cell[f"{metric}_mean"], cell[f"paper_{metric}_mean"]
            rows.append(
                {
                    "dataset": cell["dataset"],
                    "arch": cell["arch"],
                    "method": cell["method"],
                    "eps": cell["eps"],
                    "metric": label,
                    "n": cell["n"],
                    "ours_mean": mean,
                    "ours_std": cell[f"{metric}_std"],
                    "paper_mean": p_mean,
                    "paper_std": cell[f"paper_{metric}_std"],
                    "delta": mean - p_mean,
                    "differs": "; ".join(differences[label]),
                    "within_spread": spread[label],
                }
            )
    columns = [
        "dataset",
        "arch",
        "method",
        "eps",
        "metric",
        "n",
        "ours_mean",
        "ours_std",
        "paper_mean",
        "paper_std",
        "delta",
        "differs",
        "within_spread",
    ]
    if not rows:
        return pd.DataFrame(columns=columns)
    return _sort(pd.DataFrame(rows, columns=columns), ["dataset", "arch", "method", "eps"])


# -- the protocol of a cell, and what differs from the paper's ---------------------------------

PROTOCOL_COLUMNS = ["epochs", "pgd", "test_points", "aa_points"]


def cell_protocol(group: pd.DataFrame) -> dict[str, str]:
    """The protocol of a cell's runs, each entry's distinct values joined by " / ": epochs, the
    PGD attack (``PGD-50-10``), test points (``all`` for the whole test set) and AutoAttack's points
    (``none`` when it did not run)."""

    def distinct(values) -> str:
        out = []
        for value in values:
            if value not in out:
                out.append(value)
        return " / ".join(out)

    def count(value, none):
        return none if value is None or pd.isna(value) else f"{int(value)}"

    get = lambda column: group[column] if column in group else pd.Series([None] * len(group))  # noqa: E731
    aa = [count(v, "none") if v else "none" for v in get("aa_points")]
    return {
        "epochs": distinct(count(v, "?") for v in get("epochs")),
        "pgd": distinct(f"PGD-{count(k, '?')}-{count(r, '?')}" for k, r in zip(get("pgd_steps"), get("pgd_restarts"))),
        "test_points": distinct(count(v, "all") for v in get("test_points")),
        "aa_points": distinct(aa),
    }


def protocol_differences(cell: dict) -> dict[str, list[str]]:
    """Per metric label (SA, RA-PGD, RA-AA): what in a summary row is not the paper's protocol
    (:data:`PROTOCOL_RULE`); an empty list where it is."""
    common = []
    if cell["dataset"] != PAPER_SETTING["dataset"]:
        common.append(f"dataset {cell['dataset']} (paper: {PAPER_SETTING['dataset']})")
    if cell["arch"] != PAPER_SETTING["arch"]:
        common.append(f"network {cell['arch']} (paper: {PAPER_SETTING['arch']})")
    if cell.get("epochs") != PAPER_EPOCHS:
        common.append(f"{cell.get('epochs')} epochs (paper: {PAPER_EPOCHS})")
    if cell["n"] < MIN_SEEDS:
        common.append(f"{cell['n']} seed{'s' if cell['n'] != 1 else ''} (needs at least {MIN_SEEDS}, paper: 10)")
    test_points = []
    if cell.get("test_points") not in ("all", PAPER_TEST_POINTS):
        test_points.append(f"{cell.get('test_points')} test points (paper: all {PAPER_TEST_POINTS})")
    pgd = [] if cell.get("pgd") == PAPER_PGD else [f"{cell.get('pgd')} (paper: {PAPER_PGD})"]
    aa_points = cell.get("aa_points")
    aa = (
        []
        if aa_points == PAPER_TEST_POINTS
        else [
            "AutoAttack not run"
            if aa_points == "none"
            else f"AutoAttack on {aa_points} test points (paper: all {PAPER_TEST_POINTS})"
        ]
    )
    return {"SA": common + test_points, "RA-PGD": common + test_points + pgd, "RA-AA": common + aa}


def compare(cell: dict, paper: dict) -> tuple[dict[str, list[str]], dict[str, bool | None]]:
    """(what differs, within the paper's spread) per metric label for a summary row and the
    paper's row of the same method and eps; the verdict is None where something differs."""
    differences = protocol_differences(cell)
    spread = {
        label: None
        if differences[label]
        else within_spread(
            cell[f"{metric}_mean"], cell[f"{metric}_std"], paper[f"{metric}_mean"], paper[f"{metric}_std"]
        )
        for metric, label in METRICS.items()
    }
    return differences, spread


def verdict(differences: dict[str, list[str]], spread: dict[str, bool | None]) -> str:
    """One cell's comparison in words: ``SA yes, RA-PGD yes, RA-AA NO`` (within the paper's spread
    or not), or what differs for the metrics that are not compared."""
    shared = [d for d in differences["SA"] if all(d in v for v in differences.values())]
    if shared:  # the setting itself differs: no metric compares
        rest = [d for v in differences.values() for d in v if d not in shared]
        return "not compared: " + "; ".join(dict.fromkeys(shared + rest))
    words = {True: "yes", False: "NO", None: "—"}
    return ", ".join(
        f"{label} not compared ({'; '.join(diffs)})" if diffs else f"{label} {words[spread.get(label)]}"
        for label, diffs in differences.items()
    )


def aa_weaker_models(runs: pd.DataFrame) -> list[str]:
    """Per run: its models (``early-stopped``, ``last epoch``) whose RA-AA is above their RA-PGD on
    the same points (:data:`AA_WEAKER_RULE`), joined by ", "; empty where there are none."""
    flags = []
    for _, run in runs.iterrows():
        weaker = []
        for prefix, model in MODELS.items():
            aa, pgd = run.get(prefix + "ra_aa"), run.get(prefix + "ra_pgd_aa_subset")
            if (
                aa is not None
                and pgd is not None
                and not pd.isna(aa)
                and not pd.isna(pgd)
                and float(aa) > float(pgd) + AA_TOLERANCE
            ):
                weaker.append(model)
        flags.append(", ".join(weaker))
    return flags


# -- Table 1 in the paper's layout -----------------------------------------------------------

NOT_IN_PAPER = "not in the paper"


def table1(summary: pd.DataFrame, paper: pd.DataFrame | None = None) -> pd.DataFrame:
    """The paper's Table 1 layout for every (dataset, arch) setting that has a cell at one of its
    eps: one row per method (the paper's, then ours that it lacks, marked "not in the paper"); per
    eps, SA, RA-PGD, RA-AA and seconds per epoch, ours (mean ± std, early-stopped model) beside the
    paper's, and the verdict (:func:`verdict`). Strings, ready for Markdown or HTML."""
    paper = paper_table() if paper is None else paper
    paper = paper.astype({"eps": float}).set_index(["method", "eps"])
    eps_values = sorted(set(paper.index.get_level_values("eps")))
    ours = summary[(summary["variant"] == "") & summary["eps"].isin(eps_values)]
    paper_methods = list(dict.fromkeys(paper.index.get_level_values("method")))
    rows = []
    for (dataset, arch), setting in ours.groupby(["dataset", "arch"], sort=True):
        cells = setting.set_index(["method", "eps"])
        methods = paper_methods + sorted(set(setting["method"]) - set(paper_methods), key=method_rank)
        for method in sorted(methods, key=method_rank):
            row = {"dataset": dataset, "arch": arch, "method": method_label(method)}
            for eps in eps_values:
                head = f"ε={eps:g}"
                cell = cells.loc[(method, eps)] if (method, eps) in cells.index else None
                known = (method, eps) in paper.index
                for metric, label in METRICS.items():
                    row[f"{head} {label} ours"] = (
                        "—" if cell is None else fmt_pm(cell[f"{metric}_mean"], cell[f"{metric}_std"])
                    )
                    row[f"{head} {label} paper"] = (
                        fmt_pm(paper.loc[(method, eps), f"{metric}_mean"], paper.loc[(method, eps), f"{metric}_std"])
                        if known
                        else NOT_IN_PAPER
                    )
                row[f"{head} s/epoch ours"] = (
                    "—" if cell is None else fmt_pm(cell["epoch_seconds_mean"], cell["epoch_seconds_std"], 1)
                )
                row[f"{head} s/epoch paper"] = (
                    fmt(paper.loc[(method, eps), "time_per_epoch_s"], 0) if known else NOT_IN_PAPER
                )
                if not known:
                    row[f"{head} vs paper"] = NOT_IN_PAPER
                elif cell is None:
                    row[f"{head} vs paper"] = "not run"
                else:
                    facts = {**cell.to_dict(), "dataset": dataset, "arch": arch}
                    row[f"{head} vs paper"] = verdict(*compare(facts, paper.loc[(method, eps)].to_dict()))
            rows.append(row)
    return pd.DataFrame(rows)


def cost_table(runs: pd.DataFrame, paper: pd.DataFrame | None = None) -> pd.DataFrame:
    """Seconds per training epoch by dataset x arch x method, its ratio to Fast-AT in the same
    setting, and the paper's ratio (its seconds were measured on another GPU; only ratios compare)."""
    paper = paper_table() if paper is None else paper
    paper_seconds = paper.groupby("method")["time_per_epoch_s"].first()
    finished = runs[runs["status"] == RunStatus.FINISHED].copy()
    finished["epoch_seconds"] = pd.to_numeric(finished["epoch_seconds"], errors="coerce")
    frame = (
        finished.groupby(["dataset", "arch", "method"])["epoch_seconds"]
        .agg(n="count", seconds_mean="mean", seconds_std=lambda s: s.std(ddof=1))
        .reset_index()
    )
    reference = frame[frame["method"] == "fast_at"].set_index(["dataset", "arch"])["seconds_mean"]
    frame["rel_fast_at"] = [
        row.seconds_mean / reference.get((row.dataset, row.arch), math.nan) for row in frame.itertuples()
    ]
    frame["paper_rel_fast_at"] = [
        paper_seconds.get(m, math.nan) / paper_seconds.get("fast_at", math.nan) for m in frame["method"]
    ]
    return _sort(frame, ["dataset", "arch", "method"])


RUN_TABLE_COLUMNS = [
    "run_id",
    "dataset",
    "arch",
    "method",
    "eps",
    "seed",
    "variant",
    "status",
    "sa",
    "ra_pgd",
    "ra_pgd_aa_subset",
    "ra_aa",
    "last_sa",
    "last_ra_pgd",
    "last_ra_pgd_aa_subset",
    "last_ra_aa",
    "best_epoch",
    "epochs_done",
    "epoch_seconds",
    "co",
    "co_epoch",
    "error",
]


def run_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Every selected run with its test metrics and CO verdict."""
    return _sort(with_variants(runs)[RUN_TABLE_COLUMNS], ["dataset", "arch", "method", "eps", "seed"])


def protocol_notes(runs: pd.DataFrame) -> dict[str, str]:
    """The evaluation protocol of ``runs`` (one setting), each entry's distinct values joined."""
    notes = {
        "runs": str(len(runs)),
        "seeds": " ".join(str(s) for s in sorted(set(runs["seed"]))),
        "epochs": " / ".join(str(e) for e in sorted(set(runs.get("epochs", pd.Series()).dropna()))),
    }
    keys = []
    for protocol in runs["protocol"]:
        keys += [k for k in (protocol or {}) if k not in keys]
    for key in keys:
        values = []
        for protocol in runs["protocol"]:
            value = (protocol or {}).get(key)
            if isinstance(value, dict):  # versions: "torch 2.5.1, torchvision 0.20.1, ..."
                value = ", ".join(f"{k} {v if v is not None else 'not installed'}" for k, v in value.items())
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
        for metric, label in SUMMARY_METRICS.items():
            out[f"{label} (%), {model}"] = [
                fmt_pm(m, s) for m, s in zip(summary[f"{prefix}{metric}_mean"], summary[f"{prefix}{metric}_std"])
            ]
    out["s/epoch"] = [fmt_pm(m, s, 1) for m, s in zip(summary["epoch_seconds_mean"], summary["epoch_seconds_std"])]
    out["CO runs"] = [
        "n/a" if m in NOT_JUDGED else f"{c}/{j}"
        for c, j, m in zip(summary["co_runs"], summary["co_judged"], summary["method"])
    ]
    out["AA weaker than PGD"] = [f"{w} run{'s' if w != 1 else ''}" if w else "" for w in summary["aa_weaker_runs"]]
    return out


def display_cost(cost: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "dataset": cost["dataset"],
            "arch": cost["arch"],
            "method": cost["method"].map(method_label),
            "n": cost["n"],
            "s/epoch": [fmt_pm(m, s, 1) for m, s in zip(cost["seconds_mean"], cost["seconds_std"])],
            "x Fast-AT (ours)": [fmt(r) for r in cost["rel_fast_at"]],
            "x Fast-AT (paper)": [fmt(r) for r in cost["paper_rel_fast_at"]],
        }
    )


def display_runs(table: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "run": table["run_id"],
            "method": table["method"].map(method_label),
            "eps": table["eps"].map("{:g}".format),
            "seed": table["seed"],
            "status": table["status"],
        }
    )
    for column in (
        "sa",
        "ra_pgd",
        "ra_pgd_aa_subset",
        "ra_aa",
        "last_sa",
        "last_ra_pgd",
        "last_ra_pgd_aa_subset",
        "last_ra_aa",
    ):
        out[column] = [fmt(v) for v in table[column]]
    out["AA weaker than PGD"] = aa_weaker_models(table)
    out["best epoch"] = [fmt(v, 0) for v in table["best_epoch"]]
    out["co"] = [
        "n/a" if m in NOT_JUDGED else "?" if pd.isna(v) else ("CO" if v else "no")
        for v, m in zip(table["co"], table["method"])
    ]
    out["co epoch"] = [fmt(v, 0) for v in table["co_epoch"]]
    return out
