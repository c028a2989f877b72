"""``suite report``: tables beside the paper's and the figures of catastrophic overfitting."""

from __future__ import annotations

from pathlib import Path

from ..errors import SuiteError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write a report (tables, figures, HTML) of finished runs",
        description="Write reports/<name>/ with report.md, a self-contained report.html, the figures (PNG, PDF), "
        "the tables (CSV) and the compact and paper tables (LaTeX, booktabs) of the selected runs: by sweep, by "
        "study, or by filters.",
    )
    g = parser.add_argument_group("which runs")
    g.add_argument(
        "--sweep", type=Path, action="append", metavar="SPEC", help="the runs of this sweep spec (repeatable)"
    )
    g.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="the overrides the sweep ran with, so its run ids match (repeatable)",
    )
    from .sweep import add_max_runs_argument

    add_max_runs_argument(g)
    g.add_argument(
        "--study",
        metavar="NAME",
        help="a tuning study: its λ figure (and its runs, when no sweep or filter selects others)",
    )
    g.add_argument("--method", nargs="+", help="only runs of these methods")
    g.add_argument("--dataset", nargs="+", help="only runs on these data sets")
    g.add_argument("--arch", nargs="+", help="only runs of these architectures")
    g.add_argument("--eps", type=float, nargs="+", help="only runs at these budgets (in /255)")
    g.add_argument(
        "--from-wandb",
        metavar="PROJECT",
        help="read the runs from this W&B project (entity/project) instead of the local run records",
    )
    g = parser.add_argument_group("comparison")
    g.add_argument(
        "--baseline",
        metavar="METHOD",
        default="fast_at",
        help="compare every other method with this one, paired by seed, with 95%% CIs and Holm-corrected "
        "paired t-tests (default: fast_at)",
    )
    g = parser.add_argument_group("where")
    g.add_argument("--name", help="report folder name (default: the sweep's or study's name, else 'report')")
    g.add_argument("--results-dir", type=Path, default=Path("results"), help="where the run records are")
    g.add_argument("--reports-dir", type=Path, default=Path("reports"), help="where reports/<name>/ goes")
    parser.set_defaults(func=main)


def sweep_run_ids(spec_paths, overrides=(), max_runs: int | None = None) -> tuple[list[str], list[str]]:
    """The run ids of the sweeps' configurations, and the sweeps' names."""
    from ..experiments.sweep import DEFAULT_MAX_RUNS, load_spec

    run_ids, names = [], []
    for path in spec_paths:
        spec = load_spec(path, overrides, max_runs=max_runs or DEFAULT_MAX_RUNS)
        names.append(spec.name)
        run_ids += [config.resolved().run_id for config in spec.configs()]
    return run_ids, names


def write_report(
    *,
    results_dir: Path,
    reports_dir: Path,
    name: str | None = None,
    sweeps=(),
    overrides=(),
    study: str | None = None,
    filters: dict | None = None,
    wandb_project: str | None = None,
    api=None,
    baseline: str = "fast_at",
    max_runs: int | None = None,
):
    """Select the runs, build the report and return it (:class:`suite.report.Report`); ``baseline``:
    the method of the paired comparison."""
    from ..methods import check_name
    from ..report import build_report, load_local, study_trials
    from ..report.wandb_source import load_wandb

    check_name(baseline, "baseline method")  # a built-in, an installed plug-in or a dotted path
    for method in (filters or {}).get("method") or ():
        check_name(method)
    filters = {k: v for k, v in (filters or {}).items() if v is not None}
    run_ids, names, selection = None, [], []
    if sweeps:
        run_ids, names = sweep_run_ids(sweeps, overrides, max_runs)
        selection.append(f"sweep {', '.join(names)}" + (f" with {' '.join(overrides)}" if overrides else ""))
    trials = study_trials(results_dir, study) if study else None
    if study:
        names.append(study)
        selection.append(f"study {study}")
        if run_ids is None and not filters and "run_id" in trials:  # the study's own runs
            run_ids = trials["run_id"].dropna().tolist()
    selection += [f"{k} in {' '.join(str(x) for x in v)}" for k, v in filters.items()]
    if wandb_project:
        try:
            runset = load_wandb(wandb_project, run_ids, api=api, **filters)
        except SuiteError:
            raise
        except Exception as err:  # no API key, no network, no such project: one line, exit 2
            detail = " ".join(str(err).split())[:200] or type(err).__name__
            raise SuiteError(
                f"cannot read W&B project {wandb_project!r} ({type(err).__name__}: {detail}); "
                f"set WANDB_API_KEY or run `wandb login`, check entity/project, or build the report "
                f"from the local records (drop --from-wandb)"
            ) from None
    else:
        runset = load_local(results_dir, run_ids, **filters)
    if runset.runs.empty and trials is None:
        where = f"W&B project {wandb_project}" if wandb_project else f"{Path(results_dir) / 'runs'}"
        raise SuiteError(
            f"no runs under {where} match the selection ({'; '.join(selection) or 'all runs'}); "
            f"run them first (suite sweep / suite reproduce)"
        )
    name = name or "-".join(dict.fromkeys(names)) or "report"
    title = f"Fast-BAT reproduction report: {name}"
    return build_report(
        runset,
        Path(reports_dir) / name,
        title=title,
        trials=trials,
        selection="; ".join(selection),
        baseline=baseline,
    )


def main(args) -> int:
    report = write_report(
        results_dir=args.results_dir,
        reports_dir=args.reports_dir,
        name=args.name,
        sweeps=args.sweep or (),
        overrides=args.overrides,
        study=args.study,
        filters={"method": args.method, "dataset": args.dataset, "arch": args.arch, "eps": args.eps},
        wandb_project=args.from_wandb,
        baseline=args.baseline,
        max_runs=args.max_runs,
    )
    print(f"report: {report.markdown}\n        {report.html}")
    print(
        f"figures: {', '.join(sorted(report.figures)) or 'none'}; tables: {', '.join(sorted(report.tables)) or 'none'}"
        f"; LaTeX: {', '.join(sorted(report.latex)) or 'none'}"
    )
    return 0
