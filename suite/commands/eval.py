"""``suite eval``: evaluate a finished run or an external checkpoint under the suite's protocol."""

from __future__ import annotations

from pathlib import Path

from .run import eps_budget

EPILOG = """examples:
  suite eval --run RUN_ID                                  # PGD-50-10 and AutoAttack, like the run's own
  suite eval --run RUN_ID --which last --pgd-steps 20 --pgd-restarts 1 --test-points 500 --no-autoattack
  suite eval --checkpoint model.pt --arch preact_resnet18 --dataset cifar10 --name theirs
  suite eval --checkpoint model.pt --arch mypkg.nets:build --dataset cifar10 --name theirs
  suite eval --run VICTIM_ID --surrogate SURROGATE_ID      # adds ra_transfer: PGD crafted on the surrogate
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate a run or a checkpoint under the suite's protocol (a run record of kind eval)",
        description="SA, RA-PGD-k-r, AutoAttack on the first --aa-points with RA-PGD on the same points, "
        "and optionally a transfer attack from a surrogate; written as a run record that suite runs and "
        "suite report show (docs/eval.md).",
        epilog=EPILOG,
    )
    m = parser.add_argument_group("the model")
    m.add_argument("--run", help="id of a finished run in --results-dir")
    m.add_argument("--which", choices=["best", "last"], default="best", help="early-stopped or last-epoch checkpoint")
    m.add_argument("--checkpoint", type=Path, help="a state_dict file (or a dict with a model/state_dict key)")
    m.add_argument("--arch", help="with --checkpoint: a built-in arch or pkg.module:factory")
    m.add_argument("--dataset", help="with --checkpoint: the data set it classifies")
    m.add_argument("--name", help="the label in runs and reports (default METHOD@eval, or external)")
    s = parser.add_argument_group("transfer attack")
    s.add_argument("--surrogate", help="id of a finished run whose model crafts the adversarial examples")
    s.add_argument("--surrogate-which", choices=["best", "last"], default="best", help="the surrogate run's checkpoint")
    s.add_argument("--surrogate-checkpoint", type=Path, help="or a surrogate checkpoint file, with --surrogate-arch")
    s.add_argument("--surrogate-arch", help="the surrogate checkpoint's network")
    p = parser.add_argument_group("protocol (default: the run's own, else the suite's)")
    p.add_argument("--eps", type=eps_budget, help="budget in /255: 8 or 8/255")
    p.add_argument("--pgd-steps", type=int, help="PGD steps k (suite default 50)")
    p.add_argument("--pgd-restarts", type=int, help="PGD restarts r (suite default 10)")
    p.add_argument("--test-points", type=int, help="the first N test points")
    p.add_argument("--aa-points", type=int, help="AutoAttack on the first N test points (0: off)")
    p.add_argument("--no-autoattack", action="store_true", help="skip AutoAttack (--aa-points 0)")
    p.add_argument("--seed", type=int, help="evaluation seed (default the run's)")
    o = parser.add_argument_group("where")
    o.add_argument("--results-dir", type=Path, default=Path("results"), help="where run records are")
    o.add_argument("--data-dir", type=Path, default=Path("data"), help="where data sets are")
    o.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    o.add_argument("--no-download", action="store_true", help="never try to download a data set")
    o.add_argument("--force", action="store_true", help="evaluate again even if this eval is recorded")
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..config import RunOptions
    from ..config.checks import check_number
    from ..eval.standalone import EvalRequest, ModelSpec, evaluate

    for flag in ("pgd_steps", "pgd_restarts", "test_points"):
        if getattr(args, flag) is not None:
            check_number(f"--{flag.replace('_', '-')}", getattr(args, flag), integer=True, minimum=1)
    if args.aa_points is not None:
        check_number("--aa-points", args.aa_points, integer=True, minimum=0)
    if args.eps is not None:
        check_number("--eps", args.eps, minimum=0)
    surrogate = None
    if args.surrogate or args.surrogate_checkpoint:
        surrogate = ModelSpec(args.surrogate, args.surrogate_which, args.surrogate_checkpoint, args.surrogate_arch)
    request = EvalRequest(
        model=ModelSpec(args.run, args.which, args.checkpoint, args.arch),
        dataset=args.dataset,
        name=args.name,
        surrogate=surrogate,
        eps=args.eps,
        pgd_steps=args.pgd_steps,
        pgd_restarts=args.pgd_restarts,
        test_points=args.test_points,
        aa_points=0 if args.no_autoattack else args.aa_points,
        seed=args.seed,
    )
    options = RunOptions(
        results_dir=args.results_dir, data_dir=args.data_dir, device=args.device, download=not args.no_download
    )
    evaluate(request, options)
    return 0
