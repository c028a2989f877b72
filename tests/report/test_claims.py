"""Tests for the report's claims: cells of one configuration, confidence intervals, paired tests with
Holm's correction, the compact table's marks, LaTeX, dropped columns, the method-code flag.

Every number is checked against a hand computation: with 3 seeds a t statistic has 2 degrees of
freedom, whose distribution has a closed form (CDF 1/2 + t / (2 sqrt(2 + t^2))).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from suite.cli import main as cli_main
from suite.commands.report import write_report
from suite.report import cells, compact, latex, names, paired, stats, tables
from suite.report import figures as figs
from suite.report.sources import RunSet, load_local

from .test_report import OFFSETS, SEEDS, T_975_DF2, write_run


def p_two_sided_df2(t: float) -> float:
    """The two-sided p-value of t with 2 degrees of freedom, in closed form."""
    return 1 - abs(t) / math.sqrt(2 + t * t)


# -- intervals, paired tests, Holm -------------------------------------------------------------


def test_the_interval_is_the_t_interval_computed_by_hand():
    # 1, 2, 6: mean 3, s^2 = (4 + 1 + 9) / 2 = 7
    i = stats.interval([1.0, 2.0, 6.0])
    assert (i.mean, i.n) == (3.0, 3)
    assert i.half == pytest.approx(T_975_DF2 * math.sqrt(7) / math.sqrt(3))
    assert (i.low, i.high) == pytest.approx((3 - i.half, 3 + i.half))
    assert T_975_DF2 == pytest.approx(4.3027, abs=1e-4)  # the tables' value
    single = stats.interval([5.0, None, float("nan")])  # missing values are dropped
    assert single.mean == 5.0 and single.n == 1 and math.isnan(single.half)  # no interval from one seed
    assert stats.interval([]).n == 0


def test_the_paired_test_pairs_by_seed_and_matches_the_closed_form():
    other = {0: 50.0, 1: 52.0, 2: 55.0, 7: 99.0}  # seed 7 has no partner
    baseline = {0: 48.0, 1: 51.0, 2: 51.0, 8: 0.0}
    result = stats.paired(other, baseline)
    # differences 2, 1, 4: mean 7/3, s^2 = 7/3, t = (7/3) / sqrt(7/9) = sqrt(7)
    assert result.n == 3 and result.seeds == (0, 1, 2)
    assert result.difference.mean == pytest.approx(7 / 3)
    assert result.difference.half == pytest.approx(T_975_DF2 * math.sqrt(7 / 3) / math.sqrt(3))
    assert result.p == pytest.approx(p_two_sided_df2(math.sqrt(7)))  # 1 - sqrt(7)/3 = 0.118
    two = stats.paired({0: 1.0, 1: 2.0}, {0: 0.0, 1: 0.0})
    assert two.n == 2 and math.isnan(two.p) and two.difference.half > 0  # an interval, but no test
    same = stats.paired({s: 1.0 for s in range(3)}, {s: 1.0 for s in range(3)})
    assert same.p == 1.0  # identical: no difference
    assert math.isnan(stats.paired({0: 3.0, 1: 4.0, 2: 5.0}, {0: 1.0, 1: 2.0, 2: 3.0}).p)  # constant: no test


def test_holm_on_a_worked_example():
    # sorted: 0.005 x 4 = 0.02; 0.01 x 3 = 0.03; 0.03 x 2 = 0.06; 0.04 x 1 = 0.04 -> max(0.06, 0.04) = 0.06
    adjusted = stats.holm([0.01, 0.04, 0.03, 0.005])
    assert list(adjusted) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # NaN is not in the family (m = 2 here), and nothing exceeds 1
    adjusted = stats.holm([0.5, float("nan"), 0.6])
    assert adjusted[0] == 1.0 and math.isnan(adjusted[1]) and adjusted[2] == 1.0
    assert stats.holm([]).size == 0
    # Holm rejects what Bonferroni does and more: 0.03 < 0.05/1 after 0.01 < 0.05/2
    assert list(stats.holm([0.01, 0.03]) < 0.05) == [True, True]


# -- cells -------------------------------------------------------------------------------------


def test_the_issues_pooling_case_gives_separate_labelled_cells_with_one_run_per_seed(tmp_path):
    """`suite report --method fast_at --eps 8` once put lr 0.2 and 0.05, PGD-10 and PGD-2 validation,
    and three runs of seed 0 into one cell "n 4, seeds 0 1"."""
    write_run(tmp_path, "fast_at", 8.0, 0, 0.0, lr=0.2, val_pgd_steps=10)
    write_run(tmp_path, "fast_at", 8.0, 1, 2.0, lr=0.2, val_pgd_steps=10)
    write_run(tmp_path, "fast_at", 8.0, 0, -10.0, lr=0.05, val_pgd_steps=10, run_id="lr-0.05")
    write_run(tmp_path, "fast_at", 8.0, 0, -20.0, lr=0.2, val_pgd_steps=2, run_id="pgd-2")
    summary = tables.summary_table(load_local(tmp_path, method=["fast_at"], eps=[8]).runs).set_index("variant")
    assert sorted(summary.index) == ["", "lr=0.05", "val_pgd_steps=2"]
    assert summary.loc["", "seeds"] == "0 1" and summary.loc["", "n"] == 2
    assert summary.loc["", "ra_pgd_mean"] == pytest.approx(45.0 + 1.0)  # 45 and 47: only its own runs
    assert summary.loc["lr=0.05", "seeds"] == "0" and summary.loc["lr=0.05", "ra_pgd_mean"] == pytest.approx(35.0)
    assert summary.loc["val_pgd_steps=2", "seeds"] == "0" and summary.loc["val_pgd_steps=2", "ra_pgd_mean"] == 25.0
    assert summary["cell"].nunique() == 3
    shown = tables.display_summary(summary.reset_index())
    assert sorted(shown["configuration"]) == ["", "lr=0.05", "val_pgd_steps=2"]


def test_labels_name_every_varying_setting_where_no_configuration_is_the_most_common():
    one = {"lr": 0.2, "hp_lmbda": 1.0, "epochs": 6.0}
    two = {"lr": 0.2, "hp_lmbda": 10.0, "epochs": 6.0}
    three = {"lr": 0.05, "hp_lmbda": 10.0, "epochs": 6.0}
    named = cells.labels({"a": one, "b": two, "c": three}, {"a": 1, "b": 1, "c": 1})
    # lr: 0.2 held by 2 runs (the reference); lmbda: 10 by 2 runs
    assert named == {"a": "lmbda=1", "b": "", "c": "lr=0.05"}
    tied = cells.labels({"a": one, "b": two}, {"a": 2, "b": 2})
    assert tied == {"a": "lmbda=1", "b": "lmbda=10"}  # no most common value: both named
    assert cells.labels({"a": one}, {"a": 3}) == {"a": ""}
    alike = cells.labels({"cell-one": {"lr": 0.1}, "cell-two": {"lr": 0.1000001}}, {"cell-one": 1, "cell-two": 1})
    assert alike == {"cell-one": "lr=0.1 [cell-o]", "cell-two": "lr=0.1 [cell-t]"}  # never one name for two cells
    assert cells.show(None, "train_points") == "all" and cells.show(8.0) == "8" and cells.show(0.05) == "0.05"


def test_settings_ignore_the_seed_and_equal_numbers_of_either_type():
    base = {"dataset": "cifar10", "arch": "small_cnn", "method": "fast_at", "eps": 8}
    a = cells.settings({**base, "config": {"seed": 0, "lr": 0.2, "epochs": 6, "hparams": {"alpha_factor": 1.25}}})
    b = cells.settings({**base, "config": {"seed": 5, "lr": 0.2, "epochs": 6.0, "hparams": {"alpha_factor": 1.25}}})
    assert a == b and "seed" not in a and a["hp_alpha_factor"] == 1.25
    c = cells.settings({**base, "config": {"seed": 0, "lr": 0.1, "epochs": 6, "hparams": {"alpha_factor": 1.25}}})
    assert cells.digest(a) != cells.digest(c)
    assert cells.digest(cells.pair_settings(a)) == cells.digest(
        cells.pair_settings({**a, "method": "fast_bat", "hp_lmbda": 10.0})
    )  # a pair holds everything fixed but the method and its hyperparameters


def set_finished(results, run_id, when):
    path = Path(results) / "runs" / run_id / "summary.json"
    summary = json.loads(path.read_text())
    summary["finished"] = when
    path.write_text(json.dumps(summary))


def test_two_runs_of_one_configuration_and_seed_keep_the_last_finished(tmp_path, capsys):
    for seed, offset in zip(SEEDS, OFFSETS):
        write_run(tmp_path, "fast_bat", 8.0, seed, offset)
    copy = write_run(tmp_path, "fast_bat", 8.0, 0, 5.0, run_id="a-copy-of-seed-0")
    original = [p.name for p in (tmp_path / "runs").iterdir() if "-s0-" in p.name][0]
    set_finished(tmp_path, original, "2026-01-01T10:00:00+00:00")
    set_finished(tmp_path, copy, "2026-01-02T10:00:00+00:00")
    summary = tables.summary_table(load_local(tmp_path).runs)
    assert len(summary) == 1 and summary.loc[0, "n"] == 3 and summary.loc[0, "seeds"] == "0 1 2"
    assert summary.loc[0, "ra_pgd_mean"] == pytest.approx((48 + 5 + 48 + 49) / 3)  # the copy, finished last
    err = capsys.readouterr().err
    assert f"keeps {copy}" in err and f"leaves out {original}" in err and err.count("warning:") == 1
    report = write_report(results_dir=tmp_path, reports_dir=tmp_path / "reports", name="dup")
    markdown = report.markdown.read_text()
    assert "the same configuration and seed as a kept run" in markdown
    assert f"| {original} | 0 | {copy} |" in markdown


# -- the paired comparison ---------------------------------------------------------------------


@pytest.fixture
def paired_results(tmp_path):
    """fast_at seeds 0-2 and fast_bat seeds 0-2 at eps 8, RA-PGD fast_at 45, 46, 48 and fast_bat
    48, 48, 49 (per-seed differences 3, 2, 1); fast_bat with lr 0.1 (no partner); fast_bat seeds 1-3
    at eps 16 (two partners)."""
    for seed, offset in zip(SEEDS, (0.0, 1.0, 3.0)):
        write_run(tmp_path, "fast_at", 8.0, seed, offset)
        write_run(tmp_path, "fast_at", 16.0, seed, offset)
    for seed, offset in zip(SEEDS, (0.0, 0.0, 1.0)):
        write_run(tmp_path, "fast_bat", 8.0, seed, offset)
        write_run(tmp_path, "fast_bat", 8.0, seed, offset, lr=0.1, run_id=f"lr-0.1-s{seed}")
    for seed in (1, 2, 3):
        write_run(tmp_path, "fast_bat", 16.0, seed, 0.0)
    return tmp_path


def test_the_paired_comparison_pairs_runs_by_seed_within_one_configuration(paired_results):
    table = paired.paired_table(load_local(paired_results).runs)
    assert set(table["baseline"]) == {"fast_at"} and set(table["method"]) == {"fast_bat"}
    assert "lr=0.1" not in set(table["variant"])  # another learning rate: no partner among fast_at's cells
    rows = table.set_index(["eps", "metric"])
    eps8 = rows.loc[(8.0, "RA-PGD, early-stopped")]
    assert eps8["pairs"] == 3 and eps8["seeds"] == "0 1 2"
    assert eps8["difference"] == pytest.approx(2.0)  # mean of 3, 2, 1
    assert eps8["ci"] == pytest.approx(T_975_DF2 * 1.0 / math.sqrt(3))  # s = 1
    assert eps8["p"] == pytest.approx(p_two_sided_df2(2 * math.sqrt(3)))  # t = 2 / (1 / sqrt 3)
    assert eps8["verdict"] == "no difference shown"  # p = 0.074
    eps16 = rows.loc[(16.0, "RA-PGD, early-stopped")]
    # seeds 1, 2 pair up: fast_bat 26, 26 against fast_at 21, 23 (its base 20 at eps 16, offsets 1, 3)
    assert eps16["pairs"] == 2 and eps16["seeds"] == "1 2" and eps16["difference"] == pytest.approx(4.0)
    assert math.isnan(eps16["p"]) and eps16["verdict"] == "fewer than 3 pairs"
    # Holm runs per metric: each family here holds the one tested comparison of its metric
    tested = table.dropna(subset=["p"])
    assert (tested["p_holm"] == tested["p"]).all() and tested.groupby("metric").size().max() == 1


def test_holm_adjusts_over_the_comparisons_of_one_metric(tmp_path):
    for method, offsets in (("fast_at", (0.0, 1.0, 3.0)), ("fast_bat", (0.0, 0.0, 1.0)), ("pgd", (0.0, 2.0, 3.0))):
        for seed, offset in zip(SEEDS, offsets):
            write_run(tmp_path, method, 8.0, seed, offset)
    table = paired.paired_table(load_local(tmp_path).runs)
    family = table[table["metric"] == "RA-PGD, early-stopped"]
    assert len(family) == 2
    assert list(family["p_holm"]) == pytest.approx(list(stats.holm(family["p"])))
    assert (family["p_holm"] >= family["p"]).all()


def test_the_forest_plot_draws_each_difference_with_its_interval_and_zero(paired_results):
    table = paired.paired_table(load_local(paired_results).runs)
    fig = figs.paired_differences(table, "fast_at")
    ax = next(a for a in fig.axes if a.get_title(loc="left").endswith("RA-PGD, early-stopped"))
    assert "CIFAR-10, PreActResNet-18" in ax.get_title(loc="left")
    assert any(list(line.get_xdata()) == [0.0, 0.0] for line in ax.get_lines())  # the zero line
    bars = [c for c in ax.containers]
    eps8 = table[(table["eps"] == 8.0) & (table["metric"] == "RA-PGD, early-stopped")].iloc[0]
    segments = [seg for c in bars for seg in c.lines[2][0].get_segments()]
    assert any(seg[0][0] == pytest.approx(eps8["low"]) and seg[1][0] == pytest.approx(eps8["high"]) for seg in segments)
    assert "difference from Fast-AT" in ax.get_xlabel()
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any("95% CI" in label for label in labels)
    assert figs.paired_differences(table.iloc[0:0], "fast_at") is None


def test_an_unknown_baseline_is_one_line_with_a_hint_before_anything_is_written(paired_results, tmp_path, capsys):
    reports = tmp_path / "reports"
    code = cli_main(
        ["report", "--results-dir", str(paired_results), "--reports-dir", str(reports), "--baseline", "fastbat"]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "did you mean 'fast_bat'" in err
    assert not reports.exists()
    code = cli_main(
        ["report", "--results-dir", str(paired_results), "--reports-dir", str(reports), "--baseline", "fast_bat"]
    )
    assert code == 0
    table = pd.read_csv(reports / "report" / "paired.csv")
    assert set(table["baseline"]) == {"fast_bat"} and set(table["method"]) == {"fast_at"}
    assert "Paired comparison with Fast-BAT" in (reports / "report" / "report.md").read_text()


# -- the compact table -------------------------------------------------------------------------


@pytest.fixture
def ranked_results(tmp_path):
    """RA-PGD at eps 8 over seeds 0-2: Fast-BAT 48, 49, 50 (the best); Fast-AT 47.5, 49.5, 49 (tied:
    differences -0.5, +0.5, -1); PGD-AT 38, 38.5, 40.5 (10 points below, clearly); FGSM, 1 seed."""
    for method, offsets in (
        ("fast_bat", (0.0, 1.0, 2.0)),
        ("fast_at", (2.5, 4.5, 4.0)),
        ("pgd", (8.0, 8.5, 10.5)),
    ):
        for seed, offset in zip(SEEDS, offsets):
            write_run(tmp_path, method, 8.0, seed, offset)
    write_run(tmp_path, "fgsm", 8.0, 0, 30.0)  # base 30 + 30 = 60: the highest mean, but one seed
    return tmp_path


def test_the_compact_table_marks_the_best_and_the_cells_tied_with_it(ranked_results):
    runs = load_local(ranked_results).runs
    summary = tables.summary_table(runs)
    (table,) = compact.compact_tables(runs, summary)
    assert table.unranked and table.n_note == ""  # FGSM has one seed: an n column per eps
    rows = table.frame.set_index(("", "method"))
    column = rows[("ε = 8/255", "RA-PGD")]
    assert column["Fast-BAT"] == "49.00 ± 2.48" and column["Fast-BAT"].kind == "best"
    assert column["Fast-AT"].kind == "tied"
    assert column["PGD-AT"].kind is None  # differences -10, -10.5, -9.5: p = 0.0008, x 2 (Holm) < 0.05
    assert column["FGSM"] == "60.00" and column["FGSM"].kind is None  # not ranked: one seed
    assert list(rows.index) == ["PGD-AT", "FGSM", "Fast-AT", "Fast-BAT"]  # the palette's order
    assert list(rows[("ε = 8/255", "n")]) == ["3", "1", "3", "3"]
    half = T_975_DF2 * 1.0 / math.sqrt(3)  # Fast-BAT's s = 1
    assert column["Fast-BAT"] == f"49.00 ± {half:.2f}"
    report = write_report(results_dir=ranked_results, reports_dir=ranked_results / "reports", name="r")
    markdown = report.markdown.read_text()
    assert "| **49.00 ± 2.48** |" in markdown and compact.NO_RANKING in markdown
    tex = (report.folder / "compact_cifar10_preact_resnet18.tex").read_text()
    assert r"\textbf{49.00 $\pm$ 2.48}" in tex and r"\textit{" in tex
    assert "<strong>49.00 ± 2.48</strong>" in report.html.read_text()


def test_a_column_with_fewer_than_two_ranked_cells_is_not_marked(tmp_path):
    for seed, offset in zip(SEEDS, OFFSETS):
        write_run(tmp_path, "fast_bat", 8.0, seed, offset)
    write_run(tmp_path, "fast_at", 8.0, 0, 0.0)
    runs = cells.prepared(load_local(tmp_path).runs)
    assert compact.column_marks(runs, "ra_pgd") == {}


# -- paper-ready output ------------------------------------------------------------------------


def tabular_rows(tex: str) -> tuple[int, list[str], list[str]]:
    """(columns declared, the rules in order, the rows) of one booktabs tabular."""
    body = tex[tex.index(r"\begin{tabular}") :]
    spec = re.match(r"\\begin\{tabular\}\{([lrc]+)\}", body).group(1)
    assert body.rstrip().endswith(r"\end{tabular}")
    lines = [line for line in body.splitlines()[1:-1]]
    rules = [line for line in lines if line in (r"\toprule", r"\midrule", r"\bottomrule")]
    return len(spec), rules, [line for line in lines if line not in rules]


def columns_of(row: str) -> int:
    """The columns a row spans: its unescaped & plus one, a \\multicolumn{k} counting k."""
    assert row.endswith(r"\\"), row
    cells_ = re.split(r"(?<!\\)&", row[:-2])
    spans = [int(m.group(1)) if (m := re.search(r"\\multicolumn\{(\d+)\}", c)) else 1 for c in cells_]
    return sum(spans)


def test_latex_tables_are_booktabs_tabulars_with_balanced_rows(ranked_results):
    report = write_report(results_dir=ranked_results, reports_dir=ranked_results / "reports", name="tex")
    for path in report.latex.values():
        tex = path.read_text()
        ncols, rules, rows = tabular_rows(tex)
        assert rules == [r"\toprule", r"\midrule", r"\bottomrule"], path
        assert rows and all(columns_of(row) == ncols for row in rows), (path, rows)
        assert "usepackage{booktabs}" in tex and "±" not in tex.split(r"\begin{tabular}")[1]
    assert set(report.latex) == {"compact_cifar10_preact_resnet18"}  # nothing comparable with the paper here


def test_latex_escapes_text_and_writes_the_reports_signs_in_math_mode():
    assert latex.text("test_points=all & 5% #1") == r"test\_points=all \& 5\% \#1"
    assert latex.text("ε = 8/255, 45.47 ± 0.39 —") == r"$\varepsilon$ = 8/255, 45.47 $\pm$ 0.39 ---"
    frame = pd.DataFrame({"method": ["Fast-AT"], "a_b": [tables.Mark("1.00", "best")]})
    tex = latex.tabular(frame, "a comment")
    assert tex.startswith("% a comment\n") and r"a\_b" in tex and r"\textbf{1.00}" in tex
    ncols, rules, rows = tabular_rows(tex)
    assert ncols == 2 and all(columns_of(r) == 2 for r in rows)


def test_the_paper_comparison_lists_only_comparable_cells_and_names_the_rest_once(tmp_path):
    paper = {"epochs": 20, "test_points": None, "aa_points": 10000}
    for seed, offset in zip(SEEDS, OFFSETS):
        write_run(tmp_path, "fast_at", 8.0, seed, offset, **paper)
        write_run(tmp_path, "fast_bat", 8.0, seed, offset, **{**paper, "aa_points": 1000})
        write_run(tmp_path, "fast_at", 16.0, seed, offset, dataset="fashion_mnist", arch="small_cnn")
    report = write_report(results_dir=tmp_path, reports_dir=tmp_path / "reports", name="paper")
    markdown = report.markdown.read_text()
    section = markdown[markdown.index("## Beside the paper's Table 1") : markdown.index("## Training cost")]
    table = [line for line in section.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + 3 + 2  # header, Fast-AT's SA, RA-PGD, RA-AA, Fast-BAT's SA, RA-PGD
    assert [line.split(" | ")[0] for line in table[1:]] == ["| Fast-AT"] * 3 + ["| Fast-BAT"] * 2
    assert not any("Fashion-MNIST" in line for line in table)  # the other setting is not beside the paper
    assert section.count("Not compared with the paper") == 1
    assert section.count("dataset fashion_mnist (paper: cifar10)") == 1
    assert "Fast-BAT at ε 8, because of AutoAttack on 1000 test points (paper: all 10000)" in section
    tex = (report.folder / "paper_comparison.tex").read_text()
    ncols, rules, rows = tabular_rows(tex)
    assert len(rows) == 1 + 5 and all(columns_of(r) == ncols for r in rows)


def test_columns_empty_throughout_are_dropped_and_the_reason_said_once(tmp_path):
    for seed, offset in zip(SEEDS, OFFSETS):
        for method in ("fast_at", "fast_bat"):
            run_id = write_run(tmp_path, method, 8.0, seed, offset, aa_points=0)
            path = tmp_path / "runs" / run_id / "summary.json"
            summary = json.loads(path.read_text())
            for model in ("best", "last"):
                summary[model].update(ra_aa=None, ra_pgd_aa_subset=None)
            path.write_text(json.dumps(summary))
    frame = pd.DataFrame({"a": ["1", "2"], "b": ["—", "—"], "c": ["", "x"], "d": ["", ""]})
    kept, dropped = tables.drop_empty(frame)
    assert list(kept.columns) == ["a", "c"] and dropped == ["b", "d"]
    report = write_report(results_dir=tmp_path, reports_dir=tmp_path / "reports", name="empty")
    markdown = report.markdown.read_text()
    headers = [line for line in markdown.splitlines() if line.startswith("| method")]
    assert headers and not any("RA-AA" in h or "on AA points" in h for h in headers[:2])
    assert markdown.count("Columns empty in every row of a table are left out of it") == 1
    note = next(line for line in markdown.splitlines() if line.startswith("Columns empty"))
    assert "RA-AA (%), early-stopped" in note and "RA-AA (compact table)" in note
    assert "—" not in "".join(headers)


def test_titles_and_tables_use_readable_names(tmp_path):
    write_run(tmp_path, "fast_at", 8.0, 0, 0.0, dataset="fashion_mnist", arch="small_cnn", inject_beta=24.0)
    runset = load_local(tmp_path)
    summary = tables.summary_table(runset.runs)
    fig = figs.robust_vs_eps(summary)
    assert fig.axes[0].get_title() == "Fashion-MNIST + β 24/255 injected, small CNN"
    assert names.setting_title("cifar10", "preact_resnet18") == "CIFAR-10, PreActResNet-18"
    assert names.arch_name("preact_resnet18@r1") == "PreActResNet-18 (revision 1)"
    assert names.dataset_name("new_data") == "new_data"
    report = write_report(results_dir=tmp_path, reports_dir=tmp_path / "reports", name="names")
    assert "### Fashion-MNIST + β 24/255 injected, small CNN" in report.markdown.read_text()


def test_cells_whose_runs_ran_different_method_code_are_flagged(tmp_path):
    for seed, offset in zip(SEEDS, OFFSETS):
        write_run(tmp_path, "fast_at", 8.0, seed, offset)
        write_run(tmp_path, "fast_bat", 8.0, seed, offset)
    runs = load_local(tmp_path).runs
    assert runs["method_code"].isna().all()  # no such column in the records: all None, nothing flagged
    assert not tables.summary_table(runs)["method_code_differs"].any()
    codes = {"fast_at": ["aaa", "aaa", "bbb"], "fast_bat": ["ccc", "ccc", None]}
    runs = runs.copy()
    for method, values in codes.items():
        runs.loc[runs["method"] == method, "method_code"] = pd.Series(values, dtype=object).values
    summary = tables.summary_table(runs).set_index("method")
    assert summary.loc["fast_at", "method_code_differs"] and summary.loc["fast_bat", "method_code_differs"]
    same = runs.assign(method_code="aaa")
    assert not tables.summary_table(same)["method_code_differs"].any()
    from suite.report import build_report

    report = build_report(RunSet(runs, {}, "test"), tmp_path / "report")
    markdown = report.markdown.read_text()
    assert "Flagged: cells whose runs ran different method code" in markdown
    assert "aaa, bbb" in markdown and "ccc, none recorded" in markdown
    assert "differs between its runs" in markdown


def test_the_report_says_no_ranking_is_claimed_from_one_seed(tmp_path):
    for method in ("fast_at", "fast_bat"):
        write_run(tmp_path, method, 8.0, 0, 0.0)
    report = write_report(results_dir=tmp_path, reports_dir=tmp_path / "reports", name="one")
    markdown = report.markdown.read_text()
    assert compact.NO_RANKING in markdown
    assert not any(
        "**" in line or "*" in line.replace("**", "") for line in markdown.splitlines() if line.startswith("|")
    )
    assert "its cells share at most 1 seed with Fast-AT's" in markdown
    assert np.isnan(pd.read_csv(report.tables["summary"])["ra_pgd_ci"]).all()  # one seed: no interval
