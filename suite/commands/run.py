"""``suite run``: train and evaluate one configuration."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..config import RunConfig, RunOptions

# command-line flag -> method hyperparameter name
HPARAM_FLAGS = {"lmbda": "lmbda", "ll_step": "ll_step", "attack_steps": "steps", "attack_alpha": "alpha",
                "ga_coef": "coef", "implicit": "implicit", "alpha_factor": "alpha_factor",
                "noise_factor": "noise_factor"}


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of one run's configuration; None means 'the default'."""
    g = parser.add_argument_group("what to train")
    g.add_argument("--method", help="standard, fgsm, fast_at, n_fgsm, fast_at_ga, pgd or fast_bat (default fast_bat)")
    g.add_argument("--dataset", help="cifar10, cifar100, svhn, tiny_imagenet, fashion_mnist (default fashion_mnist)")
    g.add_argument("--arch", help="preact_resnet18, preact_resnet18_wong, wrn16_8, resnet18, resnet50, small_cnn "
                                  "(default small_cnn)")
    g.add_argument("--dropout", type=float, help="dropout rate of a network with dropout (wrn16_8: default 0.1)")
    g.add_argument("--eps", type=float, help="training and test budget in /255 (default 8)")
    g.add_argument("--seed", type=int)
    g = parser.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, help="default 20")
    g.add_argument("--batch-size", type=int, help="default 128")
    g.add_argument("--lr", type=float, help="peak learning rate (default 0.2)")
    g.add_argument("--lr-schedule", choices=["cyclic", "multistep", "constant"])
    g = parser.add_argument_group("method hyperparameters (default: the method's, by eps)")
    g.add_argument("--lmbda", type=float, help="fast_bat: lower-level regularizer lambda (default 10)")
    g.add_argument("--ll-step", type=float, help="fast_bat: lower-level step a in /255 (default 5000 if eps<=8 else 2000)")
    g.add_argument("--implicit", choices=["exact", "finite_diff"],
                   help="fast_bat: implicit-gradient term by double backward (default) or finite difference")
    g.add_argument("--attack-steps", type=int, help="pgd: attack steps (default 10)")
    g.add_argument("--attack-alpha", type=float, help="pgd: step size in /255 (default eps/2 for 2 steps, 2 for 10)")
    g.add_argument("--alpha-factor", type=float,
                   help="fgsm, fast_at, n_fgsm: step size as a multiple of eps (default 1, 1.25, 1)")
    g.add_argument("--noise-factor", type=float, help="n_fgsm: uniform noise in [-k eps, k eps], k (default 2)")
    g.add_argument("--ga-coef", type=float, help="fast_at_ga: GradAlign coefficient (default 0.02*10^(eps/8))")
    g = parser.add_argument_group("data sizes and evaluation")
    g.add_argument("--train-points", type=int, help="train on the first N points of the training split")
    g.add_argument("--val-points", type=int, help="validation points checked each epoch (default 1000)")
    g.add_argument("--test-points", type=int, help="test points for SA and RA-PGD (default: all)")
    g.add_argument("--val-pgd-steps", type=int, help="steps of the per-epoch validation PGD (default 10)")
    g.add_argument("--pgd-steps", type=int, help="final PGD steps (default 50)")
    g.add_argument("--pgd-restarts", type=int, help="final PGD restarts (default 10)")
    g.add_argument("--aa-points", type=int, help="AutoAttack test points (default 1000; 0 skips AutoAttack)")
    g.add_argument("--co-points", type=int, help="training points probed for catastrophic overfitting (default 256)")
    g.add_argument("--inject-beta", type=float,
                   help="add the class-wise DCT pattern beta*v_y (in /255) to every training, validation and test "
                        "image, clipped to [0, 1]: induces catastrophic overfitting (Ortiz-Jimenez et al. 2023)")


def add_option_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("where and how")
    g.add_argument("--results-dir", type=Path, default=Path("results"), help="default ./results")
    g.add_argument("--data-dir", type=Path, default=Path("data"), help="default ./data")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    g.add_argument("--no-download", action="store_true", help="never try to download a data set")
    g.add_argument("--force", action="store_true", help="train again even if the run finished")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    g.add_argument("--compile", action="store_true",
                   help="torch.compile the model for evaluation and first-order training steps (Fast-BAT's "
                        "exact term and GradAlign train uncompiled: no double backward); measure first with "
                        "suite bench --compile")
    g.add_argument("--wandb", choices=["offline", "online", "disabled"], default=None,
                   help="Weights & Biases mode (default offline; $SUITE_WANDB overrides the default)")
    g.add_argument("--wandb-project", default="fast-bat-suite")
    g.add_argument("--wandb-entity")
    g.add_argument("--wandb-group")


def config_from_args(args: argparse.Namespace, base: RunConfig | None = None) -> RunConfig:
    base = base or RunConfig()
    fields = base.to_dict()
    for name in fields:
        value = getattr(args, name, None)
        if value is not None:
            fields[name] = value
    hparams = dict(fields["hparams"])
    hparams.update({hp: getattr(args, flag) for flag, hp in HPARAM_FLAGS.items() if getattr(args, flag, None) is not None})
    fields["hparams"] = hparams
    return RunConfig.from_dict(fields)


def options_from_args(args: argparse.Namespace) -> RunOptions:
    options = RunOptions(results_dir=args.results_dir, data_dir=args.data_dir, device=args.device,
                         download=not args.no_download, force=args.force, progress=not args.quiet,
                         compile=args.compile,
                         wandb_project=args.wandb_project, wandb_entity=args.wandb_entity,
                         wandb_group=args.wandb_group)
    if args.wandb:
        options.wandb = args.wandb
    return options


def trackers(options: RunOptions, group: str | None = None, extra_config: dict | None = None) -> list:
    from ..tracking import WandbTracker
    return [WandbTracker(options.wandb, options.wandb_project, options.wandb_entity,
                         group or options.wandb_group, extra_config)]


def register(subparsers) -> None:
    parser = subparsers.add_parser("run", help="train and evaluate one configuration",
                                   description="Train one model with one method and evaluate it as the paper does.")
    add_config_arguments(parser)
    add_option_arguments(parser)
    parser.set_defaults(func=main)


def main(args) -> int:
    from ..train import execute

    options = options_from_args(args)
    summary = execute(config_from_args(args), options, trackers(options))
    print(json.dumps({k: summary.get(k) for k in ("run_id", "status", "best_epoch", "best", "last", "epoch_seconds")},
                     indent=2))
    print(f"run folder: {Path(options.results_dir) / 'runs' / summary['run_id']}")
    return 0 if summary.get("status") == "finished" else 1
