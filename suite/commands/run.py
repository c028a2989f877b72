"""``suite run``: train and evaluate one configuration."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..config import RunConfig, RunOptions
from ..config.checks import check_number
from ..config.hparam_flags import add_hparam_flags, hparams_from_args, plugin_modules
from ..config.settings import ALIASES
from ..store.status import RunStatus


class OldName(argparse.Action):
    """An old spelling of a flag: stores into the new one's destination and warns."""

    def __init__(self, *args, new_flag: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.new_flag = new_flag

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"warning: {option_string} is the old name of {self.new_flag}; write {self.new_flag}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def eps_budget(text: str) -> float:
    """``--eps``: a budget in units of 1/255, written ``8`` or ``8/255``. A bare value below 1
    is refused: it is almost surely a fraction of the pixel range (0.031 for 8/255), which would
    train at 0.031/255; ``0.5/255`` says that is meant."""
    raw = text.replace(" ", "")
    number, slash, denominator = raw.partition("/")
    try:
        value = float(number)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a budget; write it in /255: --eps 8 (or --eps 8/255)"
        ) from None
    if slash and denominator != "255":
        raise argparse.ArgumentTypeError(
            f"{text!r}: write the budget in units of 1/255, --eps 8 or --eps 8/255 (for {text}, --eps "
            f"{_in_255ths(value, denominator)})"
        )
    if not slash and 0 < value < 1:
        raise argparse.ArgumentTypeError(
            f"{text} is in units of 1/255 (--eps 8 means 8/255) and would train at {text}/255; for {text} of the "
            f"pixel range write --eps {value * 255:.3g}, or --eps {text}/255 if you mean {text}/255"
        )
    return value


def _in_255ths(value: float, denominator: str) -> str:
    try:
        return f"{value / float(denominator) * 255:.3g}"
    except (ValueError, ZeroDivisionError):
        return "N"


def add_old_names(parser_or_group, names: dict, types: dict, flags: dict | None = None) -> None:
    """Hidden flags ``--old-name`` storing into ``dest`` ``names[old]`` with a warning naming the
    new flag (``flags[dest]``, else ``--dest-with-dashes``)."""
    for old, dest in names.items():
        new_flag = (flags or {}).get(dest) or "--" + dest.replace("_", "-")
        parser_or_group.add_argument(
            "--" + old.replace("_", "-"),
            dest=dest,
            type=types.get(dest),
            action=OldName,
            new_flag=new_flag,
            help=argparse.SUPPRESS,
        )


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of one run's configuration; None means 'the default'. Flag names are the setting
    names of specs and ``--set`` with dashes (``--train-points`` is ``train_points``)."""
    from ..data import DATASETS
    from ..methods import METHODS
    from ..models import ARCHS

    g = parser.add_argument_group("what to train")
    method = g.add_argument("--method", help=method_help(METHODS))
    g.add_argument("--dataset", help=f"{', '.join(DATASETS)} (default {RunConfig.dataset})")
    g.add_argument("--arch", help=f"{', '.join(ARCHS)} (default {RunConfig.arch})")
    g.add_argument("--dropout", type=float, help="dropout rate of a network with dropout (wrn16_8: default 0.1)")
    g.add_argument("--eps", type=eps_budget, help="training and test budget in /255: 8 or 8/255 (default 8)")
    g.add_argument("--seed", type=int, help="seed of the initialisation, the batches and the attacks (default 0)")
    g = parser.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, help="default 20")
    g.add_argument("--batch-size", type=int, help="default 128")
    g.add_argument("--lr", type=float, help="peak learning rate (default 0.2)")
    g.add_argument(
        "--lr-schedule",
        choices=["cyclic", "multistep", "constant"],
        help="cyclic: 0 -> lr -> 0 per iteration; multistep: x0.1 at 50%% and 75%% (default cyclic)",
    )
    g.add_argument("--momentum", type=float, help="SGD momentum (default 0.9)")
    g.add_argument("--weight-decay", type=float, help="SGD weight decay (default 5e-4)")
    g = parser.add_argument_group(
        "method hyperparameters (default: the method's, by eps)",
        "Each method's hyperparameters as --<name>; --hp NAME=VALUE sets any of them (a plug-in's too).",
    )
    g.add_argument(
        "--hp",
        action="append",
        metavar="NAME=VALUE",
        help="a hyperparameter of the method, the value read as YAML (--hp gamma=2); repeatable",
    )
    types = {name: action.type for name, action in _added_actions(parser, g, METHODS).items()}
    add_old_names(g, ALIASES, types)
    parser.before_parse = lambda parser, argv: _add_plugins(parser, g, method, argv)
    g = parser.add_argument_group("data sizes and evaluation")
    g.add_argument("--train-points", type=int, help="train on the first N points of the training split (default all)")
    g.add_argument("--val-points", type=int, help="validation points checked each epoch (default 1000)")
    g.add_argument("--test-points", type=int, help="test points for SA and RA-PGD (default: all)")
    g.add_argument("--val-pgd-steps", type=int, help="steps of the per-epoch validation PGD (default 10)")
    g.add_argument("--val-pgd-restarts", type=int, help="restarts of the per-epoch validation PGD (default 1)")
    g.add_argument("--pgd-steps", type=int, help="final PGD steps (default 50)")
    g.add_argument("--pgd-restarts", type=int, help="final PGD restarts (default 10)")
    g.add_argument("--aa-points", type=int, help="AutoAttack test points (default 1000; 0 skips AutoAttack)")
    g.add_argument("--co-points", type=int, help="training points probed for catastrophic overfitting (default 256)")
    g.add_argument(
        "--inject-beta",
        type=float,
        help="add the class-wise DCT pattern beta*v_y (in /255) to every training, validation and test "
        "image, clipped to [0, 1]: induces catastrophic overfitting (Ortiz-Jimenez et al. 2023)",
    )


def method_help(names) -> str:
    return f"{', '.join(names)}, or a module of your own as pkg.module (default {RunConfig.method})"


def _add_plugins(parser, group, method_action, argv) -> None:
    """Just before ``suite run`` parses: the installed plug-ins join ``--method``'s help, and they and
    a dotted ``--method`` get their hyperparameters' flags (other commands never scan for plug-ins)."""
    from ..methods import available_names

    method_action.help = method_help(available_names())
    add_hparam_flags(parser, group, plugin_modules(argv))


def _added_actions(parser, group, methods) -> dict:
    """Add the flags of ``methods``' hyperparameters; their argparse actions by hyperparameter."""
    added = add_hparam_flags(parser, group, methods)
    return {a.dest: a for a in parser._actions if a.dest in added and a.option_strings}


def add_option_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("where and how")
    g.add_argument("--results-dir", type=Path, default=Path("results"), help="where run records go")
    g.add_argument("--data-dir", type=Path, default=Path("data"), help="where data sets are (and are downloaded to)")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    g.add_argument("--no-download", action="store_true", help="never try to download a data set")
    g.add_argument("--force", action="store_true", help="train again even if the run finished")
    g.add_argument(
        "--accept-stale",
        action="store_true",
        help="keep finished runs whose method code changed since they ran (default: train them again)",
    )
    g.add_argument("--quiet", action="store_true", help="no progress bars or progress lines")
    g.add_argument(
        "--cuda-graphs",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="capture one training iteration in a CUDA graph and replay it for every full batch "
        "(default on; ignored off CUDA; --no-cuda-graphs trains eagerly)",
    )
    g = parser.add_argument_group("Weights & Biases")
    g.add_argument(
        "--wandb",
        choices=["offline", "online", "disabled"],
        default=None,
        help="W&B mode (default offline; $SUITE_WANDB sets the default)",
    )
    g.add_argument("--wandb-project", help="W&B project (default $WANDB_PROJECT, else fast-bat-suite)")
    g.add_argument("--wandb-entity", help="W&B entity, a user or team (default $WANDB_ENTITY, else your default)")
    g.add_argument("--wandb-group", help="W&B group (default: the sweep's or study's name, else $WANDB_RUN_GROUP)")
    g.add_argument(
        "--wandb-log-model",
        action="store_true",
        help="log the early-stopped checkpoint (best.pt) as a W&B model artifact",
    )
    add_wandb_timeout_argument(g)


def add_wandb_timeout_argument(parser) -> None:
    """``--wandb-timeout``: how long an online W&B init may wait for the server (run, sweep, tune, sync)."""
    parser.add_argument(
        "--wandb-timeout",
        type=float,
        default=RunOptions.wandb_timeout,
        metavar="SECONDS",
        help="give an unreachable W&B server this long, then log offline (suite sync uploads it later)",
    )


def config_from_args(args: argparse.Namespace, base: RunConfig | None = None) -> RunConfig:
    base = base or RunConfig()
    fields = base.to_dict()
    for name in fields:
        value = getattr(args, name, None)
        if value is not None:
            fields[name] = value
    fields["hparams"] = {**fields["hparams"], **hparams_from_args(args)}
    return RunConfig.from_dict(fields)


def options_from_args(args: argparse.Namespace) -> RunOptions:
    options = RunOptions(
        results_dir=args.results_dir,
        data_dir=args.data_dir,
        device=args.device,
        download=not args.no_download,
        force=args.force,
        accept_stale=args.accept_stale,
        progress=not args.quiet,
        cuda_graphs=args.cuda_graphs,
        wandb_project=args.wandb_project,
        wandb_entity=args.wandb_entity,
        wandb_group=args.wandb_group,
        wandb_log_model=args.wandb_log_model,
        wandb_timeout=args.wandb_timeout,
    )
    check_number("--wandb-timeout", options.wandb_timeout, above=0)
    if args.wandb:
        options.wandb = args.wandb
    return options


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "run",
        help="train and evaluate one configuration",
        description="Train one model with one method and evaluate it as the paper does.",
    )
    add_config_arguments(parser)
    add_option_arguments(parser)
    parser.set_defaults(func=main)


def main(args) -> int:
    from ..engine import execute
    from ..tracking import trackers

    options = options_from_args(args)
    summary = execute(config_from_args(args), options, trackers(options))
    print(
        json.dumps(
            {k: summary.get(k) for k in ("run_id", "status", "best_epoch", "best", "last", "epoch_seconds")}, indent=2
        )
    )
    print(f"run folder: {Path(options.results_dir) / 'runs' / summary['run_id']}")
    return 0 if summary.get("status") == RunStatus.FINISHED else 1
