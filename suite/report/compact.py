"""The compact main table of a setting, as a paper prints it: one row per method, and per eps the
early-stopped model's SA, RA-PGD and RA-AA as mean ± 95% CI over seeds, with the best cell of each
column in bold and the cells statistically tied with it in italics (:data:`TIE_RULE`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from . import cells as cell_rules
from .stats import ALPHA, MIN_SEEDS, holm, paired
from .tables import METRICS, Mark, fmt_pm, method_names

TIE_RULE = (
    f"in each column of a compact table, the cells of at least {MIN_SEEDS} seeds are ranked, where there are two "
    f"or more: the highest mean is the best (bold); a cell is tied with it (italics) when a two-sided paired "
    f"t-test over the seeds they share does not tell them apart (Holm-adjusted over the column's comparisons "
    f"with the best, p >= {ALPHA:g}) or they share fewer than {MIN_SEEDS} seeds. Cells of fewer than {MIN_SEEDS} "
    f"seeds are not ranked: no ranking is claimed for them"
)
NO_RANKING = (
    f"Cells with fewer than {MIN_SEEDS} seeds are not ranked (no mark): no ranking of the methods is claimed from them."
)


@dataclass
class CompactTable:
    dataset: str
    arch: str
    frame: pd.DataFrame  # two-level columns: ("", "method"), ("ε = 8/255", "SA"), ...
    n_note: str  # "3 seeds per cell", or "" where an n column per eps says it
    unranked: bool  # some cells have fewer than MIN_SEEDS seeds


def column_marks(runs: pd.DataFrame, column: str) -> dict[str, str]:
    """{cell: "best" | "tied"} for one column (the runs of one setting and eps): :data:`TIE_RULE`."""
    values = {
        cell: dict(zip(group["seed"], pd.to_numeric(group[column], errors="coerce")))
        for cell, group in runs.groupby("cell", sort=False)
        if column in group
    }
    ranked = {cell: v for cell, v in values.items() if sum(pd.notna(x) for x in v.values()) >= MIN_SEEDS}
    if len(ranked) < 2:
        return {}
    means = {cell: pd.Series(v).mean() for cell, v in ranked.items()}
    best = max(means, key=means.get)
    others = [cell for cell in ranked if cell != best]
    tests = [paired(ranked[cell], ranked[best]) for cell in others]
    adjusted = holm([t.p if t.n >= MIN_SEEDS else float("nan") for t in tests])
    marks = {best: "best"}
    for cell, test, p in zip(others, tests, adjusted):
        if test.n < MIN_SEEDS or pd.isna(p) or p >= ALPHA:
            marks[cell] = "tied"
    return marks


def compact_tables(runs: pd.DataFrame, summary: pd.DataFrame) -> list[CompactTable]:
    """One :class:`CompactTable` per setting (dataset x arch) of ``summary``."""
    runs = cell_rules.prepared(runs)
    out = []
    for (dataset, arch), setting in summary.groupby(["dataset", "arch"], sort=False):
        eps_values = sorted(set(setting["eps"]))
        names = dict(zip(setting["cell"], method_names(setting)))
        rows = list(dict.fromkeys(names[c] for c in setting["cell"]))
        same_n = setting["n"].nunique() == 1
        table = {("", "method"): rows}
        for eps in eps_values:
            head = f"ε = {eps:g}/255"
            at = setting[setting["eps"] == eps]
            column_runs = runs[(runs["dataset"] == dataset) & (runs["arch"] == arch) & (runs["eps"] == eps)]
            if not same_n:
                by_row = dict(zip((names[c] for c in at["cell"]), at["n"]))
                table[(head, "n")] = [str(by_row.get(r, "")) for r in rows]
            for metric, label in METRICS.items():
                marks = column_marks(column_runs, metric)
                shown = {
                    names[cell]: Mark(fmt_pm(mean, half), marks.get(cell))
                    for cell, mean, half in zip(at["cell"], at[f"{metric}_mean"], at[f"{metric}_ci"])
                }
                table[(head, label)] = [shown.get(r, Mark("—")) for r in rows]
        frame = pd.DataFrame({key: pd.Series(values, dtype=object) for key, values in table.items()})
        frame.columns = pd.MultiIndex.from_tuples(list(table))
        n = int(setting["n"].iloc[0])
        note = f"{n} seed{'s' if n != 1 else ''} per cell" if same_n else ""
        out.append(CompactTable(dataset, arch, frame, note, bool((setting["n"] < MIN_SEEDS).any())))
    return out
