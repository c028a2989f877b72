"""The report's tables: our results over seeds, the paper's Table 1 beside them, training cost.

A cell is one configuration, seeds aside (:mod:`.cells`). Means, standard deviations and 95%
confidence intervals are over its finished runs (seeds); the standard deviation is the sample one
(ddof=1), as papers report it, and it and the interval are undefined for a single seed
(:mod:`.stats`).
"""

from __future__ import annotations

import math
from importlib import resources

import pandas as pd

from ..store.status import RunStatus
from . import cells as cell_rules
from .co import NOT_JUDGED
from .names import arch_name, dataset_name, setting_title
from .palette import method_label, method_rank
from .stats import interval

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
    f"PreActResNet-18, {PAPER_EPOCHS} epochs, the paper's training settings (batch 128, cyclic learning rate to "
    f"0.2, momentum 0.9, weight decay 5e-4, every training point) and the method's default hyperparameters, at "
    f"least {MIN_SEEDS} seeds (the paper: 10), and for SA and RA-PGD "
    f"({PAPER_PGD}) all {PAPER_TEST_POINTS} test points, for RA-AA AutoAttack (standard) on all "
    f"{PAPER_TEST_POINTS} test points too. Only such cells and metrics are listed; the others are named once, "
    f"with what differs."
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


def _sort(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    key = lambda col: col.map(method_rank) if col.name == "method" else col  # noqa: E731
    return frame.sort_values(by, key=key).reset_index(drop=True)


def summary_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per cell (dataset x arch x method x eps x configuration, :mod:`.cells`): n seeds,
    mean, std and 95% CI half-width (``_ci``) of every metric for the early-stopped and the
    last-epoch model, seconds per epoch, CO count, and whether its runs ran different method
    code (``method_code_differs``; a record without one counts as a version of its own)."""
    finished = cell_rules.prepared(runs)
    finished = finished[finished["status"] == RunStatus.FINISHED]
    rows = []
    for _, group in finished.groupby("cell", sort=False):
        first = group.iloc[0]
        row = {key: first[key] for key in CELL}
        row.update(n=len(group), seeds=" ".join(str(s) for s in sorted(group["seed"])), **cell_protocol(group))
        row["settings_vs_paper"] = settings_vs_paper(cell_rules.settings(first.to_dict()))
        for prefix in MODELS:
            for metric in SUMMARY_METRICS:
                values = pd.to_numeric(
                    group.get(prefix + metric, pd.Series(index=group.index, dtype=float)), errors="coerce"
                )
                row[f"{prefix}{metric}_mean"], row[f"{prefix}{metric}_std"] = values.mean(), values.std(ddof=1)
                row[f"{prefix}{metric}_ci"] = interval(values).half
        seconds = pd.to_numeric(group["epoch_seconds"], errors="coerce")
        codes = group["method_code"] if "method_code" in group else pd.Series([None] * len(group))
        row.update(
            epoch_seconds_mean=seconds.mean(),
            epoch_seconds_std=seconds.std(ddof=1),
            epoch_seconds_ci=interval(seconds).half,
            co_runs=int((group["co"] == True).sum()),  # noqa: E712  (nullable booleans: NA is not True)
            co_judged=int(group["co"].notna().sum()),
            aa_weaker_runs=sum(bool(m) for m in aa_weaker_models(group)),
            cell=first["cell"],
            pair=first["pair"],
            method_code_differs=len({None if pd.isna(c) else c for c in codes}) > 1,
        )
        rows.append(row)
    columns = (
        CELL
        + ["n", "seeds", *PROTOCOL_COLUMNS]
        + [f"{p}{m}_{s}" for p in MODELS for m in SUMMARY_METRICS for s in ("mean", "std")]
        + ["epoch_seconds_mean", "epoch_seconds_std", "co_runs", "co_judged", "aa_weaker_runs"]
        + [f"{p}{m}_ci" for p in MODELS for m in SUMMARY_METRICS]
        + ["epoch_seconds_ci", "cell", "pair", "method_code_differs", "settings_vs_paper"]
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
    ours = summary
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
                    "variant": cell["variant"],
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
        "variant",
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
    return _sort(pd.DataFrame(rows, columns=columns), ["dataset", "arch", "method", "eps", "variant"])


# -- the protocol of a cell, and what differs from the paper's ---------------------------------

# The paper's training settings: RunConfig's defaults (suite/config/run_config.py).
PAPER_TRAINING = ("batch_size", "lr", "lr_schedule", "momentum", "weight_decay", "train_points")


def settings_vs_paper(run_settings: dict) -> str:
    """The training settings and hyperparameters of a cell (:func:`suite.report.cells.settings`)
    that are not the paper's: ``lr 0.05 (paper: 0.2); lmbda 1 (paper: 10)``; empty where all are.
    A setting the record lacks (None) is not held against it; ``train_points`` None is all of them."""
    from ..config.run_config import RunConfig
    from ..errors import SuiteError
    from ..methods import resolve_hparams

    paper = RunConfig()
    out = []
    for name in PAPER_TRAINING:
        value, default = run_settings.get(name), cell_rules.normal(getattr(paper, name))
        if value is not None and value != default:
            out.append(f"{name} {cell_rules.show(value, name)} (paper: {cell_rules.show(default, name)})")
    try:
        defaults = resolve_hparams(run_settings["method"], run_settings["eps"])
    except (SuiteError, KeyError, TypeError):  # a method this version does not know: nothing to hold against it
        defaults = {}
    for name, default in defaults.items():
        value = run_settings.get(cell_rules.HP + name)
        if value is not None and value != cell_rules.normal(default):
            out.append(f"{name} {cell_rules.show(value)} (paper: {cell_rules.show(cell_rules.normal(default))})")
    return "; ".join(out)


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
    if cell.get("settings_vs_paper"):
        common += cell["settings_vs_paper"].split("; ")
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


def paper_comparison_display(comparison: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """(the comparable rows of :func:`comparison_table` as strings: ours and the paper's mean ± std,
    the difference and the spread verdict; one sentence naming every other cell and metric once,
    grouped by what differs from the paper's protocol; empty when there are none)."""
    comparable = comparison[comparison["differs"] == ""]
    shown = pd.DataFrame(
        {
            "setting": [setting_title(d, a) for d, a in zip(comparable["dataset"], comparable["arch"])],
            "method": method_names(comparable),
            "eps (/255)": comparable["eps"].map("{:g}".format),
            "metric (%)": comparable["metric"],
            "n": comparable["n"],
            "ours": [fmt_pm(m, s) for m, s in zip(comparable["ours_mean"], comparable["ours_std"])],
            "paper": [fmt_pm(m, s) for m, s in zip(comparable["paper_mean"], comparable["paper_std"])],
            "ours - paper": [f"{d:+.2f}" for d in comparable["delta"]],
            "within the paper's spread": [{True: "yes", False: "NO"}.get(v, "—") for v in comparable["within_spread"]],
        }
    )
    if len(shown.drop_duplicates("setting")) == 1:
        shown = shown.drop(columns="setting")
    reasons: dict[tuple, dict[str, list[str]]] = {}  # cell -> {what differs: the metrics it keeps out}
    for row in comparison[comparison["differs"] != ""].itertuples():
        cell = (row.dataset, row.arch, row.method, row.variant, row.eps)
        for differs in row.differs.split("; "):
            reasons.setdefault(cell, {}).setdefault(differs, []).append(row.metric)
    groups: dict[tuple, dict[str, list[str]]] = {}  # (dataset, arch, why) -> {method: [eps]}
    for (dataset, arch, method, variant, eps), why in reasons.items():
        metrics = set().union(*why.values())
        said = "; ".join(d + (f" [{', '.join(m)}]" if set(m) != metrics else "") for d, m in why.items())
        name = method_label(method) + (f" ({variant})" if variant else "")
        groups.setdefault((dataset, arch, said), {}).setdefault(name, []).append(f"{eps:g}")
    parts = [
        f"{setting_title(dataset, arch)}: "
        + "; ".join(f"{name} at ε {', '.join(eps)}" for name, eps in by_method.items())
        + f", because of {said}"
        for (dataset, arch, said), by_method in groups.items()
    ]
    line = f"Not compared with the paper, as their protocol is not the paper's: {'. '.join(parts)}." if parts else ""
    return shown, line


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
SEVERAL = "several configurations (see the summary)"


def table1(summary: pd.DataFrame, paper: pd.DataFrame | None = None) -> pd.DataFrame:
    """The paper's Table 1 layout for every (dataset, arch) setting that has a cell at one of its
    eps: one row per method (the paper's, then ours that it lacks, marked "not in the paper"); per
    eps, SA, RA-PGD, RA-AA and seconds per epoch, ours (mean ± std, early-stopped model) beside the
    paper's, and the verdict (:func:`verdict`); a method and eps of several cells says so
    (:data:`SEVERAL`). Strings, for the CSV export."""
    paper = paper_table() if paper is None else paper
    paper = paper.astype({"eps": float}).set_index(["method", "eps"])
    eps_values = sorted(set(paper.index.get_level_values("eps")))
    ours = summary[summary["eps"].isin(eps_values)]
    paper_methods = list(dict.fromkeys(paper.index.get_level_values("method")))
    rows = []
    for (dataset, arch), setting in ours.groupby(["dataset", "arch"], sort=True):
        several = setting.groupby(["method", "eps"]).size().loc[lambda n: n > 1].index
        cells = setting.set_index(["method", "eps"])
        methods = paper_methods + sorted(set(setting["method"]) - set(paper_methods), key=method_rank)
        for method in sorted(methods, key=method_rank):
            row = {"dataset": dataset, "arch": arch, "method": method_label(method)}
            for eps in eps_values:
                head = f"ε={eps:g}"
                multiple = (method, eps) in several
                cell = cells.loc[(method, eps)] if (method, eps) in cells.index and not multiple else None
                known = (method, eps) in paper.index
                for metric, label in METRICS.items():
                    row[f"{head} {label} ours"] = (
                        SEVERAL
                        if multiple
                        else "—"
                        if cell is None
                        else fmt_pm(cell[f"{metric}_mean"], cell[f"{metric}_std"])
                    )
                    row[f"{head} {label} paper"] = (
                        fmt_pm(paper.loc[(method, eps), f"{metric}_mean"], paper.loc[(method, eps), f"{metric}_std"])
                        if known
                        else NOT_IN_PAPER
                    )
                row[f"{head} s/epoch ours"] = (
                    SEVERAL
                    if multiple
                    else "—"
                    if cell is None
                    else fmt_pm(cell["epoch_seconds_mean"], cell["epoch_seconds_std"], 1)
                )
                row[f"{head} s/epoch paper"] = (
                    fmt(paper.loc[(method, eps), "time_per_epoch_s"], 0) if known else NOT_IN_PAPER
                )
                if not known:
                    row[f"{head} vs paper"] = NOT_IN_PAPER
                elif multiple:
                    row[f"{head} vs paper"] = SEVERAL
                elif cell is None:
                    row[f"{head} vs paper"] = "not run"
                else:
                    facts = {**cell.to_dict(), "dataset": dataset, "arch": arch}
                    row[f"{head} vs paper"] = verdict(*compare(facts, paper.loc[(method, eps)].to_dict()))
            rows.append(row)
    return pd.DataFrame(rows)


def cost_table(runs: pd.DataFrame, paper: pd.DataFrame | None = None) -> pd.DataFrame:
    """Seconds per training epoch by dataset x arch x method (over its runs at every eps: the cost of
    an epoch does not depend on the budget), with the 95% CI half-width (``seconds_ci``), its ratio to
    Fast-AT in the same setting, and the paper's ratio (its seconds were measured on another GPU; only
    ratios compare)."""
    paper = paper_table() if paper is None else paper
    paper_seconds = paper.groupby("method")["time_per_epoch_s"].first()
    finished = runs[runs["status"] == RunStatus.FINISHED].copy()
    finished["epoch_seconds"] = pd.to_numeric(finished["epoch_seconds"], errors="coerce")
    frame = (
        finished.groupby(["dataset", "arch", "method"])["epoch_seconds"]
        .agg(n="count", seconds_mean="mean", seconds_std=lambda s: s.std(ddof=1))
        .reset_index()
    )
    frame["seconds_ci"] = [
        interval(group).half for _, group in finished.groupby(["dataset", "arch", "method"])["epoch_seconds"]
    ]
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
    "cell",
]


def run_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Every selected run with its test metrics, CO verdict, cell and label (:mod:`.cells`, over
    all the selected runs, finished or not)."""
    return _sort(
        cell_rules.with_cells(runs)[RUN_TABLE_COLUMNS], ["dataset", "arch", "method", "eps", "variant", "seed"]
    )


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


def fmt_pm(mean, spread, digits: int = 2) -> str:
    """``45.47 ± 0.39``; the mean alone when the spread (a std or a CI half-width) is undefined;
    ``—`` when there is no mean."""
    if fmt(mean) == "—":
        return "—"
    return fmt(mean, digits) if fmt(spread) == "—" else f"{fmt(mean, digits)} ± {fmt(spread, digits)}"


class Mark(str):
    """A table cell's text with a mark: ``best`` or ``tied`` (with the best). Each renderer draws
    the mark its own way (Markdown ``**bold**`` / ``*italic*``, HTML, LaTeX)."""

    def __new__(cls, text: str, kind: str | None = None):
        mark = super().__new__(cls, text)
        mark.kind = kind
        return mark


EMPTY = ("—", "")


def drop_empty(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """``frame`` without its columns that are empty (``—`` or blank) in every row, and their names."""
    empty = [c for c in frame.columns if len(frame) and all(str(v) in EMPTY for v in frame[c])]
    return frame.drop(columns=empty), empty


def method_names(summary: pd.DataFrame) -> list[str]:
    """A cell's method as a table names it: ``Fast-AT``, or ``Fast-AT (lr=0.05)`` for a labelled cell."""
    return [method_label(m) + (f" ({v})" if v else "") for m, v in zip(summary["method"], summary["variant"])]


def display_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary of one setting as strings (mean ± 95% CI over seeds), ready for Markdown or HTML."""
    out = pd.DataFrame({"method": summary["method"].map(method_label), "eps (/255)": summary["eps"].map("{:g}".format)})
    if (summary["variant"] != "").any():
        out["configuration"] = summary["variant"]
    out["n"] = summary["n"]
    for prefix, model in MODELS.items():
        for metric, label in SUMMARY_METRICS.items():
            out[f"{label} (%), {model}"] = [
                fmt_pm(m, h) for m, h in zip(summary[f"{prefix}{metric}_mean"], summary[f"{prefix}{metric}_ci"])
            ]
    out["s/epoch"] = [fmt_pm(m, h, 1) for m, h in zip(summary["epoch_seconds_mean"], summary["epoch_seconds_ci"])]
    out["CO runs"] = [
        "n/a" if m in NOT_JUDGED else f"{c}/{j}"
        for c, j, m in zip(summary["co_runs"], summary["co_judged"], summary["method"])
    ]
    if summary["aa_weaker_runs"].any():
        out["AA weaker than PGD"] = [f"{w} run{'s' if w != 1 else ''}" if w else "" for w in summary["aa_weaker_runs"]]
    if summary["method_code_differs"].any():
        out["method code"] = ["differs between its runs" if d else "" for d in summary["method_code_differs"]]
    return out


def display_cost(cost: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "dataset": cost["dataset"].map(dataset_name),
            "arch": cost["arch"].map(arch_name),
            "method": cost["method"].map(method_label),
            "n": cost["n"],
            "s/epoch": [fmt_pm(m, h, 1) for m, h in zip(cost["seconds_mean"], cost["seconds_ci"])],
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
