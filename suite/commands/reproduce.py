"""``suite reproduce [PRESET]``: a preset end to end: its sweeps, its tuning study, its report."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import SuiteError
from .run import add_option_arguments, options_from_args
from .sweep import add_max_runs_argument, add_slurm_arguments, check_launch_numbers, slurm_parameters

EPILOG = """examples:
  suite reproduce --list                         # the presets, their runs and cost
  suite reproduce                                # the smoke preset (CPU minutes)
  suite reproduce table1 --set seeds=3 --workers 4
  suite reproduce co --executor slurm --partition gpu
  suite reproduce table1 --executor slurm --partition gpu --no-wait   # submit and return
  suite reproduce smoke --set epochs=1 --set train_points=256 --study-set n_trials=2
Rerunning a preset continues where it stopped: finished runs are skipped and the study
resumes. --set overrides reach the sweeps, and the plain run settings among them (epochs=...,
train_points=...) the study too; --study-set reaches only the study."""


def register(subparsers) -> None:
    from ..experiments.presets import DEFAULT, PRESETS

    parser = subparsers.add_parser(
        "reproduce",
        help="run a preset end to end: sweeps, study, report",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run a preset's sweeps and tuning study, then write its report. Exits non-zero if any run failed.",
    )
    parser.add_argument(
        "preset", nargs="?", default=DEFAULT, choices=list(PRESETS), help=f"default {DEFAULT}; see --list"
    )
    parser.add_argument("--list", action="store_true", help="list the presets with their runs, epochs and cost")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="sweep override (repeatable), as in `suite sweep --set`: epochs=2, seeds=3, eps=[8]",
    )
    parser.add_argument(
        "--study-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="study override (repeatable), as in `suite tune --set`: n_trials=5",
    )
    parser.add_argument(
        "--executor",
        choices=["local", "slurm"],
        default="local",
        help="where the sweep runs train (the study runs here)",
    )
    parser.add_argument(
        "--workers", type=int, help="runs (and study workers) at a time (default: --runs-per-gpu per GPU, else 1)"
    )
    parser.add_argument(
        "--runs-per-gpu",
        type=int,
        metavar="K",
        help="runs sharing each GPU, locally and in each Slurm array task (default on GPUs: 1 "
        "with CUDA graphs, 4 with --no-cuda-graphs; 1 on CPU)",
    )
    parser.add_argument(
        "--share",
        choices=["processes", "packed"],
        help="how runs share a GPU: a process each, or packed in one process on their own CUDA streams "
        "(default processes; docs/gpu.md#runs-per-gpu)",
    )
    add_max_runs_argument(parser)
    parser.add_argument("--storage", help="Optuna storage URL for the study (default: a journal file under results)")
    parser.add_argument("--sweeps-dir", type=Path, help="where the specs are (default ./sweeps, else the checkout's)")
    parser.add_argument("--reports-dir", type=Path, default=Path("reports"), help="default ./reports")
    g = parser.add_argument_group("slurm (--executor slurm), as in `suite sweep`")
    add_slurm_arguments(g)
    g.add_argument(
        "--no-wait",
        action="store_true",
        help="submit the sweeps' job arrays and return (the study and the report are left for "
        "later: the command prints them); follow with suite runs",
    )
    add_option_arguments(parser)
    parser.set_defaults(func=main)


def list_presets(args) -> str:
    """One line per preset: sweep runs (finished), study trials, epochs, training cost."""
    from ..experiments.presets import COST_UNIT, PRESETS, make_plan
    from ..store import RunDir

    header = f"{'preset':9s} {'runs':>5s} {'done':>5s} {'trials':>6s} {'epochs':>7s} {'cost':>9s}  description"
    lines = [header]
    for preset in PRESETS.values():
        mark = "*" if preset.name == args.preset else " "
        try:
            plan = make_plan(preset, args.overrides, args.study_set, args.sweeps_dir, max_runs=args.max_runs)
        except SuiteError as err:
            lines.append(f"{preset.name + mark:9s} cannot expand: {err}")
            continue
        done = sum(RunDir(args.results_dir, c.run_id).is_finished() for c in plan.configs)
        trials = str(plan.study_spec.n_trials) if plan.study_spec else "-"
        epochs = "/".join(str(e) for e in plan.epochs())
        lines.append(
            f"{preset.name + mark:9s} {len(plan.configs):5d} {done:5d} {trials:>6s} {epochs:>7s} "
            f"{plan.cost():9.0f}  {preset.description}"
        )
    lines.append(
        f"cost: training only, in {COST_UNIT} (one Fast-AT epoch on the run's own data and architecture; "
        f"evaluation comes on top); * = the chosen preset; --set/--study-set apply"
    )
    return "\n".join(lines)


def main(args) -> int:
    import shlex

    from ..data.prefetch import ensure_datasets
    from ..experiments.launch import run_sweep
    from ..experiments.presets import get_preset, make_plan, spec_path
    from .report import write_report

    if args.list:
        print(list_presets(args))
        return 0
    check_launch_numbers(args)
    if args.no_wait and args.executor != "slurm":
        raise SuiteError("--no-wait needs --executor slurm (local runs stop when this command stops)")
    preset = get_preset(args.preset)
    plan = make_plan(preset, args.overrides, args.study_set, args.sweeps_dir, max_runs=args.max_runs)  # checks all
    options = options_from_args(args)
    configs = plan.configs + ([plan.trial_config] if plan.study_spec else [])
    ensure_datasets(configs, options.data_dir, options.download)  # once, before any launch
    slurm = slurm_parameters(args) if args.executor == "slurm" else None
    failed = []
    for spec in plan.sweep_specs:
        result = run_sweep(
            spec,
            options,
            executor=args.executor,
            workers=args.workers,
            slurm=slurm,
            wait=not args.no_wait,
            runs_per_gpu=args.runs_per_gpu,
            share=args.share,
        )
        print(f"sweep {spec.name}: {result.report()}", flush=True)
        failed += result.failed
        if result.stopped_by:  # a stop signal: no further sweep, study or report
            print(f"preset {preset.name}: stopped; rerun the same command to resume", flush=True)
            return result.exit_code
    sets = "".join(f" --set {shlex.quote(item)}" for item in args.overrides)
    where = "" if options.results_dir == type(options)().results_dir else f" --results-dir {options.results_dir}"
    if args.no_wait:
        from ..experiments.presets import study_overrides

        report = (
            f"suite report{where}"
            + "".join(f" --sweep {spec_path(name, args.sweeps_dir)}" for name in preset.sweeps)
            + sets
        )
        print(f"follow the runs: suite runs{where} --dataset {' '.join(sorted({c.dataset for c in configs}))}")
        if plan.study_spec:
            tune_sets = "".join(
                f" --set {shlex.quote(item)}" for item in study_overrides(args.overrides, args.study_set)
            )
            print(
                f"the study: suite tune {spec_path(preset.study, args.sweeps_dir)}{tune_sets}{where} (on a GPU machine)"
            )
            report += f" --study {plan.study_spec.name}"
        print(f"when they are done, the report: {report} --name {preset.name}")
        return 0
    study_name = None
    if plan.study_spec:
        from ..experiments.tune import run_study

        study = run_study(plan.study_spec, options, storage=args.storage, workers=args.workers or 1)
        study_name = study.study_name
    report = write_report(
        results_dir=options.results_dir,
        reports_dir=args.reports_dir,
        name=preset.name,
        sweeps=[spec_path(name, args.sweeps_dir) for name in preset.sweeps],
        overrides=args.overrides,
        study=study_name,
        max_runs=args.max_runs,
    )
    print(f"preset {preset.name}: {len(failed)} failed run(s)" if failed else f"preset {preset.name}: done")
    print(f"report: {report.html}\n        {report.markdown}")
    return 1 if failed else 0
