"""``suite runs``: the table of run records."""
from __future__ import annotations

from pathlib import Path

SHOWN = ["run_id", "method", "dataset", "arch", "eps", "seed", "status", "sa", "ra_pgd", "ra_aa", "best_epoch"]


def register(subparsers) -> None:
    parser = subparsers.add_parser("runs", help="list run records", description="List the run records as a table.")
    parser.add_argument("--results-dir", type=Path, default=Path("results"))
    for column in ("method", "dataset", "arch", "status"):
        parser.add_argument(f"--{column}", nargs="+", help=f"keep runs with this {column} (several allowed)")
    parser.add_argument("--eps", type=float, nargs="+")
    parser.add_argument("--seed", type=int, nargs="+")
    parser.add_argument("--csv", action="store_true", help="print CSV with every column instead of the table")
    parser.set_defaults(func=main)


def main(args) -> int:
    from ..records import runs_dataframe

    frame = runs_dataframe(args.results_dir, method=args.method, dataset=args.dataset, arch=args.arch,
                           status=args.status, eps=args.eps, seed=args.seed)
    if args.csv:
        print(frame.to_csv(index=False), end="")
    elif frame.empty:
        print(f"no runs under {args.results_dir / 'runs'}")
    else:
        print(frame[SHOWN].to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    return 0
