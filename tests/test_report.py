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

import matplotlib.colors
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
OFFSETS = (-1.0, 0.0, 1.0)      # per-seed offsets: mean = base, sample std (ddof=1) = 1
# (method, eps) -> base test accuracies of the early-stopped model: sa, ra_pgd, ra_aa
BASE = {("fast_at", 8.0): (80.0, 45.0, 42.0), ("fast_at", 16.0): (50.0, 20.0, 12.0),
        ("fast_bat", 8.0): (79.0, 48.0, 45.0), ("fast_bat", 16.0): (67.0, 26.0, 18.0)}
SECONDS = {"fast_at": 10.0, "fast_bat": 30.0}
EPOCHS = 6


def smooth_history(epochs=EPOCHS, robust=40.0, clean=70.0):
    return [{"epoch": e, "val_robust_acc": robust * e / epochs, "val_clean_acc": clean * e / epochs}
            for e in range(1, epochs + 1)]


def collapse_history(at=4, epochs=EPOCHS):
    """Robust accuracy rises to 30, then falls to ~1 at epoch ``at`` while clean accuracy jumps."""
    rows = []
    for e in range(1, epochs + 1):
        robust = 10.0 * e if e < at else 1.0
        clean = 50.0 + 5 * e if e < at else 85.0
        rows.append({"epoch": e, "val_robust_acc": robust, "val_clean_acc": clean})
    return rows


def run_config(method, eps, seed, hparams=None, **setting):
    return {"method": method, "eps": eps, "seed": seed, "epochs": EPOCHS, "hparams": hparams or {},
            **{**SETTING, **setting}, "pgd_steps": 50, "pgd_restarts": 10, "aa_points": 100, "val_points": 200,
            "val_pgd_steps": 10, "val_pgd_restarts": 1, "test_points": 500, "train_points": None}


def record(method, eps, seed, offset, status="finished", history=None, hparams=None, run_id=None, **setting):
    """(run_id, config dict, history rows, summary dict) of one synthetic run."""
    sa, ra, aa = BASE.get((method, eps), (60.0, 30.0, 25.0))
    co = method == "fast_at" and eps == 16.0
    history = history if history is not None else (collapse_history() if co else smooth_history())
    best = {"sa": sa + offset, "ra_pgd": ra + offset, "ra_aa": aa + offset}
    last = {"sa": sa + 5 + offset, "ra_pgd": 0.5 if co else ra - 1 + offset, "ra_aa": 0.0 if co else aa - 1 + offset}
    config = run_config(method, eps, seed, hparams, **setting)
    run_id = run_id or f"{method}-{config['dataset']}-{config['arch']}-eps{eps:g}-s{seed}-{zlib.crc32(str(hparams).encode()):x}"
    protocol = {"test_points": 500, "pgd": "PGD-50-10 (step eps/4)", "autoattack": "AutoAttack on 100 points",
                "validation": "PGD-10-1 on 200 validation points per epoch", "train_points": 45000}
    summary = {"status": status, "best": best, "last": last, "best_epoch": 3, "epochs_done": len(history),
               "epoch_seconds": SECONDS.get(method, 5.0) + offset, "protocol": protocol, "error": None}
    if status != "finished":
        summary.update(best=None, last=None, error="RuntimeError: boom")
    return run_id, config, history, summary, protocol


def write_run(results, *args, **kwargs) -> str:
    """Write one run folder as the training engine does (without its fsyncs, to stay fast)."""
    run_id, config, history, summary, protocol = record(*args, **kwargs)
    folder = Path(results) / "runs" / run_id
    folder.mkdir(parents=True)
    dump = lambda data: json.dumps(data, indent=2, sort_keys=True) + "\n"  # noqa: E731  (as records.write_json)
    (folder / "config.json").write_text(dump({"run_id": run_id, "name": run_id, "config": config,
                                              "protocol": protocol}))
    (folder / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in history))
    (folder / "summary.json").write_text(dump(summary))
    return run_id


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Four cells (fast_at, fast_bat x eps 8, 16) of three seeds each, and one failed run (tests add only study files)."""
    root = tmp_path_factory.mktemp("records") / "results"
    for (method, eps) in BASE:
        for seed, offset in zip(SEEDS, OFFSETS):
            write_run(root, method, eps, seed, offset)
    write_run(root, "fast_bat", 8.0, 9, 0.0, status="failed")        # left out of the tables
    return root


def write_trials(results, lambdas=(0.1, 1.0, 10.0, 100.0), robust=(30.0, 35.0, 40.0, 33.0)):
    folder = Path(results) / "studies"
    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame({"trial": range(len(lambdas) + 1), "state": ["COMPLETE"] * len(lambdas) + ["PRUNED"],
                          "lmbda": [*lambdas, 1000.0], "ll_step": 5000.0, "val_robust_acc": [*robust, 5.0],
                          "val_clean_acc": [75.0 + r / 10 for r in robust] + [80.0],
                          "sa": [70.0 + r / 10 for r in robust] + [None], "ra_pgd": [r - 2 for r in robust] + [None],
                          "run_id": [f"trial{i}" for i in range(len(lambdas) + 1)]})
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
    assert co_verdict(slow).flagged is False                        # falls below half, but 4 points an epoch
    diverged = [{"epoch": 1, "val_robust_acc": 30.0, "val_clean_acc": 70.0},
                {"epoch": 2, "val_robust_acc": 2.0, "val_clean_acc": 10.0}]
    assert co_verdict(diverged).flagged is False                    # clean accuracy collapsed too: not CO
    assert co_verdict([]).flagged is None


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
        assert row.sa_std == pytest.approx(1.0) and row.ra_pgd_std == pytest.approx(1.0)   # ddof=1
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
    assert tables.comparison_table(summary).empty          # a variant is not the paper's configuration
    assert figs.robust_vs_eps(summary) is None             # nor a point of the robustness-vs-eps curves


def test_comparison_with_the_paper_has_deltas_and_the_spread_verdict(results):
    summary = tables.summary_table(load_local(results).runs)
    comparison = tables.comparison_table(summary)
    paper = tables.paper_table().set_index(["method", "eps"])
    assert len(comparison) == len(BASE) * 3
    for row in comparison.itertuples():
        key = {"SA": "sa", "RA-PGD": "ra_pgd", "RA-AA": "ra_aa"}[row.metric]
        ours = BASE[(row.method, row.eps)][list(tables.METRICS).index(key)]
        p_mean, p_std = paper.loc[(row.method, int(row.eps)), [f"{key}_mean", f"{key}_std"]]
        assert row.ours_mean == pytest.approx(ours) and row.paper_mean == p_mean and row.paper_std == p_std
        assert row.delta == pytest.approx(ours - p_mean)
        assert row.within_spread == (abs(ours - p_mean) <= 2 * max(p_std, 1.0))


def test_within_spread_rule():
    assert tables.within_spread(50.0, 1.0, 48.5, 0.1)             # 1.5 <= 2 * 1.0
    assert not tables.within_spread(50.0, 0.5, 48.5, 0.1)         # 1.5 >  2 * 0.5
    assert not tables.within_spread(50.0, math.nan, 49.0, 0.4)    # single seed: paper std only
    assert tables.within_spread(math.nan, 1.0, 49.0, 0.4) is None


def test_cost_table_ratios(results):
    cost = tables.cost_table(load_local(results).runs)
    rel = dict(zip(cost["method"], cost["rel_fast_at"]))
    assert rel["fast_at"] == pytest.approx(1.0) and rel["fast_bat"] == pytest.approx(3.0)
    paper = tables.paper_table().groupby("method")["time_per_epoch_s"].first()
    assert dict(zip(cost["method"], cost["paper_rel_fast_at"]))["fast_bat"] == pytest.approx(
        paper["fast_bat"] / paper["fast_at"])


# -- figures ---------------------------------------------------------------------------------

def test_robust_vs_eps_has_a_solid_and_a_dashed_line_per_method(results):
    summary = tables.summary_table(load_local(results).runs)
    ax = figs.robust_vs_eps(summary).axes[0]
    lines = ax.get_lines()
    assert len(lines) == 4
    assert [l.get_linestyle() for l in lines] == ["-", "--", "-", "--"]
    assert {l.get_color() for l in lines[:2]} == {figs.METHOD_COLORS["fast_at"]}
    assert list(lines[0].get_xdata()) == [8.0, 16.0]
    assert list(lines[0].get_ydata()) == pytest.approx([45.0, 20.0])
    assert list(lines[1].get_ydata()) == pytest.approx([44.0, 0.5])
    assert "%" in ax.get_ylabel() and "/255" in ax.get_xlabel()


def test_epoch_curves_draw_every_run_at_the_largest_eps_and_mark_co(results):
    runset = load_local(results)
    robust_ax, clean_ax = figs.epoch_curves(runset.runs, runset.histories).axes[:2]
    assert len(robust_ax.get_lines()) == 6 and len(clean_ax.get_lines()) == 6    # 2 methods x 3 seeds at eps 16
    marks = robust_ax.collections[0].get_offsets()
    assert len(marks) == 3 and all(tuple(m) == (4.0, 1.0) for m in marks)        # the fast_at collapses


def test_clean_vs_robust_has_one_point_per_finished_run(results):
    ax = figs.clean_vs_robust(load_local(results).runs).axes[0]
    offsets = [c.get_offsets() for c in ax.collections]          # one collection per method x eps
    assert [len(o) for o in offsets] == [3, 3, 3, 3]
    assert [c.get_facecolor()[0][:3] for c in ax.collections][2] == pytest.approx(
        matplotlib.colors.to_rgb(figs.METHOD_COLORS["fast_bat"]))
    assert sorted(offsets[2][:, 0]) == pytest.approx([78.0, 79.0, 80.0])      # fast_bat's SA at eps 8


def test_lambda_sensitivity_plots_completed_trials_on_a_log_axis(tmp_path):
    trials = write_trials(tmp_path)
    ax = figs.lambda_sensitivity(trials).axes[0]
    assert ax.get_xscale() == "log"
    lines = ax.get_lines()
    assert len(lines) == 4 and all(len(l.get_xdata()) == 4 for l in lines)        # the pruned trial is left out
    assert list(lines[0].get_xdata()) == [0.1, 1.0, 10.0, 100.0] and list(lines[0].get_ydata()) == [30, 35, 40, 33]
    assert tuple(ax.collections[0].get_offsets()[0]) == (10.0, 40.0)             # the best lambda
    assert figs.lambda_sensitivity(trials.assign(state="FAIL")) is None


def test_training_cost_has_a_bar_per_method(results):
    cost = tables.cost_table(load_local(results).runs)
    ax = figs.training_cost(cost).axes[0]
    assert [p.get_height() for p in ax.patches] == pytest.approx([10.0, 30.0])
    assert "(s)" in ax.get_ylabel()


# -- the report folder and the command -------------------------------------------------------

def test_report_command_writes_markdown_html_figures_and_tables(results, tmp_path, capsys):
    write_trials(results)
    reports = tmp_path / "reports"
    code = cli_main(["report", "--results-dir", str(results), "--reports-dir", str(reports), "--name", "t",
                     "--method", "fast_at", "fast_bat", "--study", "lam"])
    assert code == 0 and "report.html" in capsys.readouterr().out
    folder = reports / "t"
    for name in ("robust_vs_eps", "epoch_curves", "clean_vs_robust", "lambda_sensitivity", "training_cost"):
        assert (folder / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (folder / f"{name}.pdf").read_bytes()[:4] == b"%PDF"
    for name in ("summary", "paper_comparison", "cost", "runs"):
        assert not pd.read_csv(folder / f"{name}.csv").empty
    page = (folder / "report.html").read_text()
    sources = re.findall(r'<img[^>]*src="([^"]+)"', page)
    assert len(sources) == 5
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:4] == b"\x89PNG"
    markdown = (folder / "report.md").read_text()
    for target in re.findall(r"\]\(([^)]+)\)", markdown):
        assert (folder / target).exists()
    assert "Beside the paper's Table 1" in markdown and "catastrophic overfitting" in markdown
    assert "PGD-50-10" in markdown                       # the protocol is written beside the tables
    assert "RuntimeError: boom" in markdown              # the failed run is listed, not averaged


def test_report_of_a_sweep_holds_exactly_its_runs(tmp_path):
    from suite.sweep import load_spec

    spec = tmp_path / "tiny.yaml"
    spec.write_text("name: tiny\nbase: {dataset: fashion_mnist, arch: small_cnn, epochs: 6}\n"
                    "grid: {method: [fast_at, fast_bat], eps: [8, 16]}\n")
    results = tmp_path / "results"
    for config in load_spec(spec, ["seeds=2"]).configs():
        write_run(results, config.method, config.eps, config.seed, OFFSETS[config.seed], run_id=config.run_id,
                  dataset="fashion_mnist", arch="small_cnn")
    write_run(results, "fast_at", 8.0, 5, 0.0, dataset="fashion_mnist", arch="small_cnn")     # not the sweep's
    report = write_report(results_dir=results, reports_dir=tmp_path / "reports", sweeps=[spec],
                          overrides=["seeds=2"])
    assert report.folder.name == "tiny"
    summary = pd.read_csv(report.tables["summary"])
    assert list(summary["n"]) == [2, 2, 2, 2] and set(summary["seeds"]) == {"0 1"}
    assert "paper_comparison" not in report.tables                # the paper has no Fashion-MNIST cell


def test_methods_absent_from_the_paper_are_reported_in_the_palettes_order_and_colours(tmp_path):
    """FGSM and N-FGSM are not in the paper's Table 1: their cells appear in our tables and figures,
    ordered and coloured by the one shared palette, and the comparison with the paper skips them."""
    from suite.report import palette

    results = tmp_path / "results"
    for method in ("n_fgsm", "fast_bat", "fgsm", "fast_at"):          # written out of order on purpose
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
    legend = {t.get_text(): h.get_color() for t, h in zip(ax.get_legend().texts, ax.get_legend().legend_handles)
              if t.get_text() in ("FGSM", "Fast-AT", "N-FGSM", "Fast-BAT")}
    assert list(legend) == [palette.method_label(m) for m in order]
    assert list(legend.values()) == [palette.color(m) for m in order]
    bars = figs.training_cost(cost).axes[0]
    assert [t.get_text() for t in bars.get_xticklabels()] == [palette.method_label(m) for m in order]
    colours = [palette.color(m) for m, _, _ in palette.PALETTE]
    assert len(set(colours)) == len(colours) and palette.OTHER_COLOR not in colours


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
        self.summary = flatten({k: summary.get(k) for k in keys})          # as WandbTracker.on_end writes it
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
    report = write_report(results_dir=tmp_path / "nothing", reports_dir=tmp_path / "r", name="w",
                          wandb_project="me/p", api=FakeApi(results))
    assert report.html.exists() and set(report.figures) >= {"robust_vs_eps", "epoch_curves"}
