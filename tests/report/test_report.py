"""Tests for suite.report and ``suite report``: tables, figures, HTML, the CO verdict, W&B source.

Run records are written by the tests in the real on-disk format (config.json, metrics.jsonl,
summary.json) with known values; nothing trains and nothing touches the network.
"""

from __future__ import annotations

import base64
import json
import math
import re
import zlib
from pathlib import Path

import pandas as pd
import pytest

from suite.cli import main as cli_main
from suite.commands.report import write_report
from suite.report import figures as figs
from suite.report import tables
from suite.report.co import co_verdict
from suite.report.sources import load_local
from suite.report.wandb_source import load_wandb
from suite.tracking import flatten

SETTING = {"dataset": "cifar10", "arch": "preact_resnet18"}
SEEDS = (0, 1, 2)
OFFSETS = (-1.0, 0.0, 1.0)  # per-seed offsets: mean = base, sample std (ddof=1) = 1
# (method, eps) -> base test accuracies of the early-stopped model: sa, ra_pgd, ra_aa
BASE = {
    ("fast_at", 8.0): (80.0, 45.0, 42.0),
    ("fast_at", 16.0): (50.0, 20.0, 12.0),
    ("fast_bat", 8.0): (79.0, 48.0, 45.0),
    ("fast_bat", 16.0): (67.0, 26.0, 18.0),
}
SECONDS = {"fast_at": 10.0, "fast_bat": 30.0}
EPOCHS = 6
# t(0.975) with 2 degrees of freedom, by hand: the t(2) CDF is 1/2 + t / (2 sqrt(2 + t^2)), so the
# quantile q of 0.975 solves q / sqrt(2 + q^2) = 0.95: q = sqrt(2 * 0.95^2 / (1 - 0.95^2)) = 4.3027
T_975_DF2 = math.sqrt(2 * 0.95**2 / (1 - 0.95**2))


def smooth_history(epochs=EPOCHS, robust=40.0, clean=70.0):
    return [
        {"epoch": e, "val_robust_acc": robust * e / epochs, "val_clean_acc": clean * e / epochs}
        for e in range(1, epochs + 1)
    ]


def collapse_history(at=4, epochs=EPOCHS):
    """Robust accuracy rises to 30, then falls to ~1 at epoch ``at`` while clean accuracy jumps."""
    rows = []
    for e in range(1, epochs + 1):
        robust = 10.0 * e if e < at else 1.0
        clean = 50.0 + 5 * e if e < at else 85.0
        rows.append({"epoch": e, "val_robust_acc": robust, "val_clean_acc": clean})
    return rows


def run_config(method, eps, seed, hparams=None, **setting):
    """A run's config; ``setting`` overrides any entry (dataset, arch, epochs, test_points, ...)."""
    return {
        "method": method,
        "eps": eps,
        "seed": seed,
        "epochs": EPOCHS,
        "hparams": hparams or {},
        "pgd_steps": 50,
        "pgd_restarts": 10,
        "aa_points": 100,
        "val_points": 200,
        "val_pgd_steps": 10,
        "val_pgd_restarts": 1,
        "test_points": 500,
        "train_points": None,
        **{**SETTING, **setting},
    }


def record(method, eps, seed, offset, status="finished", history=None, hparams=None, run_id=None, **setting):
    """(run_id, config dict, history rows, summary dict) of one synthetic run."""
    sa, ra, aa = BASE.get((method, eps), (60.0, 30.0, 25.0))
    co = method == "fast_at" and eps == 16.0
    history = history if history is not None else (collapse_history() if co else smooth_history())
    best = {"sa": sa + offset, "ra_pgd": ra + offset, "ra_aa": aa + offset, "ra_pgd_aa_subset": ra + 1 + offset}
    last = {
        "sa": sa + 5 + offset,
        "ra_pgd": 0.5 if co else ra - 1 + offset,
        "ra_aa": 0.0 if co else aa - 1 + offset,
        "ra_pgd_aa_subset": 0.5 if co else ra + offset,
    }
    config = run_config(method, eps, seed, hparams, **setting)
    run_id = (
        run_id
        or f"{method}-{config['dataset']}-{config['arch']}-eps{eps:g}-s{seed}-{zlib.crc32(str(hparams).encode()):x}"
    )
    protocol = {
        "test_points": 500,
        "pgd": "PGD-50-10 (step eps/4)",
        "autoattack": "AutoAttack on 100 points",
        "validation": "PGD-10-1 on 200 validation points per epoch",
        "train_points": 45000,
    }
    summary = {
        "status": status,
        "best": best,
        "last": last,
        "best_epoch": 3,
        "epochs_done": len(history),
        "epoch_seconds": SECONDS.get(method, 5.0) + offset,
        "protocol": protocol,
        "error": None,
    }
    if status != "finished":
        summary.update(best=None, last=None, error="RuntimeError: boom")
    return run_id, config, history, summary, protocol


def write_run(results, *args, **kwargs) -> str:
    """Write one run folder as the training engine does (without its fsyncs, to stay fast)."""
    run_id, config, history, summary, protocol = record(*args, **kwargs)
    folder = Path(results) / "runs" / run_id
    folder.mkdir(parents=True)
    dump = lambda data: json.dumps(data, indent=2, sort_keys=True) + "\n"  # noqa: E731  (as records.write_json)
    (folder / "config.json").write_text(
        dump({"run_id": run_id, "name": run_id, "config": config, "protocol": protocol})
    )
    (folder / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in history))
    (folder / "summary.json").write_text(dump(summary))
    return run_id


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Four cells (fast_at, fast_bat x eps 8, 16) of three seeds each, and one failed run (tests add only study files)."""
    root = tmp_path_factory.mktemp("records") / "results"
    for method, eps in BASE:
        for seed, offset in zip(SEEDS, OFFSETS):
            write_run(root, method, eps, seed, offset)
    write_run(root, "fast_bat", 8.0, 9, 0.0, status="failed")  # left out of the tables
    return root


def write_trials(results, lambdas=(0.1, 1.0, 10.0, 100.0), robust=(30.0, 35.0, 40.0, 33.0)):
    folder = Path(results) / "studies"
    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(
        {
            "trial": range(len(lambdas) + 1),
            "state": ["COMPLETE"] * len(lambdas) + ["PRUNED"],
            "lmbda": [*lambdas, 1000.0],
            "ll_step": 5000.0,
            "val_robust_acc": [*robust, 5.0],
            "val_clean_acc": [75.0 + r / 10 for r in robust] + [80.0],
            "sa": [70.0 + r / 10 for r in robust] + [None],
            "ra_pgd": [r - 2 for r in robust] + [None],
            "run_id": [f"trial{i}" for i in range(len(lambdas) + 1)],
        }
    )
    frame.to_csv(folder / "lam.csv", index=False)
    return frame


# -- the CO verdict --------------------------------------------------------------------------


def test_co_flags_a_sudden_collapse_at_its_epoch():
    verdict = co_verdict(collapse_history(at=4))
    assert verdict.flagged and verdict.epoch == 4
    assert verdict.robust_before == 30.0 and verdict.robust_after == 1.0


def test_co_does_not_flag_smooth_slow_or_whole_model_collapses():
    assert co_verdict(smooth_history()).flagged is False
    slow = [{"epoch": e, "val_robust_acc": 40.0 - 4 * e, "val_clean_acc": 70.0} for e in range(10)]
    assert co_verdict(slow).flagged is False  # falls below half, but 4 points an epoch
    diverged = [
        {"epoch": 1, "val_robust_acc": 30.0, "val_clean_acc": 70.0},
        {"epoch": 2, "val_robust_acc": 2.0, "val_clean_acc": 10.0},
    ]
    assert co_verdict(diverged).flagged is False  # clean accuracy collapsed too: not CO
    assert co_verdict([]).flagged is None


def history_of(robust, clean):
    return [{"epoch": e, "val_robust_acc": r, "val_clean_acc": c} for e, (r, c) in enumerate(zip(robust, clean), 1)]


def test_co_flags_a_collapse_over_two_epochs_but_not_over_three():
    # Fast-AT at eps 40 with injected features (reports/co_search.md): halved within two epochs
    verdict = co_verdict(history_of([21, 46, 44, 24, 15, 14], [54, 67, 68, 68, 68, 67]))
    assert verdict.flagged and verdict.epoch == 5 and verdict.robust_before == 44 and verdict.robust_after == 15
    # the same fall spread over three epochs is a decline, not a collapse
    assert co_verdict(history_of([46, 44, 35, 27, 21], [70] * 5)).flagged is False
    # a fall from a best long before, in steps too small to halve within two epochs
    assert co_verdict(history_of([50, 30, 30, 30, 20], [70] * 5)).flagged is False
    # clean accuracy judged against the epoch robustness fell from
    assert co_verdict(history_of([40, 40, 19], [80, 60, 69])).flagged is False
    assert co_verdict(history_of([40, 30, 19], [60, 80, 69])).flagged is True


def test_standard_training_is_not_judged_for_co(tmp_path):
    write_run(tmp_path, "standard", 32.0, 0, 0.0, history=collapse_history(at=4))
    write_run(tmp_path, "fast_at", 32.0, 0, 0.0, history=collapse_history(at=4))
    runs = load_local(tmp_path).runs.set_index("method")
    assert pd.isna(runs.loc["standard", "co"]) and bool(runs.loc["fast_at", "co"])
    shown = tables.display_runs(load_local(tmp_path).runs).set_index("method")["co"]
    assert shown.to_dict() == {tables.method_label("standard"): "n/a", tables.method_label("fast_at"): "CO"}
    summary = tables.display_summary(tables.summary_table(load_local(tmp_path).runs))
    assert sorted(summary["CO runs"]) == ["1/1", "n/a"]


# -- tables ----------------------------------------------------------------------------------


def test_summary_table_has_means_sample_stds_and_counts(results):
    runset = load_local(results)
    summary = tables.summary_table(runset.runs)
    assert len(summary) == len(BASE)
    assert list(summary["method"]) == ["fast_at", "fast_at", "fast_bat", "fast_bat"]
    for row in summary.itertuples():
        sa, ra, aa = BASE[(row.method, row.eps)]
        assert row.n == 3 and row.seeds == "0 1 2"
        assert row.sa_mean == pytest.approx(sa) and row.ra_pgd_mean == pytest.approx(ra)
        assert row.ra_aa_mean == pytest.approx(aa)
        assert row.sa_std == pytest.approx(1.0) and row.ra_pgd_std == pytest.approx(1.0)  # ddof=1
        assert row.last_sa_mean == pytest.approx(sa + 5)
        assert row.epoch_seconds_mean == pytest.approx(SECONDS[row.method])
        collapsing = row.method == "fast_at" and row.eps == 16
        assert row.last_ra_pgd_mean == pytest.approx(0.5 if collapsing else ra - 1)
        assert row.last_ra_pgd_std == pytest.approx(0.0 if collapsing else 1.0)
        assert (row.co_runs, row.co_judged) == ((3 if collapsing else 0), 3)


def test_runs_with_different_hparams_are_separate_cells(tmp_path):
    for seed, offset in zip(SEEDS[:2], OFFSETS[:2]):
        for lmbda in (1.0, 10.0):
            write_run(tmp_path, "fast_bat", 8.0, seed, offset, hparams={"lmbda": lmbda})
    summary = tables.summary_table(load_local(tmp_path).runs)
    assert list(summary["variant"]) == ["lmbda=1", "lmbda=10"] and list(summary["n"]) == [2, 2]
    comparison = tables.comparison_table(summary)  # a lambda other than the default is not the paper's
    off_default = comparison[comparison["variant"] == "lmbda=1"]
    assert off_default["within_spread"].isna().all()
    assert off_default["differs"].str.contains("lmbda 1 (paper: 10)", regex=False).all()
    assert figs.robust_vs_eps(summary) is None  # nor a point of the robustness-vs-eps curves


PAPER_PROTOCOL = {"epochs": 20, "test_points": None, "aa_points": 10000}  # the whole CIFAR-10 test set


@pytest.fixture(scope="module")
def paper_protocol_results(tmp_path_factory):
    """The four cells of ``results`` with the paper's protocol: 20 epochs, every test point attacked."""
    root = tmp_path_factory.mktemp("paper") / "results"
    for method, eps in BASE:
        for seed, offset in zip(SEEDS, OFFSETS):
            write_run(root, method, eps, seed, offset, **PAPER_PROTOCOL)
    return root


def test_comparison_with_the_paper_has_deltas_and_the_spread_verdict(paper_protocol_results):
    summary = tables.summary_table(load_local(paper_protocol_results).runs)
    comparison = tables.comparison_table(summary)
    paper = tables.paper_table().set_index(["method", "eps"])
    assert len(comparison) == len(BASE) * 3
    for row in comparison.itertuples():
        key = {"SA": "sa", "RA-PGD": "ra_pgd", "RA-AA": "ra_aa"}[row.metric]
        ours = BASE[(row.method, row.eps)][list(tables.METRICS).index(key)]
        p_mean, p_std = paper.loc[(row.method, int(row.eps)), [f"{key}_mean", f"{key}_std"]]
        assert row.ours_mean == pytest.approx(ours) and row.paper_mean == p_mean and row.paper_std == p_std
        assert row.delta == pytest.approx(ours - p_mean)
        assert row.differs == ""
        assert row.within_spread == (abs(ours - p_mean) <= 2 * max(p_std, 1.0))


def test_a_protocol_other_than_the_papers_gets_no_verdict_but_what_differs(results):
    comparison = tables.comparison_table(tables.summary_table(load_local(results).runs))
    assert len(comparison) == len(BASE) * 3 and comparison["within_spread"].isna().all()
    for row in comparison.itertuples():
        assert "6 epochs (paper: 20)" in row.differs
        if row.metric == "RA-AA":
            assert "AutoAttack on 100 test points (paper: all 10000)" in row.differs
            assert "500 test points" not in row.differs
        else:
            assert "500 test points (paper: all 10000)" in row.differs and "AutoAttack" not in row.differs


def paper_cell(**changes):
    """A summary row with the paper's protocol, changed by ``changes``."""
    return {
        "dataset": "cifar10",
        "arch": "preact_resnet18",
        "n": 10,
        "epochs": "20",
        "pgd": "PGD-50-10",
        "test_points": "all",
        "aa_points": "10000",
        **changes,
    }


def test_protocol_match_rule():
    assert tables.protocol_differences(paper_cell()) == {"SA": [], "RA-PGD": [], "RA-AA": []}
    assert tables.protocol_differences(paper_cell(test_points="10000"))["SA"] == []
    assert tables.protocol_differences(paper_cell(n=3))["SA"] == []
    for changes, text in [
        ({"n": 2}, "2 seeds (needs at least 3"),
        ({"n": 1}, "1 seed (needs at least 3"),
        ({"dataset": "cifar100"}, "dataset cifar100 (paper: cifar10)"),
        ({"arch": "preact_resnet18_gradalign"}, "network preact_resnet18_gradalign (paper: preact_resnet18)"),
        ({"epochs": "30"}, "30 epochs (paper: 20)"),
        ({"epochs": "20 / 30"}, "20 / 30 epochs"),
    ]:
        differences = tables.protocol_differences(paper_cell(**changes))
        assert all(any(text in d for d in v) for v in differences.values()), (changes, differences)
    differences = tables.protocol_differences(paper_cell(pgd="PGD-20-1"))
    assert (
        differences["SA"] == []
        and differences["RA-AA"] == []
        and differences["RA-PGD"] == ["PGD-20-1 (paper: PGD-50-10)"]
    )
    differences = tables.protocol_differences(paper_cell(aa_points="1000"))
    assert differences == {"SA": [], "RA-PGD": [], "RA-AA": ["AutoAttack on 1000 test points (paper: all 10000)"]}
    assert tables.protocol_differences(paper_cell(aa_points="none"))["RA-AA"] == ["AutoAttack not run"]


def test_verdict_in_words():
    spread = {"SA": True, "RA-PGD": False, "RA-AA": None}
    assert (
        tables.verdict(tables.protocol_differences(paper_cell()), {**spread, "RA-AA": True})
        == "SA yes, RA-PGD NO, RA-AA yes"
    )
    assert (
        tables.verdict(tables.protocol_differences(paper_cell(aa_points="1000")), spread)
        == "SA yes, RA-PGD NO, RA-AA not compared (AutoAttack on 1000 test points (paper: all 10000))"
    )
    words = tables.verdict(tables.protocol_differences(paper_cell(n=1, aa_points="none")), spread)
    assert words == "not compared: 1 seed (needs at least 3, paper: 10); AutoAttack not run"


def test_table1_has_the_papers_layout(results):
    write_dir = results.parent / "extra"
    for seed, offset in zip(SEEDS, OFFSETS):
        write_run(write_dir, "standard", 8.0, seed, offset)
    runs = pd.concat([load_local(results).runs, load_local(write_dir).runs], ignore_index=True)
    summary = tables.summary_table(runs)
    layout = tables.table1(summary)
    assert list(layout["method"]) == [tables.method_label(m) for m in ("standard", "fast_at", "fast_at_ga", "fast_bat")]
    for eps in (8, 16):
        assert [c for c in layout.columns if c.startswith(f"ε={eps} ")] == [
            f"ε={eps} {m} {who}" for m in ("SA", "RA-PGD", "RA-AA", "s/epoch") for who in ("ours", "paper")
        ] + [f"ε={eps} vs paper"]
    rows = layout.set_index("method")
    fast_at = rows.loc["Fast-AT"]
    assert fast_at["ε=8 SA ours"] == "80.00 ± 1.00" and fast_at["ε=8 SA paper"] == "81.72 ± 0.36"
    assert fast_at["ε=16 RA-AA ours"] == "12.00 ± 1.00" and fast_at["ε=16 RA-AA paper"] == "12.57 ± 0.33"
    assert fast_at["ε=8 s/epoch ours"] == "10.0 ± 1.0" and fast_at["ε=8 s/epoch paper"] == "42"
    assert fast_at["ε=8 vs paper"].startswith("not compared: 6 epochs (paper: 20)")
    assert rows.loc["Standard", "ε=8 SA paper"] == "not in the paper"
    assert rows.loc["Standard", "ε=8 vs paper"] == "not in the paper"
    assert rows.loc["Standard", "ε=16 SA ours"] == "—"  # not run at eps 16
    assert rows.loc["Fast-AT-GA", "ε=8 SA ours"] == "—" and rows.loc["Fast-AT-GA", "ε=8 vs paper"] == "not run"


def test_table1_gives_the_verdict_where_the_protocol_is_the_papers(paper_protocol_results):
    summary = tables.summary_table(load_local(paper_protocol_results).runs)
    layout = tables.table1(summary).set_index("method")
    # fast_bat at eps 8: ours 79/48/45 +- 1 against the paper's 79.43/48.74/44.89: all within 2 x 1.0
    assert layout.loc["Fast-BAT", "ε=8 vs paper"] == "SA yes, RA-PGD yes, RA-AA yes"
    # fast_at at eps 8: SA 80 against 81.72 (|1.72| <= 2), RA-AA 42 against 41.97
    assert layout.loc["Fast-AT", "ε=8 vs paper"] == "SA yes, RA-PGD yes, RA-AA yes"


def write_weak_autoattack_runs(results) -> str:
    """Two runs; in the second, AutoAttack left more points robust than PGD did (early-stopped model)."""
    write_run(results, "fast_at", 8.0, 0, 0.0)
    weak = write_run(results, "fast_at", 8.0, 1, 0.0)
    path = Path(results) / "runs" / weak / "summary.json"
    summary = json.loads(path.read_text())
    summary["best"].update(ra_aa=46.0, ra_pgd_aa_subset=45.5)
    path.write_text(json.dumps(summary))
    return weak


def test_autoattack_weaker_than_pgd_on_the_same_points_is_flagged(tmp_path):
    weak = write_weak_autoattack_runs(tmp_path)
    runs = load_local(tmp_path).runs
    assert tables.aa_weaker_models(runs) == ["", "early-stopped"]
    assert tables.display_runs(tables.run_table(runs))["AA weaker than PGD"].tolist() == ["", "early-stopped"]
    assert tables.display_summary(tables.summary_table(runs))["AA weaker than PGD"].tolist() == ["1 run"]
    equal = runs.assign(ra_aa=runs["ra_pgd_aa_subset"])
    assert tables.aa_weaker_models(equal) == ["", ""]  # equal is not weaker
    report = write_report(results_dir=tmp_path, reports_dir=tmp_path / "reports", name="aa")
    markdown = report.markdown.read_text()
    assert "Flagged: AutoAttack weaker than PGD on the same points" in markdown and weak in markdown


def test_suite_runs_shows_ra_pgd_on_the_autoattack_points_and_flags_a_weaker_autoattack(tmp_path, capsys):
    weak = write_weak_autoattack_runs(tmp_path)
    assert cli_main(["runs", "--results-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = lines[0].split()
    assert header[header.index("RA-PGD@AA") + 1] == "RA-AA"
    row = next(line for line in lines if line.startswith(weak)).split()
    assert row[header.index("RA-PGD@AA")] == "45.50" and row[header.index("RA-AA")] == "46.00"
    flagged = [line for line in lines if "AutoAttack weaker than PGD" in line]
    assert flagged == [f"  {weak}: AutoAttack weaker than PGD on the same points (early-stopped)"]


def test_ra_pgd_on_the_autoattack_points_stands_beside_ra_aa(results):
    summary = tables.summary_table(load_local(results).runs)
    assert list(summary["ra_pgd_aa_subset_mean"]) == pytest.approx(
        [BASE[k][1] + 1 for k in sorted(BASE, key=lambda k: (tables.method_rank(k[0]), k[1]))]
    )
    shown = tables.display_summary(summary).columns.tolist()
    early = [c for c in shown if c.endswith("early-stopped")]
    assert early == [
        "SA (%), early-stopped",
        "RA-PGD (%), early-stopped",
        "RA-PGD on AA points (%), early-stopped",
        "RA-AA (%), early-stopped",
    ]


def test_within_spread_rule():
    assert tables.within_spread(50.0, 1.0, 48.5, 0.1)  # 1.5 <= 2 * 1.0
    assert not tables.within_spread(50.0, 0.5, 48.5, 0.1)  # 1.5 >  2 * 0.5
    assert not tables.within_spread(50.0, math.nan, 49.0, 0.4)  # single seed: paper std only
    assert tables.within_spread(math.nan, 1.0, 49.0, 0.4) is None


def test_cost_table_ratios(results):
    cost = tables.cost_table(load_local(results).runs)
    rel = dict(zip(cost["method"], cost["rel_fast_at"]))
    assert rel["fast_at"] == pytest.approx(1.0) and rel["fast_bat"] == pytest.approx(3.0)
    paper = tables.paper_table().groupby("method")["time_per_epoch_s"].first()
    assert dict(zip(cost["method"], cost["paper_rel_fast_at"]))["fast_bat"] == pytest.approx(
        paper["fast_bat"] / paper["fast_at"]
    )


# -- figures ---------------------------------------------------------------------------------


def test_robust_vs_eps_has_pgd_and_autoattack_lines_early_stopped_and_last(results):
    summary = tables.summary_table(load_local(results).runs)
    fig = figs.robust_vs_eps(summary)
    ax = fig.axes[0]
    lines = ax.get_lines()
    # per method: PGD early-stopped (solid), PGD last (dashed), AA early-stopped and AA last (dotted)
    assert [l.get_linestyle() for l in lines] == ["-", "--", ":", ":"] * 2
    assert {l.get_color() for l in lines[:4]} == {figs.METHOD_COLORS["fast_at"]}
    assert list(lines[0].get_xdata()) == [8.0, 16.0]
    assert list(lines[0].get_ydata()) == pytest.approx([45.0, 20.0])
    assert list(lines[1].get_ydata()) == pytest.approx([44.0, 0.5])
    assert list(lines[2].get_ydata()) == pytest.approx([42.0, 12.0])  # RA-AA, early-stopped
    assert list(lines[3].get_ydata()) == pytest.approx([41.0, 0.0])  # RA-AA, last epoch
    assert "%" in ax.get_ylabel() and "/255" in ax.get_xlabel()
    assert not ax.get_legend() and fig.legends  # the legend is off the data


def test_robust_vs_eps_draws_no_last_epoch_line_for_standard_training(tmp_path):
    for method in ("standard", "fast_at"):
        for eps in (8.0, 16.0):
            write_run(tmp_path, method, eps, 0, 0.0)
    lines = figs.robust_vs_eps(tables.summary_table(load_local(tmp_path).runs)).axes[0].get_lines()
    standard = [l for l in lines if l.get_color() == figs.METHOD_COLORS["standard"]]
    assert [l.get_linestyle() for l in standard] == ["-", ":"]  # no dashed last-epoch line


def test_epoch_curves_draw_every_method_at_every_eps_with_mean_range_and_co_marks(results):
    runset = load_local(results)
    fig = figs.epoch_curves(runset.runs, runset.histories)
    axes = fig.axes
    assert len(axes) == 4  # rows eps 8 and 16, columns robust and clean
    robust16 = axes[2]
    assert "16/255" in robust16.get_title(loc="left")
    lines = robust16.get_lines()
    assert len(lines) == 2  # one mean line per method
    fast_at = next(l for l in lines if l.get_color() == figs.METHOD_COLORS["fast_at"])
    assert list(fast_at.get_ydata()) == pytest.approx([r["val_robust_acc"] for r in collapse_history()])
    bands = [c for c in robust16.collections if c.__class__.__name__ == "FillBetweenPolyCollection"]
    assert len(bands) == 2
    marks = [c for c in robust16.collections if c.__class__.__name__ == "PathCollection"]
    assert len(marks) == 3 and all(tuple(m.get_offsets()[0]) == (4.0, 1.0) for m in marks)  # 3 fast_at collapses
    assert not any(c.__class__.__name__ == "PathCollection" for c in axes[0].collections)  # none at eps 8


def test_epoch_curves_band_spans_the_seeds(tmp_path):
    for seed, robust in enumerate((30.0, 40.0, 50.0)):
        write_run(tmp_path, "fast_bat", 8.0, seed, 0.0, history=smooth_history(robust=robust))
    runset = load_local(tmp_path)
    ax = figs.epoch_curves(runset.runs, runset.histories).axes[0]
    assert list(ax.get_lines()[0].get_ydata()) == pytest.approx([40.0 * e / EPOCHS for e in range(1, EPOCHS + 1)])
    band = ax.collections[0].get_paths()[0].vertices  # the 95% CI over the 3 seeds, not their range
    half = lambda e: T_975_DF2 * (10.0 * e / EPOCHS) / math.sqrt(3)  # noqa: E731  (s = 10 e / EPOCHS)
    assert band[:, 1].min() == pytest.approx(40.0 / EPOCHS - half(1))
    assert band[:, 1].max() == pytest.approx(40.0 + half(EPOCHS))
    labels = [t.get_text() for t in ax.figure.legends[0].get_texts()]
    assert any("95% CI over seeds" in label for label in labels)  # the legend says what the band is


def test_co_diagnostics_draw_the_three_probes_and_leave_out_standard(tmp_path):
    def history(collapse):
        rows = collapse_history() if collapse else smooth_history()
        return [
            {
                **r,
                "train_pgd_acc": r["val_robust_acc"] + 5,
                "fgsm_pgd_cos": 0.8 - 0.05 * r["epoch"],
                "grad_align_cos": 0.9 - 0.1 * r["epoch"],
            }
            for r in rows
        ]

    write_run(tmp_path, "fast_at", 16.0, 0, 0.0, history=history(True))
    write_run(tmp_path, "fast_bat", 16.0, 0, 0.0, history=history(False))
    write_run(tmp_path, "standard", 16.0, 0, 0.0, history=history(True))
    runset = load_local(tmp_path)
    fig = figs.co_diagnostics(runset.runs, runset.histories)
    train_pgd, fgsm_cos, align = fig.axes
    assert "training" in train_pgd.get_ylabel() and "FGSM" in fgsm_cos.get_ylabel() and "align" in align.get_ylabel()
    for ax in fig.axes:
        assert {l.get_color() for l in ax.get_lines()} == {
            figs.METHOD_COLORS["fast_at"],
            figs.METHOD_COLORS["fast_bat"],
        }
    marks = [c.get_offsets()[0] for c in train_pgd.collections if c.__class__.__name__ == "PathCollection"]
    assert [tuple(m) for m in marks] == [(4.0, 6.0)]  # fast_at's collapse, at its own value
    assert tuple(fgsm_cos.collections[-1].get_offsets()[0]) == pytest.approx((4.0, 0.6))


def test_co_diagnostics_say_not_logged_for_old_records(results):
    runset = load_local(results)
    fig = figs.co_diagnostics(runset.runs, runset.histories)
    assert all(any(t.get_text() == "not logged" for t in ax.texts) for ax in fig.axes)


def test_lambda_sensitivity_shows_pruned_and_failed_trials_at_their_last_value(tmp_path):
    trials = write_trials(tmp_path)
    trials = pd.concat([trials, pd.DataFrame({"trial": [5, 6], "state": ["FAIL", "FAIL"], "lmbda": [0.01, 3000.0]})])
    trials["last_reported"] = [None] * 4 + [2.0, None, 7.0]
    trials["last_reported_epoch"] = [None] * 4 + [3, None, 2]
    fig = figs.tune_sensitivity(trials)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    lines = ax.get_lines()
    assert len(lines) == 4 and all(len(l.get_xdata()) == 4 for l in lines)  # complete trials
    assert list(lines[0].get_xdata()) == [0.1, 1.0, 10.0, 100.0] and list(lines[0].get_ydata()) == [30, 35, 40, 33]
    best, pruned, failed = ax.collections
    assert tuple(best.get_offsets()[0]) == (10.0, 40.0)  # the chosen lambda
    assert [tuple(p) for p in pruned.get_offsets()] == [(1000.0, 2.0)]  # last reported, not best
    assert sorted(tuple(p) for p in failed.get_offsets()) == [(0.01, 0.0), (3000.0, 7.0)]
    assert {t.get_text() for t in ax.texts} == {"ep 3", "ep 2"}
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any(label.startswith("pruned (1)") for label in labels) and any(
        label.startswith("failed (2)") for label in labels
    )
    assert not ax.get_legend()  # the legend is off the data
    fig.canvas.draw()
    shown = [t for t in ax.get_xticklabels() if t.get_text() and t.get_visible()]
    boxes = [t.get_window_extent() for t in shown]
    assert len(boxes) >= 2 and all(not a.overlaps(b) for a, b in zip(boxes, boxes[1:]))  # legible ticks
    assert figs.tune_sensitivity(trials.assign(state="RUNNING")) is None


def test_training_cost_has_a_bar_per_method(results):
    cost = tables.cost_table(load_local(results).runs)
    ax = figs.training_cost(cost).axes[0]
    assert [p.get_height() for p in ax.patches] == pytest.approx([10.0, 30.0])
    assert "(s)" in ax.get_ylabel()


# -- the report folder and the command -------------------------------------------------------


def test_report_command_writes_markdown_html_figures_and_tables(results, tmp_path, capsys):
    write_trials(results)
    reports = tmp_path / "reports"
    code = cli_main(
        [
            "report",
            "--results-dir",
            str(results),
            "--reports-dir",
            str(reports),
            "--name",
            "t",
            "--method",
            "fast_at",
            "fast_bat",
            "--study",
            "lam",
        ]
    )
    assert code == 0 and "report.html" in capsys.readouterr().out
    folder = reports / "t"
    for name in (
        "robust_vs_eps",
        "epoch_curves",
        "co_diagnostics",
        "clean_vs_robust",
        "paired_differences",
        "lambda_sensitivity",
        "training_cost",
    ):
        assert (folder / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (folder / f"{name}.pdf").read_bytes()[:4] == b"%PDF"
    for name in ("summary", "paper_comparison", "cost", "runs"):
        assert not pd.read_csv(folder / f"{name}.csv").empty
    page = (folder / "report.html").read_text()
    sources = re.findall(r'<img[^>]*src="([^"]+)"', page)
    assert len(sources) == 7
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:4] == b"\x89PNG"
    markdown = (folder / "report.md").read_text()
    for target in re.findall(r"\]\(([^)]+)\)", markdown):
        assert (folder / target).exists()
    assert "Beside the paper's Table 1" in markdown and "catastrophic overfitting" in markdown
    assert "PGD-50-10" in markdown  # the protocol is written beside the tables
    assert "RuntimeError: boom" in markdown  # the failed run is listed, not averaged


def test_report_of_a_sweep_holds_exactly_its_runs(tmp_path):
    from suite.experiments.sweep import load_spec

    spec = tmp_path / "tiny.yaml"
    spec.write_text(
        "name: tiny\nbase: {dataset: fashion_mnist, arch: small_cnn, epochs: 6}\n"
        "grid: {method: [fast_at, fast_bat], eps: [8, 16]}\n"
    )
    results = tmp_path / "results"
    for config in load_spec(spec, ["seeds=2"]).configs():
        write_run(
            results,
            config.method,
            config.eps,
            config.seed,
            OFFSETS[config.seed],
            run_id=config.run_id,
            dataset="fashion_mnist",
            arch="small_cnn",
        )
    write_run(results, "fast_at", 8.0, 5, 0.0, dataset="fashion_mnist", arch="small_cnn")  # not the sweep's
    report = write_report(results_dir=results, reports_dir=tmp_path / "reports", sweeps=[spec], overrides=["seeds=2"])
    assert report.folder.name == "tiny"
    summary = pd.read_csv(report.tables["summary"])
    assert list(summary["n"]) == [2, 2, 2, 2] and set(summary["seeds"]) == {"0 1"}
    comparison = pd.read_csv(report.tables["paper_comparison"])  # beside the paper, but not compared with it
    assert comparison["within_spread"].isna().all()
    assert comparison["differs"].str.contains("dataset fashion_mnist (paper: cifar10)", regex=False).all()


def test_methods_absent_from_the_paper_are_reported_in_the_palettes_order_and_colours(tmp_path):
    """FGSM and N-FGSM are not in the paper's Table 1: their cells appear in our tables and figures,
    ordered and coloured by the one shared palette, and the comparison with the paper skips them."""
    from suite.report import palette

    results = tmp_path / "results"
    for method in ("n_fgsm", "fast_bat", "fgsm", "fast_at"):  # written out of order on purpose
        for seed, offset in zip(SEEDS[:2], OFFSETS[:2]):
            write_run(results, method, 8.0, seed, offset)
    report = write_report(results_dir=results, reports_dir=tmp_path / "reports", name="extra")
    order = ["fgsm", "fast_at", "n_fgsm", "fast_bat"]
    assert [m for m in palette.METHOD_ORDER if m in order] == order
    summary = pd.read_csv(report.tables["summary"])
    assert list(summary["method"]) == order
    compared = set(pd.read_csv(report.tables["paper_comparison"])["method"])
    assert compared == {"fast_at", "fast_bat"}
    cost = tables.cost_table(load_local(results).runs)
    assert list(cost["method"]) == order
    assert cost.set_index("method")["paper_rel_fast_at"][["fgsm", "n_fgsm"]].isna().all()
    assert set(tables.display_cost(cost)["method"]) >= {"FGSM", "N-FGSM"}

    runs = load_local(results).runs
    ax = figs.clean_vs_robust(runs).axes[0]
    legend = {
        t.get_text(): h.get_color()
        for t, h in zip(ax.get_legend().texts, ax.get_legend().legend_handles)
        if t.get_text() in ("FGSM", "Fast-AT", "N-FGSM", "Fast-BAT")
    }
    assert list(legend) == [palette.method_label(m) for m in order]
    assert list(legend.values()) == [palette.color(m) for m in order]
    bars = figs.training_cost(cost).axes[0]
    assert [t.get_text() for t in bars.get_xticklabels()] == [palette.method_label(m) for m in order]
    colours = [palette.color(m) for m, _, _ in palette.PALETTE]
    assert len(set(colours)) == len(colours) and not set(colours) & set(palette.SPARE_COLORS)


def test_report_of_no_runs_is_an_error(tmp_path, capsys):
    assert cli_main(["report", "--results-dir", str(tmp_path), "--reports-dir", str(tmp_path / "r")]) == 2
    assert "no runs" in capsys.readouterr().err


# -- W&B source ------------------------------------------------------------------------------


class FakeRun:
    """What ``wandb.Api().runs()`` yields, as far as the report reads it."""

    def __init__(self, results, run_id):
        folder = Path(results) / "runs" / run_id
        self.id = run_id[-6:]
        self.config = {**json.loads((folder / "config.json").read_text())["config"], "run_id": run_id}
        summary = json.loads((folder / "summary.json").read_text())
        keys = ("status", "best", "last", "best_epoch", "epoch_seconds", "error")
        self.summary = flatten({k: summary.get(k) for k in keys})  # as WandbTracker.on_end writes it
        self._history = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]

    def scan_history(self):
        return [{"_step": i, **row} for i, row in enumerate(self._history)]


class FakeApi:
    def __init__(self, results):
        self.runs_ = [FakeRun(results, p.name) for p in sorted((Path(results) / "runs").iterdir())]
        self.asked = None

    def runs(self, project):
        self.asked = project
        return self.runs_


def test_wandb_source_gives_the_same_tables_as_local_records(results):
    api = FakeApi(results)
    remote = load_wandb("me/fast-bat", api=api)
    local = load_local(results)
    assert api.asked == "me/fast-bat"
    pd.testing.assert_frame_equal(tables.summary_table(remote.runs), tables.summary_table(local.runs))
    columns = ["run_id", "status", "co", "co_epoch", "epochs_done"]
    pd.testing.assert_frame_equal(remote.runs[columns], local.runs[columns])
    filtered = load_wandb("p", api=api, method="fast_bat", eps=[16])
    assert set(filtered.runs["method"]) == {"fast_bat"} and set(filtered.runs["eps"]) == {16.0}


def test_report_from_wandb(results, tmp_path):
    report = write_report(
        results_dir=tmp_path / "nothing",
        reports_dir=tmp_path / "r",
        name="w",
        wandb_project="me/p",
        api=FakeApi(results),
    )
    assert report.html.exists() and set(report.figures) >= {"robust_vs_eps", "epoch_curves"}
