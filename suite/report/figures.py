"""The report's figures, one function each, returning a matplotlib ``Figure``.

Figures are built with ``matplotlib.figure.Figure`` directly (no pyplot, no GUI backend,
no global state), in one style, with one colour per method kept across every figure and one
method order (:mod:`.palette`). Each function returns None when its input has nothing to plot.
Settings (dataset x arch) are drawn as separate panels.
"""
from __future__ import annotations

import math

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .palette import METHOD_COLORS, color, method_label, method_rank  # noqa: F401  (METHOD_COLORS: re-exported)

STYLE = {"font.size": 9, "axes.titlesize": 9, "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
         "axes.spines.right": False, "legend.frameon": False, "legend.fontsize": 8, "lines.linewidth": 1.6,
         "lines.markersize": 5}
EPS_LABEL = "training and test ε (/255)"
EPS_MARKERS = ["o", "s", "^", "D", "v", "P", "*", "h"]


def _methods(frame: pd.DataFrame) -> list[str]:
    return sorted(set(frame["method"]), key=lambda m: (method_rank(m), m))


def by_setting(frame: pd.DataFrame) -> list[tuple[tuple[str, str], pd.DataFrame]]:
    """``((dataset, arch), rows)`` of each setting in ``frame``, in order of first appearance."""
    return list(frame.groupby(["dataset", "arch"], sort=False))


def _panels(n: int, per_panel: int = 1, width: float = 4.2, height: float = 3.2):
    """A figure with ``n`` rows of ``per_panel`` axes each (one row per setting, up to 3 settings a row
    when ``per_panel`` is 1)."""
    cols = min(n, 3) if per_panel == 1 else per_panel
    rows = math.ceil(n / cols) if per_panel == 1 else n
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n * per_panel:]:
        ax.set_visible(False)
    return fig, axes


def _method_legend(ax, methods, extra=()):
    handles = [Line2D([], [], color=color(m), marker="o", label=method_label(m)) for m in methods]
    ax.legend(handles=handles + list(extra), loc="best")


def styled(fn):
    """Build the figure under :data:`STYLE`."""
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(STYLE):
            return fn(*args, **kwargs)
    wrapper.__name__, wrapper.__doc__ = fn.__name__, fn.__doc__
    return wrapper


@styled
def robust_vs_eps(summary: pd.DataFrame) -> Figure | None:
    """(1) PGD robust accuracy against training eps, one colour per method: the early-stopped
    model solid (band: ± std over seeds), the last-epoch model dashed. Catastrophic overfitting
    shows as a dashed line falling away from its solid one. Cells whose runs differ in their
    hyperparameters (a tuning study's trials) are left out; the λ figure shows those."""
    summary = summary[summary["variant"] == ""].dropna(subset=["ra_pgd_mean"])
    if summary.empty:
        return None
    settings = by_setting(summary)
    fig, axes = _panels(len(settings))
    for ax, ((dataset, arch), cell) in zip(axes, settings):
        for method, line in cell.groupby("method", sort=False):
            line = line.sort_values("eps")
            ax.plot(line["eps"], line["ra_pgd_mean"], "-o", color=color(method), label=method_label(method))
            ax.fill_between(line["eps"], line["ra_pgd_mean"] - line["ra_pgd_std"].fillna(0),
                            line["ra_pgd_mean"] + line["ra_pgd_std"].fillna(0), color=color(method), alpha=0.15, lw=0)
            ax.plot(line["eps"], line["last_ra_pgd_mean"], "--s", color=color(method), mfc="none")
        ax.set(title=f"{dataset}, {arch}", xlabel=EPS_LABEL, ylabel="PGD robust test accuracy (%)")
        ax.set_xticks(sorted(set(cell["eps"])))
        _method_legend(ax, _methods(cell), [Line2D([], [], color="k", ls="-", label="early-stopped"),
                                            Line2D([], [], color="k", ls="--", mfc="none", marker="s",
                                                   label="last epoch")])
    return fig


@styled
def epoch_curves(runs: pd.DataFrame, histories: dict[str, pd.DataFrame]) -> Figure | None:
    """(2) Per-epoch validation PGD (left) and clean (right) accuracy of every run at each
    setting's largest eps, one line per run; an X marks the epoch where a run's CO verdict fires."""
    runs = runs[runs["run_id"].isin(list(histories))]
    if runs.empty:
        return None
    settings = by_setting(runs)
    fig, axes = _panels(len(settings), per_panel=2)
    for i, ((dataset, arch), cell) in enumerate(settings):
        eps = cell["eps"].max()
        cell = cell[cell["eps"] == eps]
        robust_ax, clean_ax = axes[2 * i], axes[2 * i + 1]
        collapses = []
        for run in cell.itertuples():
            history = histories[run.run_id].sort_values("epoch")
            robust_ax.plot(history["epoch"], history["val_robust_acc"], color=color(run.method), alpha=0.85)
            clean_ax.plot(history["epoch"], history["val_clean_acc"], color=color(run.method), alpha=0.85)
            if not pd.isna(run.co) and run.co:
                at = history[history["epoch"] == run.co_epoch]["val_robust_acc"]
                collapses.append((run.co_epoch, float(at.iloc[0]) if len(at) else np.nan))
        extra = []
        if collapses:
            x, y = zip(*collapses)
            robust_ax.scatter(x, y, marker="X", s=70, color="k", zorder=3)
            extra = [Line2D([], [], color="k", marker="X", ls="none", label="CO epoch")]
        title = f"{dataset}, {arch}, ε = {eps:g}/255"
        robust_ax.set(title=title, xlabel="epoch", ylabel="validation PGD robust accuracy (%)")
        clean_ax.set(title=title, xlabel="epoch", ylabel="validation clean accuracy (%)")
        _method_legend(robust_ax, _methods(cell), extra)
    return fig


@styled
def clean_vs_robust(runs: pd.DataFrame) -> Figure | None:
    """(3) Clean against PGD robust test accuracy of the early-stopped model, one point per
    finished run, coloured by method, its marker by training eps."""
    runs = runs[runs["status"] == "finished"].dropna(subset=["sa", "ra_pgd"])
    if runs.empty:
        return None
    settings = by_setting(runs)
    fig, axes = _panels(len(settings))
    for ax, ((dataset, arch), cell) in zip(axes, settings):
        markers = dict(zip(sorted(set(cell["eps"])), EPS_MARKERS * len(cell)))
        for method in _methods(cell):
            for eps, marker in markers.items():
                points = cell[(cell["method"] == method) & (cell["eps"] == eps)]
                if len(points):
                    ax.scatter(points["sa"].astype(float), points["ra_pgd"].astype(float), color=color(method),
                               marker=marker, alpha=0.85, edgecolors="none")
        ax.set(title=f"{dataset}, {arch}", xlabel="clean test accuracy (%)", ylabel="PGD robust test accuracy (%)")
        _method_legend(ax, _methods(cell), [Line2D([], [], color="0.4", marker=m, ls="none", label=f"ε = {e:g}/255")
                                            for e, m in markers.items()])
    return fig


LAMBDA_SERIES = {"val_robust_acc": ("validation robust (objective)", "-o"), "val_clean_acc": ("validation clean", "-^"),
                 "ra_pgd": ("test RA-PGD", "--o"), "sa": ("test SA (clean)", "--^")}


@styled
def lambda_sensitivity(trials: pd.DataFrame, method: str = "fast_bat") -> Figure | None:
    """(4) A tuning study's robust (circles) and clean (triangles) accuracy against lambda (log
    axis), validation solid and test dashed, from its exported complete trials; the star marks
    the chosen value (best validation robust accuracy, the study's objective)."""
    if trials is None or "lmbda" not in trials:
        return None
    done = trials[trials["state"].astype(str).str.upper().isin(["COMPLETE", "TRIALSTATE.COMPLETE"])]
    done = done.dropna(subset=["lmbda", "val_robust_acc"]).sort_values("lmbda")
    if done.empty:
        return None
    fig, axes = _panels(1, width=5.0)
    ax = axes[0]
    for column, (label, style) in LAMBDA_SERIES.items():
        if column in done and done[column].notna().any():
            ax.plot(done["lmbda"], done[column], style, color=color(method), label=label, mfc="none")
    best = done.loc[done["val_robust_acc"].idxmax()]
    ax.scatter([best["lmbda"]], [best["val_robust_acc"]], marker="*", s=220, color="gold", edgecolors="k", zorder=3,
               label=f"chosen λ = {best['lmbda']:.3g}")
    ax.set_xscale("log")
    searched = [c for c in ("ll_step",) if c in done and done[c].nunique() > 1]
    note = f" ({', '.join(searched)} also searched)" if searched else ""
    ax.set(title=f"{method_label(method)}: λ sensitivity, {len(done)} trials{note}", xlabel="λ (log scale)",
           ylabel="accuracy (%)")
    ax.legend(loc="best")
    return fig


@styled
def training_cost(cost: pd.DataFrame) -> Figure | None:
    """(5) Mean seconds per training epoch by method (error bar: std over runs), annotated with
    the ratio to Fast-AT in the same setting."""
    cost = cost.dropna(subset=["seconds_mean"])
    if cost.empty:
        return None
    settings = by_setting(cost)
    fig, axes = _panels(len(settings))
    for ax, ((dataset, arch), cell) in zip(axes, settings):
        x = np.arange(len(cell))
        bars = ax.bar(x, cell["seconds_mean"], yerr=cell["seconds_std"].fillna(0), capsize=3,
                      color=[color(m) for m in cell["method"]])
        labels = ["" if pd.isna(r) else f"×{r:.2f}" for r in cell["rel_fast_at"]]
        ax.bar_label(bars, labels=labels, padding=2, fontsize=8)
        ax.set_xticks(x, [method_label(m) for m in cell["method"]])
        ax.set(title=f"{dataset}, {arch}", ylabel="training time per epoch (s)")
    return fig
