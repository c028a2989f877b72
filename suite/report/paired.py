"""Every method against a baseline, seed by seed: the paired comparison of ``suite report --baseline``.

Runs of two methods with the same seed share their data order and initialisation seed, so their
difference is measured per seed (other minus baseline) and the mean of those differences is given
with its 95% confidence interval and a two-sided paired t-test. The report shows one table per
metric (SA, RA-PGD, RA-AA of the early-stopped and of the last-epoch model): each answers its own
question ("which methods beat the baseline in RA-PGD at the last epoch?"), and its p-values are
Holm-adjusted over every comparison in it that has a test. A verdict is given only from
:data:`~suite.report.stats.MIN_SEEDS` pairs on.
"""

from __future__ import annotations

import pandas as pd

from . import cells as cell_rules
from .names import setting_title
from .palette import method_label, method_rank
from .stats import ALPHA, MIN_SEEDS, holm, paired
from .tables import METRICS, MODELS, fmt

DEFAULT_BASELINE = "fast_at"
# (column, label), in table order: the paper's metrics of the early-stopped model, then the last epoch's
PAIRED_METRICS = {
    prefix + metric: f"{label}, {model}" for prefix, model in MODELS.items() for metric, label in METRICS.items()
}
PAIRED_RULE = (
    "each method against the baseline in the same dataset, network and eps, with the same configuration apart "
    "from the method and its hyperparameters: runs are paired by seed, and the mean of the per-seed differences "
    "(method minus baseline, in points) is shown with its 95% t-based confidence interval and a two-sided paired "
    "t-test's p-value; one table per metric, its p-values Holm-adjusted over every comparison in that table that "
    "has a test (every setting, eps and method of the report). Verdict: higher or lower "
    f"where the adjusted p-value is below {ALPHA:g}, 'no difference shown' otherwise, and none with fewer than "
    f"{MIN_SEEDS} pairs"
)
COLUMNS = [
    "dataset",
    "arch",
    "eps",
    "method",
    "variant",
    "baseline",
    "baseline_variant",
    "metric",
    "column",
    "pairs",
    "seeds",
    "difference",
    "ci",
    "low",
    "high",
    "p",
    "p_holm",
    "verdict",
]


def verdict(pairs: int, difference: float, p: float, p_holm: float) -> str:
    if pairs < MIN_SEEDS:
        return f"fewer than {MIN_SEEDS} pairs"
    if pd.isna(p):
        return "no test (the differences do not vary)"
    if p_holm < ALPHA:
        return "higher" if difference > 0 else "lower"
    return "no difference shown"


def paired_table(runs: pd.DataFrame, baseline: str = DEFAULT_BASELINE) -> pd.DataFrame:
    """One row per (cell of another method, cell of the baseline, metric) that pair up on at least
    one seed: the pairs, the mean difference with its interval, p, Holm-adjusted p (over the rows of
    its metric), verdict."""
    runs = cell_rules.prepared(runs)
    rows = []
    for _, group in runs.groupby("pair", sort=False):
        base_cells = group[group["method"] == baseline]
        for _, base in base_cells.groupby("cell", sort=False):
            for _, other in group[group["method"] != baseline].groupby("cell", sort=False):
                first = other.iloc[0]
                for column, label in PAIRED_METRICS.items():
                    if column not in group:
                        continue
                    result = paired(dict(zip(other["seed"], other[column])), dict(zip(base["seed"], base[column])))
                    if result.n == 0:
                        continue
                    rows.append(
                        {
                            "dataset": first["dataset"],
                            "arch": first["arch"],
                            "eps": first["eps"],
                            "method": first["method"],
                            "variant": first["variant"],
                            "baseline": baseline,
                            "baseline_variant": base.iloc[0]["variant"],
                            "metric": label,
                            "column": column,
                            "pairs": result.n,
                            "seeds": " ".join(str(s) for s in result.seeds),
                            "difference": result.difference.mean,
                            "ci": result.difference.half,
                            "low": result.difference.low,
                            "high": result.difference.high,
                            "p": result.p,
                        }
                    )
    frame = pd.DataFrame(rows, columns=COLUMNS[:-2])
    frame["p_holm"] = float("nan")
    for _, family in frame.groupby("metric", sort=False):  # one table, one family, per metric
        frame.loc[family.index, "p_holm"] = holm(family["p"])
    frame["verdict"] = [verdict(*v) for v in zip(frame["pairs"], frame["difference"], frame["p"], frame["p_holm"])]
    order = {label: i for i, label in enumerate(PAIRED_METRICS.values())}
    key = lambda col: col.map(method_rank) if col.name == "method" else col.map(order) if col.name == "metric" else col  # noqa: E731
    return frame.sort_values(["dataset", "arch", "eps", "method", "variant", "metric"], key=key).reset_index(drop=True)


def display_paired(table: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """Per metric, its comparisons with an interval (2 pairs or more) as strings: ``+2.40 [+0.85, +3.95]``."""
    shown = table[table["pairs"] >= 2]
    return [(metric, _display(rows)) for metric, rows in shown.groupby("metric", sort=False)]


def _display(shown: pd.DataFrame) -> pd.DataFrame:
    several = shown.groupby(["dataset", "arch", "eps", "method", "variant"])["baseline_variant"].transform("nunique")
    out = pd.DataFrame(
        {
            "setting": [setting_title(d, a) for d, a in zip(shown["dataset"], shown["arch"])],
            "method": [
                method_label(m) + (f" ({v})" if v else "") + (f" vs {method_label(b)} ({bv})" if k > 1 else "")
                for m, v, b, bv, k in zip(
                    shown["method"], shown["variant"], shown["baseline"], shown["baseline_variant"], several
                )
            ],
            "eps (/255)": shown["eps"].map("{:g}".format),
            "pairs": shown["pairs"],
            "difference (points) [95% CI]": [
                f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}]"
                for d, lo, hi in zip(shown["difference"], shown["low"], shown["high"])
            ],
            "p": [fmt(p, 3) for p in shown["p"]],
            "p (Holm)": [fmt(p, 3) for p in shown["p_holm"]],
            "verdict": shown["verdict"],
        }
    )
    return out.drop(columns="setting") if out["setting"].nunique() == 1 else out
