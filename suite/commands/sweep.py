"""``suite sweep SPEC``: run a grid of configurations, locally or on Slurm."""

from __future__ import annotations

from ..config.settings import parse_setting
from ..errors import SuiteError
from ..experiments.sweep import DEFAULT_MAX_RUNS
from .run import add_option_arguments, options_from_args

EPILOG = """examples:
  suite sweep sweeps/smoke.yaml --workers 2
  suite sweep sweeps/table1.yaml --set seeds=3 --set eps=[8] --dry-run
  suite sweep sweeps/table1.yaml --executor slurm --partition gpu --time 600 --gpus-per-job 1
  suite sweep sweeps/table1.yaml --set lmbda=best:sweeps/lambda_cifar10.yaml
Relaunching a sweep is safe: finished runs are skipped, runs being trained elsewhere are
left alone, and interrupted runs resume from their last epoch."""


def register(subparsers) -> None:
    import argparse

    parser = subparsers.add_parser(
        "sweep",
        help="run a grid of configurations (locally or on Slurm)",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Expand a sweep spec (sweeps/*.yaml) into runs, skip the finished ones and launch the "
        "rest through submitit. Exits non-zero if any run failed.",
    )
    parser.add_argument("spec", help="the sweep spec, e.g. sweeps/table1.yaml")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a base setting or a grid axis (YAML value; repeatable): "
        "--set epochs=5 --set seeds=[0,1] --set eps=[8] --set lmbda=best:STUDY.yaml",
    )
    parser.add_argument("--dry-run", action="store_true", help="list the runs, their ids and which are done")
    add_max_runs_argument(parser)
    parser.add_argument(
        "--executor",
        choices=["local", "slurm"],
        default="local",
        help="local: processes on this machine; slurm: one job array",
    )
    parser.add_argument("--workers", type=int, help="local: runs at a time (default: --runs-per-gpu per GPU, else 1)")
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
    g = parser.add_argument_group("slurm (--executor slurm): one job array")
    add_slurm_arguments(g)
    g.add_argument("--no-wait", action="store_true", help="submit and return instead of waiting for the jobs")
    add_option_arguments(parser)
    parser.set_defaults(func=main)


def add_max_runs_argument(parser) -> None:
    """``--max-runs``: the cap on a sweep's grid cells (sweep, reproduce, report)."""
    parser.add_argument(
        "--max-runs",
        type=int,
        default=DEFAULT_MAX_RUNS,
        metavar="N",
        help="refuse a sweep whose grid has more than N cells (a bound against a mistyped spec)",
    )


def add_slurm_arguments(g) -> None:
    """The Slurm flags of sweep and reproduce."""
    g.add_argument("--partition", help="Slurm partition (default: the cluster's)")
    g.add_argument("--time", type=int, default=24 * 60, help="minutes per run")
    g.add_argument("--gpus-per-job", type=int, default=1, help="GPUs per run")
    g.add_argument("--cpus-per-job", type=int, default=8, help="CPU cores per run (also its torch threads)")
    g.add_argument("--array-parallelism", type=int, default=64, help="array tasks running at once")
    g.add_argument(
        "--slurm",
        dest="slurm_extra",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other submitit SlurmExecutor parameter, e.g. account=abc, mem=32G, qos=high",
    )


def check_launch_numbers(args) -> None:
    """Workers and Slurm sizes are positive (GPUs may be 0)."""
    for flag, value in (
        ("--workers", args.workers),
        ("--runs-per-gpu", args.runs_per_gpu),
        ("--time", args.time),
        ("--cpus-per-job", args.cpus_per_job),
        ("--array-parallelism", args.array_parallelism),
    ):
        if value is not None and value < 1:
            raise SuiteError(f"{flag} must be at least 1, got {value}")
    if args.gpus_per_job < 0:
        raise SuiteError(f"--gpus-per-job must be at least 0, got {args.gpus_per_job}")


def slurm_parameters(args) -> dict:
    """The submitit SlurmExecutor parameters of the command line."""
    params = {
        "time": args.time,
        "gpus_per_node": args.gpus_per_job,
        "cpus_per_task": args.cpus_per_job,
        "array_parallelism": args.array_parallelism,
    }
    if args.partition:
        params["partition"] = args.partition
    for item in args.slurm_extra:
        key, value = parse_setting(item, "--slurm")
        params[key] = value
    return params


def main(args) -> int:
    from ..experiments.launch import run_sweep
    from ..experiments.sweep import load_spec

    check_launch_numbers(args)
    spec = load_spec(args.spec, args.overrides, results_dir=args.results_dir, max_runs=args.max_runs)
    options = options_from_args(args)
    result = run_sweep(
        spec,
        options,
        executor=args.executor,
        workers=args.workers,
        slurm=slurm_parameters(args) if args.executor == "slurm" else None,
        dry_run=args.dry_run,
        wait=not args.no_wait,
        runs_per_gpu=args.runs_per_gpu,
        share=args.share,
    )
    if not args.dry_run:
        print(f"sweep {spec.name}: {result.report()}")
        print(
            f"results: suite runs --results-dir {options.results_dir}; "
            f"journal and job logs: {options.results_dir}/sweeps/{spec.name}/"
        )
    return result.exit_code
