"""The report's figures, one function each, returning a matplotlib ``Figure``.

Figures are built with ``matplotlib.figure.Figure`` directly (no pyplot, no GUI backend,
no global state), in one style, with one colour per method kept across every figure and one
method order (:mod:`.palette`). Each function returns None when its input has nothing to plot.
Settings (dataset x arch) are drawn as separate panels, titled with readable names
(:mod:`.names`). Every band and error bar is a 95% t-based confidence interval over seeds
(:mod:`.stats`), and the legend says so; the figures draw the finished runs of the tables' cells
(:mod:`.cells`).
"""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import LogFormatterSciNotation, LogLocator, NullFormatter

from ..methods import metadata as meta
from ..store.status import RunStatus
from . import cells as cell_rules
from .co import NOT_JUDGED
from .names import setting_title
from .palette import METHOD_COLORS, color, method_label, method_module, method_rank  # noqa: F401  (METHOD_COLORS: re-exported)
from .stats import MIN_SEEDS, interval

STYLE = {
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "legend.fontsize": 8,
    "lines.linewidth": 1.6,
    "lines.markersize": 5,
}
EPS_LABEL = "training and test ε (/255)"
CI_LABEL = "95% CI over seeds (t)"
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
    for ax in axes[n * per_panel :]:
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


NOT_JUDGED_NOTE = "no attack in training: not judged for CO"


def method_name(method: str) -> str:
    """The legend's name of a method; methods the CO rule does not judge say so."""
    return f"{method_label(method)} ({NOT_JUDGED_NOTE})" if method in NOT_JUDGED else method_label(method)


def _legend_outside(fig, methods, extra=(), columns: int = 4):
    """One legend for the whole figure, below the panels (never over the data), in ``columns`` columns."""
    handles = [Line2D([], [], color=color(m), marker="o", label=method_name(m)) for m in methods] + list(extra)
    fig.legend(handles=handles, loc="outside lower center", ncol=max(1, min(len(handles), columns)))


@styled
def robust_vs_eps(summary: pd.DataFrame) -> Figure | None:
    """(1) Robust test accuracy against training eps, one colour per method: PGD of the
    early-stopped model solid (band: its 95% confidence interval over seeds, none for one seed), of
    the last-epoch model dashed; AutoAttack (where measured) dotted, early-stopped filled triangles,
    last epoch hollow. A setting run at a single eps shows its methods side by side, each PGD point
    with its 95% interval as an error bar. Catastrophic overfitting shows as a dashed line (a hollow
    square) falling away from its solid one. Standard training has no last-epoch line: it is not
    judged for CO (its robustness early on is incidental). Where a method and eps have several
    configurations (labelled cells, e.g. a tuning study's trials) they are left out: the tables list
    them, the tuning figure draws a study."""
    summary = summary[summary["variant"] == ""].dropna(subset=["ra_pgd_mean"])
    if summary.empty:
        return None
    settings = by_setting(summary)
    fig, axes = _panels(len(settings))
    any_aa = any_band = any_bar = False
    for ax, ((dataset, arch), cell) in zip(axes, settings):
        eps_values = sorted(set(cell["eps"]))
        methods = _methods(cell)
        single = len(eps_values) == 1  # side by side, each with an error bar
        step = 0.04 * eps_values[0]
        for i, method in enumerate(methods):
            line = cell[cell["method"] == method].sort_values("eps")
            x = line["eps"] + ((i - (len(methods) - 1) / 2) * step if single else 0.0)
            c = color(method)
            judged = method not in NOT_JUDGED
            ax.plot(x, line["ra_pgd_mean"], "-o", color=c, label=method_label(method))
            if single:
                for column in ("ra_pgd", "last_ra_pgd") if judged else ("ra_pgd",):
                    if line[f"{column}_ci"].notna().any():
                        any_bar = True
                        ax.errorbar(
                            x, line[f"{column}_mean"], yerr=line[f"{column}_ci"], fmt="none", ecolor=c, capsize=3
                        )
            elif line["ra_pgd_ci"].notna().any():
                any_band = True
                ax.fill_between(
                    x,
                    line["ra_pgd_mean"] - line["ra_pgd_ci"],
                    line["ra_pgd_mean"] + line["ra_pgd_ci"],
                    color=c,
                    alpha=0.15,
                    lw=0,
                )
            if judged:
                ax.plot(x, line["last_ra_pgd_mean"], "--s", color=c, mfc="none")
            for column, style, fill in (("ra_aa_mean", ":^", c), ("last_ra_aa_mean", ":v", "none")):
                if column in line and line[column].notna().any() and (judged or column == "ra_aa_mean"):
                    measured = line[line[column].notna()]
                    ax.plot(x[measured.index], measured[column], style, color=c, mfc=fill)
                    any_aa = True
        ax.set(title=setting_title(dataset, arch), xlabel=EPS_LABEL, ylabel="robust test accuracy (%)")
        ax.set_xticks(eps_values)
        if single:
            ax.set_xlim(eps_values[0] - len(methods) * step, eps_values[0] + len(methods) * step)
    extra = [
        Line2D([], [], color="k", ls="-", marker="o", label="PGD, early-stopped"),
        Line2D([], [], color="k", ls="--", mfc="none", marker="s", label="PGD, last epoch"),
    ]
    if any_aa:
        extra += [
            Line2D([], [], color="k", ls=":", marker="^", label="AutoAttack, early-stopped"),
            Line2D([], [], color="k", ls=":", marker="v", mfc="none", label="AutoAttack, last epoch"),
        ]
    if any_band:
        extra.append(Patch(color="0.6", alpha=0.35, label=f"band: {CI_LABEL}, PGD early-stopped"))
    if any_bar:
        extra.append(Line2D([], [], color="0.3", marker="|", ls="none", markersize=10, label=f"error bar: {CI_LABEL}"))
    _legend_outside(fig, _methods(summary), extra, columns=2 * min(len(settings), 3))
    return fig


EPOCH_PANELS = {"val_robust_acc": "validation PGD accuracy (%)", "val_clean_acc": "validation clean accuracy (%)"}
DIAGNOSTIC_PANELS = {
    "train_pgd_acc": "PGD accuracy, training points (%)",
    "fgsm_pgd_cos": "cos(FGSM, PGD perturbation)",
    "grad_align_cos": "gradient alignment cos",
}


def _stacked_histories(cell: pd.DataFrame, histories: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The per-epoch rows of ``cell``'s runs, one frame with the run's method and run id."""
    frames = [
        histories[r.run_id].assign(method=r.method, run_id=r.run_id) for r in cell.itertuples() if r.run_id in histories
    ]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _curve_grid(
    runs: pd.DataFrame, histories: dict[str, pd.DataFrame], panels: dict[str, str], skip=frozenset()
) -> Figure | None:
    """Small multiples: one row per setting x eps, one column per metric of ``panels``; per method
    the mean over seeds (line) and its 95% confidence interval (band); an X at each run's CO epoch
    on its own value (dotted vertical lines where a panel's metric was not logged that epoch). The
    finished runs of single-configuration cells only (:mod:`.cells`)."""
    runs = cell_rules.prepared(runs)
    runs = runs[runs["run_id"].isin(list(histories)) & ~runs["method"].isin(list(skip)) & (runs["variant"] == "")]
    rows = [
        (setting, eps, group) for setting, cell in by_setting(runs) for eps, group in cell.groupby("eps", sort=True)
    ]
    if not rows:
        return None
    fig = Figure(figsize=(3.3 * len(panels), 2.5 * len(rows) + 0.6), layout="constrained")
    axes = fig.subplots(len(rows), len(panels), squeeze=False)
    collapsed = banded = False
    for row_axes, ((dataset, arch), eps, group) in zip(axes, rows):
        stacked = _stacked_histories(group, histories)
        row_axes[0].set_title(f"{setting_title(dataset, arch)}, ε = {eps:g}/255", loc="left")
        for ax, (column, label) in zip(row_axes, panels.items()):
            ax.set(xlabel="epoch", ylabel=label)
            if column not in stacked or stacked[column].isna().all():
                ax.text(0.5, 0.5, "not logged", transform=ax.transAxes, ha="center", va="center", color="0.5")
                continue
            for method in _methods(group):
                rows_m = stacked[stacked["method"] == method].dropna(subset=[column])
                if rows_m.empty:
                    continue
                by_epoch = [(epoch, interval(v)) for epoch, v in rows_m.groupby("epoch")[column]]
                epochs = [e for e, _ in by_epoch]
                means = np.array([i.mean for _, i in by_epoch])
                halves = np.array([i.half for _, i in by_epoch])
                ax.plot(epochs, means, color=color(method), marker="." if len(epochs) < 12 else None)
                if np.isfinite(halves).any():
                    banded = True
                    ax.fill_between(epochs, means - halves, means + halves, color=color(method), alpha=0.18, lw=0)
            for run in group.itertuples():
                if pd.isna(run.co) or not run.co:
                    continue
                collapsed = True
                at = stacked[(stacked["run_id"] == run.run_id) & (stacked["epoch"] == run.co_epoch)][column]
                if len(at) and not pd.isna(at.iloc[0]):
                    ax.scatter(
                        [run.co_epoch],
                        [float(at.iloc[0])],
                        marker="X",
                        s=60,
                        color=color(run.method),
                        edgecolors="k",
                        linewidths=0.6,
                        zorder=3,
                    )
                else:
                    ax.axvline(run.co_epoch, color=color(run.method), ls=":", lw=1)
    extra = [Patch(color="0.6", alpha=0.35, label=f"band: {CI_LABEL} (line: mean)")] if banded else []
    if collapsed:
        extra.append(Line2D([], [], color="0.4", marker="X", mec="k", ls="none", label="epoch of CO (per run)"))
    _legend_outside(fig, _methods(runs), extra, columns=2 * len(panels))
    return fig


@styled
def epoch_curves(runs: pd.DataFrame, histories: dict[str, pd.DataFrame]) -> Figure | None:
    """(2) Per-epoch validation PGD (left) and clean (right) accuracy of every method at every eps
    (one row per setting and eps): the mean over seeds as a line, its 95% CI as a band; an X marks
    each run's epoch of catastrophic overfitting, where its CO verdict fires. Standard training is
    drawn but not judged: its robust accuracy fades as it fits the clean data, which is not CO."""
    return _curve_grid(runs, histories, EPOCH_PANELS)


@styled
def co_diagnostics(runs: pd.DataFrame, histories: dict[str, pd.DataFrame]) -> Figure | None:
    """(2b) The catastrophic-overfitting diagnostics per epoch, beside the curves above (same rows):
    PGD accuracy on fixed training points, the cosine between the FGSM and the PGD perturbation of
    those points, and the gradient-alignment cosine (GradAlign's: input gradients at the point and
    at a random point of the ε-ball); mean over seeds and its 95% CI, an X at each run's epoch of
    collapse. At CO the training PGD accuracy and both cosines fall with the validation robustness:
    the single step no longer approximates the inner maximum. Standard training is left out (not
    judged)."""
    return _curve_grid(runs, histories, DIAGNOSTIC_PANELS, skip=NOT_JUDGED)


@styled
def clean_vs_robust(runs: pd.DataFrame) -> Figure | None:
    """(3) Clean against PGD robust test accuracy of the early-stopped model, one point per
    finished run, coloured by method, its marker by training eps."""
    runs = runs[runs["status"] == RunStatus.FINISHED].dropna(subset=["sa", "ra_pgd"])
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
                    ax.scatter(
                        points["sa"].astype(float),
                        points["ra_pgd"].astype(float),
                        color=color(method),
                        marker=marker,
                        alpha=0.85,
                        edgecolors="none",
                    )
        ax.set(
            title=setting_title(dataset, arch),
            xlabel="clean test accuracy (%)",
            ylabel="PGD robust test accuracy (%)",
        )
        _method_legend(
            ax,
            _methods(cell),
            [Line2D([], [], color="0.4", marker=m, ls="none", label=f"ε = {e:g}/255") for e, m in markers.items()],
        )
    return fig


LAMBDA_SERIES = {
    "val_robust_acc": ("validation robust (objective)", "-o"),
    "val_clean_acc": ("validation clean", "-^"),
    "ra_pgd": ("test RA-PGD", "--o"),
    "sa": ("test SA (clean)", "--^"),
}
STOPPED_STATES = {"PRUNED": ("pruned", "X", "#d62728"), "FAIL": ("failed", "x", "k")}


def _state(value) -> str:
    return str(value).upper().replace("TRIALSTATE.", "")


def searched_columns(trials: pd.DataFrame) -> list[str]:
    """The hyperparameters a study searched: its ``searched`` column (a study exported by this
    suite), else the hyperparameter columns (those between ``state`` and ``val_robust_acc``)."""
    if "searched" in trials and trials["searched"].notna().any():
        return [c for c in str(trials["searched"].dropna().iloc[0]).split(",") if c in trials]
    columns = list(trials.columns)
    end = columns.index("val_robust_acc") if "val_robust_acc" in columns else len(columns)
    return [c for c in columns[columns.index("state") + 1 if "state" in columns else 0 : end] if c != "trial"]


def study_method(trials: pd.DataFrame) -> str:
    """The study's method: its ``method`` column, else the run configuration's default method."""
    if "method" in trials and trials["method"].notna().any():
        return str(trials["method"].dropna().iloc[0])
    from ..config import RunConfig

    return RunConfig.method


@styled
def tune_sensitivity(trials: pd.DataFrame, method: str | None = None) -> Figure | None:
    """(4) A tuning study's robust (circles) and clean (triangles) accuracy against the (first)
    searched hyperparameter (a log axis where it spans a decade or more), validation solid and test
    dashed, from its exported trials; the star marks the chosen value (best validation robust
    accuracy, the study's objective). Pruned (red X) and failed (black x) trials are drawn at the
    validation robust accuracy they last reported, labelled with that epoch; a failed trial that
    reported nothing sits on the x axis."""
    if trials is None or trials.empty or "state" not in trials:
        return None
    searched = searched_columns(trials)
    if not searched:
        return None
    param = searched[0]
    method = method or study_method(trials)
    symbol = meta.symbol(method_module(method), param)
    trials = trials.assign(state=trials["state"].map(_state)).dropna(subset=[param])
    done = trials[trials["state"] == "COMPLETE"].dropna(subset=["val_robust_acc"]).sort_values(param)
    stopped = trials[trials["state"].isin(list(STOPPED_STATES))]
    if done.empty and stopped.empty:
        return None
    fig = Figure(figsize=(7.0, 3.6), layout="constrained")
    ax = fig.subplots()
    for column, (label, style) in LAMBDA_SERIES.items():
        if column in done and done[column].notna().any():
            ax.plot(done[param], done[column], style, color=color(method), label=label, mfc="none")
    if not done.empty:
        best = done.loc[done["val_robust_acc"].idxmax()]
        ax.scatter(
            [best[param]],
            [best["val_robust_acc"]],
            marker="*",
            s=220,
            color="gold",
            edgecolors="k",
            zorder=3,
            label=f"chosen {symbol} = {best[param]:.3g}",
        )
    has_last = "last_reported" in stopped
    for state, (name, marker, mark_color) in STOPPED_STATES.items():
        group = stopped[stopped["state"] == state]
        if group.empty:
            continue
        values = group["last_reported"] if has_last else group["val_robust_acc"]
        shown = values.fillna(0.0).astype(float)
        what = "last reported validation robust" if has_last else "best validation robust before stopping"
        what += ", 0 if none" if group[values.name].isna().any() else ""
        ax.scatter(
            group[param],
            shown,
            marker=marker,
            s=60,
            color=mark_color,
            zorder=3,
            label=f"{name} ({len(group)}): {what}",
        )
        epochs = group["last_reported_epoch"] if "last_reported_epoch" in group else pd.Series(index=group.index)
        for lam, value, epoch in zip(group[param], shown, epochs):
            if not pd.isna(epoch):
                ax.annotate(
                    f"ep {int(epoch)}",
                    (lam, value),
                    textcoords="offset points",
                    xytext=(5, -10),
                    fontsize=7,
                    color=mark_color,
                )
    values = trials[param].astype(float)
    log = bool((values > 0).all() and values.max() >= 10 * values.min())
    if log:
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10))
        ax.xaxis.set_major_formatter(LogFormatterSciNotation(base=10))
        ax.xaxis.set_minor_formatter(NullFormatter())  # labelled decades only: no overlapping minor labels
    others = [c for c in searched[1:] if trials[c].nunique() > 1]
    note = f" ({', '.join(others)} also searched)" if others else ""
    counts = ", ".join(f"{n} {s.lower()}" for s, n in trials["state"].value_counts().items())
    ax.set(
        title=f"{method_label(method)}: {symbol} sensitivity, {len(trials)} trials ({counts}){note}",
        xlabel=f"{symbol} (log scale)" if log else symbol,
        ylabel="accuracy (%)",
    )
    fig.legend(loc="outside right upper")
    return fig


@styled
def training_cost(cost: pd.DataFrame) -> Figure | None:
    """(5) Mean seconds per training epoch by method (error bar: its 95% confidence interval over
    the runs), annotated with the ratio to Fast-AT in the same setting."""
    cost = cost.dropna(subset=["seconds_mean"])
    if cost.empty:
        return None
    settings = by_setting(cost)
    fig, axes = _panels(len(settings))
    for ax, ((dataset, arch), cell) in zip(axes, settings):
        x = np.arange(len(cell))
        bars = ax.bar(
            x,
            cell["seconds_mean"],
            yerr=cell["seconds_ci"].fillna(0),
            capsize=3,
            color=[color(m) for m in cell["method"]],
        )
        labels = ["" if pd.isna(r) else f"×{r:.2f}" for r in cell["rel_fast_at"]]
        ax.bar_label(bars, labels=labels, padding=2, fontsize=8)
        ax.set_xticks(x, [method_label(m) for m in cell["method"]])
        ax.set(title=setting_title(dataset, arch), ylabel="training time per epoch (s)")
    fig.legend(
        handles=[
            Line2D([], [], color="k", marker="|", ls="none", markersize=10, label="error bar: 95% CI over runs (t)")
        ],
        loc="outside lower center",
    )
    return fig


@styled
def paired_differences(paired: pd.DataFrame, baseline: str) -> Figure | None:
    """(6) A forest plot of the paired comparison with the baseline (``suite report --baseline``):
    per setting (rows) and metric (columns), each method and eps's mean per-seed difference from the
    baseline (points; right of the dashed zero line: above the baseline) with its 95% confidence
    interval as an error bar; filled where the Holm-adjusted paired t-test says it differs, hollow
    where it does not, grey where fewer than 3 seeds pair up (no test). Comparisons of a single pair
    have no interval and are left out."""
    shown = paired[paired["pairs"] >= 2] if paired is not None and len(paired) else None
    if shown is None or shown.empty:
        return None
    metrics = [m for m in dict.fromkeys(shown["metric"])]
    settings = by_setting(shown)
    heights = [1.0 + 0.28 * len(cell.drop_duplicates(["method", "variant", "eps"])) for _, cell in settings]
    fig = Figure(figsize=(3.3 * len(metrics), sum(heights) + 0.9), layout="constrained")
    axes = fig.subplots(len(settings), len(metrics), squeeze=False, gridspec_kw={"height_ratios": heights})
    for row_axes, ((dataset, arch), cell) in zip(axes, settings):
        entries = list(
            dict.fromkeys(
                (m, v, e)
                for m, v, e in sorted(
                    zip(cell["method"], cell["variant"], cell["eps"]),
                    key=lambda k: (method_rank(k[0]), k[0], k[1], k[2]),
                )
            )
        )
        names = [f"{method_label(m)}{f' ({v})' if v else ''}, ε {e:g}" for m, v, e in entries]
        for ax, metric in zip(row_axes, metrics):
            ax.axvline(0.0, color="k", ls="--", lw=1)
            for y, (method, variant, eps) in enumerate(entries):
                hit = cell[
                    (cell["metric"] == metric)
                    & (cell["method"] == method)
                    & (cell["variant"] == variant)
                    & (cell["eps"] == eps)
                ]
                for r in hit.itertuples():
                    tested = r.pairs >= MIN_SEEDS and not pd.isna(r.p_holm)
                    c = color(method) if tested else "0.6"
                    ax.errorbar(
                        [r.difference],
                        [y],
                        xerr=[[r.ci], [r.ci]],
                        fmt="o",
                        color=c,
                        mfc=c if r.verdict in ("higher", "lower") else "white",
                        capsize=3,
                    )
            ax.set_yticks(range(len(entries)), names if ax is row_axes[0] else [""] * len(entries))
            ax.set_ylim(len(entries) - 0.5, -0.5)
            ax.set_title(f"{setting_title(dataset, arch)}\n{metric}", loc="left")
            ax.set_xlabel(f"difference from {method_label(baseline)} (points)")
    legend = [
        Line2D([], [], color="0.3", marker="o", ls="none", label="Holm-adjusted p < 0.05"),
        Line2D([], [], color="0.3", marker="o", mfc="white", ls="none", label="no difference shown"),
        Line2D([], [], color="0.6", marker="o", mfc="white", ls="none", label=f"fewer than {MIN_SEEDS} pairs: no test"),
        Line2D(
            [],
            [],
            color="0.3",
            marker="|",
            ls="none",
            markersize=10,
            label="error bar: 95% CI of the mean paired difference (t)",
        ),
    ]
    fig.legend(handles=legend, loc="outside lower center", ncol=2)
    return fig
