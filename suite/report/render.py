"""Assemble a report folder: tables as CSV, figures as PNG and PDF, ``report.md`` and a
self-contained ``report.html`` (figures embedded as base64 PNG data URIs, so it reads offline).

The report is first built as a list of blocks (heading, paragraph, key-value list, table,
figure); one small renderer turns the blocks into Markdown, another into HTML.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

import pandas as pd

from ..config.numbers import tidy_frame
from ..store.atomic import atomic_write_bytes
from ..store.status import RunStatus
from . import cells, compact, paired, stats, tables
from . import figures as figs
from .co import CO_RULE
from .compact import compact_tables
from .latex import tabular
from .names import setting_title
from .paired import DEFAULT_BASELINE, paired_table
from .palette import distinct, method_label
from .sources import RunSet

# a figure's function in suite.report.figures, where it is not named as the figure (its file name)
FIGURE_MAKERS = {"lambda_sensitivity": "tune_sensitivity"}
FIGURE_TITLES = {
    "robust_vs_eps": "Robust accuracy against training ε (catastrophic overfitting)",
    "epoch_curves": "Per-epoch validation accuracy, every method at every ε",
    "co_diagnostics": "Catastrophic-overfitting diagnostics per epoch",
    "clean_vs_robust": "Clean against robust accuracy",
    "paired_differences": "Paired differences from the baseline (forest plot)",
    "lambda_sensitivity": "Sensitivity to the searched hyperparameter (tuning study)",
    "training_cost": "Training cost",
}
TABLE_FILES = ("summary.csv", "paper_comparison.csv", "table1.csv", "cost.csv", "runs.csv", "paired.csv")
LATEX_GLOBS = ("compact_*.tex", "paper_comparison.tex")
MARK_RULE = "bold: the best of its column; italics: statistically tied with it"


@dataclass
class Report:
    folder: Path
    markdown: Path
    html: Path
    figures: dict[str, Path] = field(default_factory=dict)  # name -> PNG (a PDF lies beside it)
    tables: dict[str, Path] = field(default_factory=dict)
    latex: dict[str, Path] = field(default_factory=dict)  # name -> .tex (booktabs tabular)


def paper_notes() -> list[str]:
    """The comment lines of the paper's Table 1 file: what its numbers are and how they were measured."""
    text = (resources.files("suite") / "reference" / "paper_table1.csv").read_text()
    return [line.lstrip("# ").strip() for line in text.splitlines() if line.startswith("#")]


def slug(*parts: str) -> str:
    """A file-name part from ids: ``fashion_mnist_small_cnn``."""
    return re.sub(r"[^a-z0-9]+", "_", "_".join(parts).lower()).strip("_")


@dataclass
class Tables:
    """Everything a report shows, computed once."""

    runs: pd.DataFrame  # every selected run
    finished: pd.DataFrame  # the finished runs in their cells, one per seed (cells.prepare)
    duplicates: pd.DataFrame  # finished runs left out: same configuration and seed as a kept one
    summary: pd.DataFrame
    compact: list  # compact.CompactTable per setting
    paired: pd.DataFrame
    comparison: pd.DataFrame
    table1: pd.DataFrame
    cost: pd.DataFrame
    run_table: pd.DataFrame
    baseline: str

    @classmethod
    def of(cls, runs: pd.DataFrame, baseline: str) -> Tables:
        finished, duplicates = cells.prepare(runs)
        summary = tables.summary_table(finished)
        return cls(
            runs=runs,
            finished=finished,
            duplicates=duplicates,
            summary=summary,
            compact=compact_tables(finished, summary),
            paired=paired_table(finished, baseline),
            comparison=tables.comparison_table(summary),
            table1=tables.table1(summary),
            cost=tables.cost_table(finished[finished.get("kind", "train") != "eval"]),  # evals train nothing
            run_table=tables.run_table(runs),
            baseline=baseline,
        )


def make_figures(runset: RunSet, t: Tables, trials: pd.DataFrame | None) -> dict:
    """Every figure that has data, by name; methods without a colour of their own get distinct ones."""
    with distinct(set(t.runs["method"]) if "method" in t.runs else ()):
        return _figures(runset, t, trials)


def _figures(runset: RunSet, t: Tables, trials: pd.DataFrame | None) -> dict:
    made = {
        "robust_vs_eps": figs.robust_vs_eps(t.summary),
        "epoch_curves": figs.epoch_curves(t.finished, runset.histories),
        "co_diagnostics": figs.co_diagnostics(t.finished, runset.histories),
        "clean_vs_robust": figs.clean_vs_robust(t.finished),
        "paired_differences": figs.paired_differences(t.paired, t.baseline),
        "lambda_sensitivity": figs.tune_sensitivity(trials) if trials is not None else None,
        "training_cost": figs.training_cost(t.cost),
    }
    return {name: fig for name, fig in made.items() if fig is not None}


def column_name(column) -> str:
    """A (possibly two-level) column's name in one line: ``ε = 8/255 SA``."""
    return " ".join(str(level) for level in column if str(level)) if isinstance(column, tuple) else str(column)


class Dropped:
    """The columns left out of the report's tables because they are empty in every row, by setting."""

    def __init__(self):
        self.where: dict[str, dict[str, None]] = {}  # setting -> the names left out (ordered)

    def table(self, frame: pd.DataFrame, setting: str) -> tuple:
        kept, empty = tables.drop_empty(frame)
        names = self.where.setdefault(setting, {})
        for column in empty:  # a compact table's "ε = 8/255 RA-AA" is its "RA-AA"
            names[f"{column[-1]} (compact table)" if isinstance(column, tuple) else str(column)] = None
        return ("table", kept)

    def note(self) -> str:
        """One sentence: what was left out, and why; per setting where the settings differ."""
        said = {setting: list(names) for setting, names in self.where.items() if names}
        if not said:
            return ""
        lists = {tuple(names) for names in said.values()}
        if len(lists) == 1 and len(said) == len(self.where):
            what = "; ".join(next(iter(lists)))
        else:
            what = " / ".join(f"{setting}: {'; '.join(names)}" for setting, names in said.items())
        return f"Columns empty in every row of a table are left out of it (no run of it has a value there): {what}."


def _rules(baseline: str) -> dict[str, str]:
    return {
        "cell": cells.CELL_RULE,
        "mean ± CI": stats.INTERVAL_RULE + "; n is the number of seeds",
        "mean ± std": "beside the paper's Table 1 only, as the paper reports it: the sample standard deviation "
        "over seeds (ddof=1)",
        "best and tied": f"{compact.TIE_RULE} ({MARK_RULE})",
        f"paired comparison (baseline {method_label(baseline)})": paired.PAIRED_RULE,
        "claims": f"a ranking or a verdict rests on at least {stats.MIN_SEEDS} seeds; cells of fewer show their "
        "numbers and claim nothing",
        "early-stopped / last epoch": "the model of the epoch with the best validation robust accuracy "
        "/ the model after the last epoch",
        "catastrophic overfitting": CO_RULE,
        "compared with the paper": tables.PROTOCOL_RULE,
        "within the paper's spread": tables.SPREAD_RULE,
        "RA-PGD on AA points": "RA-PGD on the test points AutoAttack attacks (the first aa_points), "
        "from the same PGD attack: RA-AA compares with it, like for like",
        "AutoAttack weaker than PGD": tables.AA_WEAKER_RULE,
        "method code": "a cell is flagged where its runs ran different versions of the method's code "
        "(method_code in the records; a record without one counts as a version of its own)",
    }


def _results(t: Tables, dropped: Dropped, latex_files: dict[str, str]) -> list[tuple]:
    blocks = []
    if t.summary.empty:
        return [("p", "No finished runs are selected.")]
    by_setting = {(c.dataset, c.arch): c for c in t.compact}
    for (dataset, arch), cell in figs.by_setting(t.summary):
        title = setting_title(dataset, arch)
        setting_runs = t.finished[(t.finished["dataset"] == dataset) & (t.finished["arch"] == arch)]
        table = by_setting[(dataset, arch)]
        n = f" ({table.n_note})" if table.n_note else ""
        blocks += [
            ("h3", title),
            ("kv", tables.protocol_notes(setting_runs)),
            (
                "p",
                f"SA, RA-PGD and RA-AA (%) of the early-stopped model, mean ± 95% CI over seeds{n}; {MARK_RULE}. "
                f"LaTeX: {latex_files[(dataset, arch)]}.",
            ),
            dropped.table(table.frame, title),
        ]
        if table.unranked:
            blocks.append(("p", compact.NO_RANKING))
        blocks += [
            ("p", "Every cell, both models (mean ± 95% CI over seeds):"),
            dropped.table(tables.display_summary(cell), title),
        ]
    return blocks


def _paired(t: Tables) -> list[tuple]:
    if t.summary.empty:
        return []
    name = method_label(t.baseline)
    blocks = [
        ("h2", f"Paired comparison with {name}"),
        ("p", paired.PAIRED_RULE[0].upper() + paired.PAIRED_RULE[1:] + "."),
    ]
    for metric, shown in paired.display_paired(t.paired):
        blocks += [("h3", f"{metric} (%): difference from {name}"), ("table", shown)]
    lacking = []
    for (dataset, arch), setting in figs.by_setting(t.summary):
        rows = t.paired[(t.paired["dataset"] == dataset) & (t.paired["arch"] == arch)]
        if (setting["method"] != t.baseline).any() and (rows.empty or rows["pairs"].max() < 2):
            why = (
                f"no {name} cell of the same configuration"
                if rows.empty
                else f"its cells share at most {int(rows['pairs'].max())} seed with {name}'s"
            )
            lacking.append(f"{setting_title(dataset, arch)} ({why})")
    if lacking:
        blocks.append(
            ("p", f"No paired comparison (at least 2 pairs are needed, 3 for a verdict) in: {'; '.join(lacking)}.")
        )
    return blocks


def _paper(t: Tables, latex_name: str | None) -> list[tuple]:
    if t.comparison.empty:
        return []
    shown, not_compared = tables.paper_comparison_display(t.comparison)
    blocks = [
        ("h2", "Beside the paper's Table 1"),
        ("p", " ".join(paper_notes())),
        ("p", tables.PROTOCOL_RULE),
        ("p", tables.SPREAD_RULE),
    ]
    if shown.empty:
        blocks.append(("p", "No cell of this report has the paper's protocol: nothing is compared."))
    else:
        blocks += [("table", shown), ("p", f"Ours: mean ± std over seeds, as the paper's. LaTeX: {latex_name}.")]
    if not_compared:
        blocks.append(("p", not_compared))
    return blocks


def _flags(t: Tables) -> list[tuple]:
    blocks = []
    run_table = t.run_table
    weaker = run_table[[bool(m) for m in tables.aa_weaker_models(run_table)]] if not run_table.empty else run_table
    if not weaker.empty:
        blocks += [
            ("h3", "Flagged: AutoAttack weaker than PGD on the same points"),
            ("p", tables.AA_WEAKER_RULE),
            ("table", tables.display_runs(weaker)),
        ]
    mixed = t.summary[t.summary["method_code_differs"]] if not t.summary.empty else t.summary
    if not mixed.empty:
        codes = t.finished.groupby("cell")["method_code"].agg(
            lambda c: ", ".join(sorted({str(v)[:12] if isinstance(v, str) else "none recorded" for v in c}))
        )
        blocks += [
            ("h3", "Flagged: cells whose runs ran different method code"),
            (
                "p",
                "These cells mix runs of different versions of the method's code (or records without one): their "
                "spread may be the code's, not the seeds'. Rerun them on one version to compare.",
            ),
            (
                "table",
                pd.DataFrame(
                    {
                        "setting": [setting_title(d, a) for d, a in zip(mixed["dataset"], mixed["arch"])],
                        "method": tables.method_names(mixed),
                        "eps (/255)": mixed["eps"].map("{:g}".format),
                        "n": mixed["n"],
                        "method code": [codes[c] for c in mixed["cell"]],
                    }
                ),
            ),
        ]
    return blocks


def _blocks(runset, t: Tables, figures, title, selection, latex_files) -> list[tuple]:
    runs = runset.runs
    dropped = Dropped()
    results = _results(t, dropped, latex_files)
    blocks = [
        ("h1", title),
        (
            "p",
            f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC from {runset.source}. "
            f"Selection: {selection or 'all runs'}. {len(runs)} runs, {len(runset.finished)} finished. "
            f"Baseline of the paired comparison: {method_label(t.baseline)}.",
        ),
        ("h2", "Rules"),
        ("kv", _rules(t.baseline)),
        ("h2", "Results"),
    ]
    note = dropped.note()
    blocks += ([("p", note)] if note else []) + results + _flags(t) + _paired(t)
    blocks += _paper(t, latex_files.get("paper"))
    if not t.cost.empty:
        blocks += [
            ("h2", "Training cost"),
            (
                "p",
                "Mean wall-clock seconds of a training epoch (per-epoch validation excluded) ± 95% CI over runs, "
                "measured by each run on its own device; the ratio to Fast-AT in the same setting compares with the "
                "paper's ratio (its seconds are from a Tesla P100, so only ratios compare).",
            ),
            ("table", tables.display_cost(t.cost)),
        ]
    blocks.append(("h2", "Figures"))
    for name, fig in figures.items():
        maker = getattr(figs, FIGURE_MAKERS.get(name, name))
        caption = " ".join(maker.__doc__.split(")", 1)[1].split())  # the docstring after "(n)"
        blocks.append(("figure", name, FIGURE_TITLES[name], caption))
    run_table = t.run_table
    if not run_table.empty:
        blocks += [("h2", "Runs"), ("table", tables.display_runs(run_table))]
    unfinished = run_table[run_table["status"] != RunStatus.FINISHED]
    if not unfinished.empty:
        blocks += [
            ("h3", "Runs left out of the tables (not finished)"),
            ("table", unfinished[["run_id", "status", "error"]].fillna("—")),
        ]
    if not t.duplicates.empty:
        blocks += [
            ("h3", "Runs left out of the tables (the same configuration and seed as a kept run)"),
            ("table", t.duplicates[["run_id", "seed", "kept"]].rename(columns={"kept": "kept instead"})),
        ]
    return blocks


def _markdown_cell(value) -> str:
    text = str(value).replace("|", "\\|").replace("\n", " ")
    kind = getattr(value, "kind", None)
    return f"**{text}**" if kind == "best" else f"*{text}*" if kind == "tied" else text


def markdown_table(frame: pd.DataFrame) -> str:
    header = [column_name(c).replace("|", "\\|") for c in frame.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(_markdown_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def to_markdown(blocks: list[tuple]) -> str:
    out = []
    for kind, *body in blocks:
        if kind in ("h1", "h2", "h3"):
            out.append("#" * int(kind[1]) + " " + body[0])
        elif kind == "p":
            out.append(body[0])
        elif kind == "kv":
            out.append("\n".join(f"- **{k}**: {v}" for k, v in body[0].items()))
        elif kind == "table":
            out.append(markdown_table(body[0]))
        elif kind == "figure":
            name, title, caption = body
            out.append(f"### {title}\n\n![{title}]({name}.png)\n\n{caption} ([PDF]({name}.pdf))")
    return "\n\n".join(out) + "\n"


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:13px;margin:.5em 0 1.5em}th,td{padding:3px 8px;border-bottom:1px solid #ddd;
text-align:right}th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}img{max-width:100%}
dl{font-size:13px}dt{font-weight:600}dd{margin:0 0 .4em 1.2em}figcaption{font-size:13px;color:#555}"""


def _html_cell(value) -> str:
    kind = getattr(value, "kind", None)
    text = html.escape(str(value))
    return f"<strong>{text}</strong>" if kind == "best" else f"<em>{text}</em>" if kind == "tied" else text


def html_table(frame: pd.DataFrame) -> str:
    """``frame`` as an HTML table, every text escaped, marked cells bold (best) or italic (tied)."""
    shown = frame.map(_html_cell)
    if isinstance(frame.columns, pd.MultiIndex):
        shown.columns = pd.MultiIndex.from_tuples([tuple(html.escape(str(v)) for v in c) for c in frame.columns])
    else:
        shown.columns = [html.escape(str(c)) for c in frame.columns]
    return shown.to_html(index=False, border=0, escape=False)


def to_html(blocks: list[tuple], folder: Path) -> str:
    esc = html.escape
    out = []
    for kind, *body in blocks:
        if kind in ("h1", "h2", "h3"):
            out.append(f"<{kind}>{esc(body[0])}</{kind}>")
        elif kind == "p":
            out.append(f"<p>{esc(body[0])}</p>")
        elif kind == "kv":
            out.append(
                "<dl>" + "".join(f"<dt>{esc(k)}</dt><dd>{esc(str(v))}</dd>" for k, v in body[0].items()) + "</dl>"
            )
        elif kind == "table":
            out.append(html_table(body[0]))
        elif kind == "figure":
            name, title, caption = body
            data = base64.b64encode((folder / f"{name}.png").read_bytes()).decode()
            out.append(
                f'<figure><h3>{esc(title)}</h3><img alt="{esc(title)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{esc(caption)}</figcaption></figure>"
            )
    title = esc(blocks[0][1])
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{CSS}</style></head><body>\n" + "\n".join(out) + "\n</body></html>\n"
    )


def write_text(path: Path, text: str) -> None:
    """Write a report file atomically: a reader never sees half of it."""
    atomic_write_bytes(path, text.encode())


def build_report(
    runset: RunSet,
    folder: Path,
    *,
    title: str = "Fast-BAT reproduction report",
    trials: pd.DataFrame | None = None,
    selection: str = "",
    baseline: str = DEFAULT_BASELINE,
) -> Report:
    """Write the report of ``runset`` (and of a study's ``trials``) into ``folder``; ``baseline``:
    the method every other one is compared with, seed by seed (:mod:`.paired`)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    t = Tables.of(runset.runs, baseline)
    for stale in [
        *(folder / f"{n}.{ext}" for n in FIGURE_TITLES for ext in ("png", "pdf")),
        *(folder / name for name in TABLE_FILES),
        *(path for pattern in LATEX_GLOBS for path in folder.glob(pattern)),
    ]:
        stale.unlink(missing_ok=True)
    report = Report(folder, folder / "report.md", folder / "report.html")
    frames = (t.summary, t.comparison, t.table1, t.cost, t.run_table, t.paired)
    for name, frame in zip(TABLE_FILES, frames):
        if not frame.empty:
            write_text(folder / name, tidy_frame(frame).to_csv(index=False))
            report.tables[name[:-4]] = folder / name
    latex_files = {}
    for table in t.compact:
        name = f"compact_{slug(table.dataset, table.arch)}"
        kept, _ = tables.drop_empty(table.frame)
        comment = f"{setting_title(table.dataset, table.arch)}: early-stopped model, mean ± 95% CI over seeds"
        comment += f" ({table.n_note}); {MARK_RULE}" if table.n_note else f"; {MARK_RULE}"
        report.latex[name] = folder / f"{name}.tex"
        write_text(report.latex[name], tabular(kept, comment))
        latex_files[(table.dataset, table.arch)] = f"{name}.tex"
    shown, _ = tables.paper_comparison_display(t.comparison) if not t.comparison.empty else (pd.DataFrame(), "")
    if not shown.empty:
        report.latex["paper_comparison"] = folder / "paper_comparison.tex"
        comment = "Ours (mean ± std over seeds) beside the paper's Table 1, where the protocol is the paper's"
        write_text(report.latex["paper_comparison"], tabular(shown, comment))
        latex_files["paper"] = "paper_comparison.tex"
    figures = make_figures(runset, t, trials)
    for name, fig in figures.items():
        for ext in ("png", "pdf"):
            fig.savefig(
                folder / f"{name}.{ext}", dpi=150, bbox_inches="tight"
            )  # a legend wider than the panels stays whole
        report.figures[name] = folder / f"{name}.png"
    blocks = _blocks(runset, t, figures, title, selection, latex_files)
    write_text(report.markdown, to_markdown(blocks))
    write_text(report.html, to_html(blocks, folder))
    return report
