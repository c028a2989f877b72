"""``suite bench``: time training iterations, the data pipeline and evaluation on this device."""

from __future__ import annotations

import json
from pathlib import Path

from .run import add_old_names, eps_budget


def register(subparsers) -> None:
    from ..perf.bench import SECTIONS

    parser = subparsers.add_parser(
        "bench",
        help="measure the cost of training methods, data loading and evaluation here",
        description="Time one training iteration of each method (relative to standard training and Fast-AT), "
        "the suite's Fast-BAT and Fast-AT-GA against the reference transcriptions, a data epoch "
        "through DeviceLoader and torch's DataLoader, and PGD evaluation with and without early "
        "exit. Variants are timed in turn in each round; medians and ratios are printed.",
    )
    parser.add_argument("--arch", default="preact_resnet18", help="model of the iteration and pipeline timings")
    parser.add_argument(
        "--dataset",
        default="cifar10",
        help="input shape and classes (no data loaded, except Fashion-MNIST for --only eval)",
    )
    parser.add_argument("--batch-size", type=int, help="default 128 on CUDA, 32 on CPU")
    parser.add_argument("--eps", type=eps_budget, default=8.0, help="budget in /255: 8 or 8/255 (default 8)")
    parser.add_argument("--reps", type=int, help="timed rounds (default 20 on CUDA, 5 on CPU)")
    parser.add_argument("--warmup", type=int, help="untimed rounds first (default 3 on CUDA, 1 on CPU)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=SECTIONS,
        metavar="SECTION",
        help=f"measure only these sections: {', '.join(SECTIONS)}",
    )
    parser.add_argument(
        "--method",
        nargs="+",
        default=[],
        metavar="METHOD",
        help="methods: also time these methods, e.g. plug-ins (an entry-point name or a dotted module path)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes and few rounds (a smoke test)")
    parser.add_argument("--images", type=int, help="pipeline: synthetic images per epoch (default 2048 on CPU)")
    parser.add_argument(
        "--loader-workers",
        dest="workers",
        type=int,
        help="pipeline: DataLoader worker processes, compared with 0 workers (default min(4, CPUs); "
        "old name --workers, which elsewhere means runs at a time)",
    )
    add_old_names(parser, {"workers": "workers"}, {"workers": int}, flags={"workers": "--loader-workers"})
    parser.add_argument("--eval-points", type=int, help="eval: test points attacked (default 200 on CPU)")
    parser.add_argument("--eval-steps", type=int, help="eval: PGD steps (default 50)")
    parser.add_argument("--eval-restarts", type=int, help="eval: PGD restarts (default 10)")
    parser.add_argument("--eval-reps", type=int, help="eval: timed rounds of each variant (default 3 on CPU)")
    parser.add_argument("--eval-train-iters", type=int, help="eval: Fast-AT iterations of the attacked model")
    parser.add_argument("--data-dir", type=Path, default=Path("data"), help="where Fashion-MNIST is (default ./data)")
    parser.add_argument("--precision-batch", type=int, help="precision: batch of the gradients (default 64 on CUDA)")
    parser.add_argument(
        "--precision-run",
        type=Path,
        metavar="RUN_DIR",
        help="precision: measure at this run's last checkpoint, on its test data and eps "
        "(e.g. results/runs/fast_at-...), instead of at initialization",
    )
    parser.add_argument(
        "--precision-seeds",
        type=int,
        default=1,
        help="precision: draws of each method's randomness, for mean and std (the policy's verdict needs 3)",
    )
    parser.add_argument(
        "--threads", type=int, help="torch CPU threads (default torch's; on a busy shared machine 1 is often faster)"
    )
    parser.add_argument(
        "--gpu-check",
        action="store_true",
        help="one command for a GPU (about 6 minutes on an H200): assert that CUDA-graph replay and "
        "packed runs train as eager execution and runs alone do, and print iteration times and op counts, "
        "a Table-1 cell timed on synthetic_cifar10 and Table 1 extrapolated, precision and its policy, "
        "runs per GPU, eval and pipeline figures in one table",
    )
    parser.add_argument(
        "--record",
        type=Path,
        metavar="FILE",
        help="with --gpu-check: rewrite FILE with every figure so far (JSON) after each part, so that "
        "a check cut short keeps what it measured",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the models and inputs")
    parser.add_argument("--json", action="store_true", help="print every figure as JSON instead of the table")
    parser.set_defaults(func=main)


def main(args) -> int:
    if args.gpu_check:
        from ..perf.gpu_check import format_gpu_check, run_gpu_check

        result = run_gpu_check(data_dir=args.data_dir, seed=args.seed, record=args.record)
        print(json.dumps(result, indent=2) if args.json else format_gpu_check(result))
        return 1 if result["failures"] else 0
    from ..perf.bench import SECTIONS, Settings, format_report, run_bench

    settings = Settings(
        arch=args.arch,
        dataset=args.dataset,
        batch_size=args.batch_size,
        eps=args.eps,
        reps=args.reps,
        warmup=args.warmup,
        device=args.device,
        quick=args.quick,
        sections=tuple(args.only or SECTIONS),
        images=args.images,
        workers=args.workers,
        data_dir=args.data_dir,
        eval_points=args.eval_points,
        eval_steps=args.eval_steps,
        eval_restarts=args.eval_restarts,
        eval_reps=args.eval_reps,
        eval_train_iters=args.eval_train_iters,
        seed=args.seed,
        threads=args.threads,
        methods=tuple(args.method),
        precision_batch=args.precision_batch,
        precision_run=args.precision_run,
        precision_seeds=args.precision_seeds,
    )
    result = run_bench(settings)
    print(json.dumps(result, indent=2) if args.json else format_report(result))
    return 0
