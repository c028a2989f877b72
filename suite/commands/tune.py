"""``suite tune SPEC``: create or resume an Optuna study over a method's hyperparameters."""

from __future__ import annotations

from pathlib import Path

from .run import add_option_arguments, options_from_args

EPILOG = """\
examples:
  suite tune sweeps/lambda_smoke.yaml                       # journal file under results/studies/
  suite tune sweeps/lambda_smoke.yaml --workers 2           # two processes, one study
  suite tune sweeps/lambda_cifar10.yaml --storage postgresql://suite@db-host/optuna   # many machines
  suite tune sweeps/lambda_smoke.yaml --set epochs=3 --set search.lmbda=[0.1,100] --set name=smoke_short
  suite tune sweeps/lambda_smoke.yaml --show                # best parameters, trials table, CSV export

A study searches any hyperparameters of its method: those of its spec's search, else the
method's own SEARCH; coupled: true derives the ones its COUPLED names (docs/methods.md).
n_trials is the number of finished (complete or pruned) trials the study should hold:
rerunning a command resumes it; a larger --n-trials adds trials. Keep passwords off the
command line with PGPASSWORD or ~/.pgpass; URLs are printed and stored redacted anyway.
"""


def register(subparsers) -> None:
    import argparse

    parser = subparsers.add_parser(
        "tune",
        help="tune a method's hyperparameters with Optuna",
        description="Create or resume the Optuna study of a spec: every trial is one run of the suite.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("spec", type=Path, help="study spec (YAML), e.g. sweeps/lambda_smoke.yaml")
    g = parser.add_argument_group("study")
    g.add_argument(
        "--storage",
        help="Optuna storage URL (sqlite:///..., postgresql://user@host/db) or a journal "
        "file path (default <results>/studies/<name>.journal)",
    )
    g.add_argument("--workers", type=int, default=1, help="worker processes on this machine, one trial each at a time")
    g.add_argument("--n-trials", type=int, help="finished trials the study should hold (default: the spec's)")
    g.add_argument("--show", action="store_true", help="print the best parameters and the trials table; run nothing")
    g.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a spec setting (YAML value): a base setting (epochs=5), a spec key "
        "(n_trials=30, name=x) or a nested one (search.<hyperparameter>=[0.1,100], pruner.name=none)",
    )
    add_option_arguments(parser)
    parser.set_defaults(func=main)


def main(args) -> int:
    import sys

    from ..experiments.tune import export_trials, redact, run_study, show

    # W&B (and spawned workers) copy the command line: keep a --storage password out of it
    sys.argv[:] = [redact(arg) for arg in sys.argv]
    options = options_from_args(args)
    if args.show:
        print(show(args.spec, storage=args.storage, results_dir=options.results_dir, overrides=args.set))
        return 0
    study = run_study(
        args.spec, options, storage=args.storage, workers=args.workers, n_trials=args.n_trials, overrides=args.set
    )
    frame = export_trials(study, options.results_dir)
    states = frame["state"].value_counts().to_dict() if len(frame) else {}
    print(f"study {study.study_name}: {len(frame)} trials {states}; see: {show_command(args)}")
    print(f"trials table: {Path(options.results_dir) / 'studies' / (study.study_name + '.csv')}")
    return 0


def show_command(args) -> str:
    """The ``suite tune ... --show`` command for the study just run (same spec, settings, storage)."""
    import shlex

    from ..experiments.tune import redact

    parts = ["suite", "tune", str(args.spec), "--show"] + [f"--set={item}" for item in args.set]
    if args.storage:
        parts += ["--storage", redact(args.storage)]
    if Path(args.results_dir) != Path("results"):
        parts += ["--results-dir", str(args.results_dir)]
    return shlex.join(parts)
