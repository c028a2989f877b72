"""Assemble a report folder: tables as CSV, figures as PNG and PDF, ``report.md`` and a
self-contained ``report.html`` (figures embedded as base64 PNG data URIs, so it reads offline).

The report is first built as a list of blocks (heading, paragraph, key-value list, table,
figure); one small renderer turns the blocks into Markdown, another into HTML.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

import pandas as pd

from ..config.numbers import tidy_frame
from ..store.status import RunStatus
from . import figures as figs
from . import tables
from .co import CO_RULE
from .sources import RunSet

FIGURE_TITLES = {
    "robust_vs_eps": "Robust accuracy against training ε (catastrophic overfitting)",
    "epoch_curves": "Per-epoch validation accuracy, every method at every ε",
    "co_diagnostics": "Catastrophic-overfitting diagnostics per epoch",
    "clean_vs_robust": "Clean against robust accuracy",
    "lambda_sensitivity": "λ sensitivity (tuning study)",
    "training_cost": "Training cost",
}
TABLE_FILES = ("summary.csv", "paper_comparison.csv", "table1.csv", "cost.csv", "runs.csv")


@dataclass
class Report:
    folder: Path
    markdown: Path
    html: Path
    figures: dict[str, Path] = field(default_factory=dict)  # name -> PNG (a PDF lies beside it)
    tables: dict[str, Path] = field(default_factory=dict)


def paper_notes() -> list[str]:
    """The comment lines of the paper's Table 1 file: what its numbers are and how they were measured."""
    text = (resources.files("suite") / "reference" / "paper_table1.csv").read_text()
    return [line.lstrip("# ").strip() for line in text.splitlines() if line.startswith("#")]


def make_figures(runset: RunSet, summary: pd.DataFrame, cost: pd.DataFrame, trials: pd.DataFrame | None) -> dict:
    """Every figure that has data, by name."""
    made = {
        "robust_vs_eps": figs.robust_vs_eps(summary),
        "epoch_curves": figs.epoch_curves(runset.runs, runset.histories),
        "co_diagnostics": figs.co_diagnostics(runset.runs, runset.histories),
        "clean_vs_robust": figs.clean_vs_robust(runset.runs),
        "lambda_sensitivity": figs.lambda_sensitivity(trials) if trials is not None else None,
        "training_cost": figs.training_cost(cost),
    }
    return {name: fig for name, fig in made.items() if fig is not None}


def _blocks(runset, summary, comparison, table1, cost, run_table, figures, title, selection) -> list[tuple]:
    runs = runset.runs
    blocks = [
        ("h1", title),
        (
            "p",
            f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC from {runset.source}. "
            f"Selection: {selection or 'all runs'}. {len(runs)} runs, {len(runset.finished)} finished.",
        ),
        ("h2", "Rules"),
        (
            "kv",
            {
                "mean ± std": "over the finished runs (seeds) of a cell; std is the sample standard deviation "
                "(ddof=1), shown as the mean alone for a single seed",
                "early-stopped / last epoch": "the model of the epoch with the best validation robust accuracy "
                "/ the model after the last epoch",
                "catastrophic overfitting": CO_RULE,
                "compared with the paper": tables.PROTOCOL_RULE,
                "within the paper's spread": tables.SPREAD_RULE,
                "RA-PGD on AA points": "RA-PGD on the test points AutoAttack attacks (the first aa_points), "
                "from the same PGD attack: RA-AA compares with it, like for like",
                "AutoAttack weaker than PGD": tables.AA_WEAKER_RULE,
            },
        ),
    ]
    blocks.append(("h2", "Results"))
    if summary.empty:
        blocks.append(("p", "No finished runs are selected."))
    for (dataset, arch), cell in figs.by_setting(summary):
        setting_runs = runs[
            (runs["dataset"] == dataset) & (runs["arch"] == arch) & (runs["status"] == RunStatus.FINISHED)
        ]
        blocks += [
            ("h3", f"{dataset}, {arch}"),
            ("kv", tables.protocol_notes(setting_runs)),
            ("table", tables.display_summary(cell)),
        ]
    weaker = run_table[[bool(m) for m in tables.aa_weaker_models(run_table)]] if not run_table.empty else run_table
    if not weaker.empty:
        blocks += [
            ("h3", "Flagged: AutoAttack weaker than PGD on the same points"),
            ("p", tables.AA_WEAKER_RULE),
            ("table", tables.display_runs(weaker)),
        ]
    if not table1.empty:
        blocks += [
            ("h2", "Beside the paper's Table 1"),
            ("p", " ".join(paper_notes())),
            ("p", tables.PROTOCOL_RULE),
            ("p", tables.SPREAD_RULE),
        ]
        for (dataset, arch), layout in table1.groupby(["dataset", "arch"], sort=False):
            ours = runs[(runs["dataset"] == dataset) & (runs["arch"] == arch) & (runs["status"] == RunStatus.FINISHED)]
            blocks += [
                ("h3", f"{dataset}, {arch}"),
                ("kv", tables.protocol_notes(ours)),
                ("table", layout.drop(columns=["dataset", "arch"])),
            ]
    if not cost.empty:
        blocks += [
            ("h2", "Training cost"),
            (
                "p",
                "Mean wall-clock seconds of a training epoch (per-epoch validation excluded), measured by each "
                "run on its own device; the ratio to Fast-AT in the same setting compares with the paper's "
                "ratio (its seconds are from a Tesla P100, so only ratios compare).",
            ),
            ("table", tables.display_cost(cost)),
        ]
    blocks.append(("h2", "Figures"))
    for name, fig in figures.items():
        caption = " ".join(getattr(figs, name).__doc__.split(")", 1)[1].split())  # the docstring after "(n)"
        blocks.append(("figure", name, FIGURE_TITLES[name], caption))
    if not run_table.empty:
        blocks += [("h2", "Runs"), ("table", tables.display_runs(run_table))]
    unfinished = run_table[run_table["status"] != RunStatus.FINISHED]
    if not unfinished.empty:
        blocks += [
            ("h3", "Runs left out of the tables (not finished)"),
            ("table", unfinished[["run_id", "status", "error"]].fillna("—")),
        ]
    return blocks


def markdown_table(frame: pd.DataFrame) -> str:
    cell = lambda v: str(v).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(cell(c) for c in frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
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
            out.append(body[0].to_html(index=False, border=0, escape=True))
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


def build_report(
    runset: RunSet,
    folder: Path,
    *,
    title: str = "Fast-BAT reproduction report",
    trials: pd.DataFrame | None = None,
    selection: str = "",
) -> Report:
    """Write the report of ``runset`` (and of a study's ``trials``) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in [
        *(folder / f"{n}.{ext}" for n in FIGURE_TITLES for ext in ("png", "pdf")),
        *(folder / name for name in TABLE_FILES),
    ]:
        stale.unlink(missing_ok=True)
    summary = tables.summary_table(runset.runs)
    comparison = tables.comparison_table(summary)
    table1 = tables.table1(summary)
    cost = tables.cost_table(runset.runs)
    run_table = tables.run_table(runset.runs)
    report = Report(folder, folder / "report.md", folder / "report.html")
    for name, frame in zip(TABLE_FILES, (summary, comparison, table1, cost, run_table)):
        if not frame.empty:
            tidy_frame(frame).to_csv(folder / name, index=False)
            report.tables[name[:-4]] = folder / name
    figures = make_figures(runset, summary, cost, trials)
    for name, fig in figures.items():
        for ext in ("png", "pdf"):
            fig.savefig(
                folder / f"{name}.{ext}", dpi=150, bbox_inches="tight"
            )  # a legend wider than the panels stays whole
        report.figures[name] = folder / f"{name}.png"
    blocks = _blocks(runset, summary, comparison, table1, cost, run_table, figures, title, selection)
    report.markdown.write_text(to_markdown(blocks))
    report.html.write_text(to_html(blocks, folder))
    return report
