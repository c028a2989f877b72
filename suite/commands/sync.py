"""``suite sync``: upload run records to Weights & Biases by replaying them in order."""

from __future__ import annotations

from pathlib import Path

from ..errors import SuiteError


def register(subparsers) -> None:
    from .run import add_wandb_timeout_argument

    parser = subparsers.add_parser(
        "sync",
        help="upload run records to W&B (use instead of wandb sync for offline runs)",
        description="Replay each run record (metrics.jsonl, then summary.json) into its W&B run: same id, name, "
        "group, tags and job type as it was tracked with, every epoch once, in order. A run killed and "
        "resumed offline has two offline folders with one W&B id; `wandb sync` of both overwrites one "
        "history with the other, while `suite sync` sends the whole record. What was sent is "
        "remembered in <run>/wandb_sync.json: syncing again sends only what is new.",
    )
    parser.add_argument("run_ids", nargs="*", metavar="RUN_ID", help="runs to sync (default: every run record)")
    parser.add_argument("--results-dir", type=Path, default=Path("results"), help="where the run records are")
    parser.add_argument("--status", nargs="+", help="only runs with this status (finished, failed, pruned, ...)")
    parser.add_argument(
        "--wandb-project",
        help="W&B project (default: the one the run was tracked with, else $WANDB_PROJECT, else fast-bat-suite)",
    )
    parser.add_argument("--wandb-entity", help="W&B entity (default: the run's, else $WANDB_ENTITY)")
    parser.add_argument(
        "--wandb-log-model", action="store_true", help="also upload each finished run's best.pt as a model artifact"
    )
    add_wandb_timeout_argument(parser)
    parser.add_argument("--dry-run", action="store_true", help="list what would be synced; send nothing")
    parser.set_defaults(func=main)


def main(args, mode: str = "online") -> int:
    from ..config.checks import check_number
    from ..store import RunDir, iter_run_dirs
    from ..tracking import sync_run

    check_number("--wandb-timeout", args.wandb_timeout, above=0)
    if args.run_ids:
        runs = [RunDir(args.results_dir, run_id) for run_id in args.run_ids]
        missing = [run.run_id for run in runs if not run.config.exists()]
        if missing:
            raise SuiteError(
                f"no run record {', '.join(missing)} under {args.results_dir / 'runs'}; "
                f"see suite runs --results-dir {args.results_dir}"
            )
    else:
        runs = list(iter_run_dirs(args.results_dir))
    if args.status:
        runs = [run for run in runs if (run.read_summary() or {}).get("status") in args.status]
    if not runs:
        print(f"no runs to sync under {args.results_dir / 'runs'}")
        return 0
    for run in runs:
        if args.dry_run:
            print(f"{run.run_id}: would sync")
            continue
        try:
            done = sync_run(
                run,
                mode=mode,
                project=args.wandb_project,
                entity=args.wandb_entity,
                log_model=args.wandb_log_model,
                timeout=args.wandb_timeout,
            )
        except SuiteError:
            raise
        except Exception as err:  # noqa: BLE001  (no key, no network: the others would fail alike)
            print(f"{run.run_id}: not synced: {type(err).__name__}: {' '.join(str(err).split())[:200]}")
            print(
                f"stopped: {runs.index(run)} of {len(runs)} runs synced; check WANDB_API_KEY (or wandb login) "
                f"and the network, then rerun suite sync (what was sent is not sent again)"
            )
            return 1
        print(f"{run.run_id}: {done}", flush=True)
    return 0
