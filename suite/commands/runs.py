"""``suite runs``: the table of run records."""

from __future__ import annotations

from pathlib import Path

SORT = ["dataset", "arch", "eps", "method", "seed", "run_id"]


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "runs", help="list run records", description="List the run records as a table (or CSV with every column)."
    )
    parser.add_argument("--results-dir", type=Path, default=Path("results"), help="where the run records are")
    for column in ("method", "dataset", "arch", "status"):
        parser.add_argument(f"--{column}", nargs="+", help=f"keep runs with this {column} (several allowed)")
    parser.add_argument("--eps", type=float, nargs="+", help="keep runs with this budget in /255 (several allowed)")
    parser.add_argument("--seed", type=int, nargs="+", help="keep runs with this seed (several allowed)")
    parser.add_argument("--csv", action="store_true", help="print CSV with every column instead of the table")
    parser.set_defaults(func=main)


def check_filters(args) -> None:
    """An unknown method, dataset, arch or status is a typo, not an empty selection."""
    from ..data import DATASETS
    from ..errors import unknown_name
    from ..methods import check_name
    from ..models import ARCHS, RENAMED
    from ..store.status import STATUSES

    for method in args.method or ():  # a built-in, an installed plug-in or a dotted path
        check_name(method)
    for column, known in (
        ("dataset", DATASETS),
        ("arch", [*ARCHS, *RENAMED]),
        ("status", STATUSES),
    ):
        for value in getattr(args, column) or ():
            if value not in known:
                raise unknown_name(column, value, known)


def main(args) -> int:
    from ..config.numbers import tidy_frame
    from ..store import runs_dataframe

    check_filters(args)
    frame = runs_dataframe(
        args.results_dir,
        method=args.method,
        dataset=args.dataset,
        arch=args.arch,
        status=args.status,
        eps=args.eps,
        seed=args.seed,
    )
    if args.csv:
        print(tidy_frame(frame).to_csv(index=False), end="")
    elif frame.empty:
        print(
            f"no runs under {args.results_dir / 'runs'}"
            + (
                " match these filters"
                if any(getattr(args, c) for c in ("method", "dataset", "arch", "status", "eps", "seed"))
                else ""
            )
        )
    else:
        print(table(frame))
    return 0


def table(frame) -> str:
    """The runs as an aligned text table: one line per run, test accuracies in %, then the errors.

    ``SA``/``RA-PGD``/``RA-AA`` are the early-stopped model's, ``last RA-PGD`` the last epoch's;
    ``RA-PGD@AA`` is RA-PGD on AutoAttack's points, beside RA-AA; a dash marks a metric not (yet)
    measured. Runs where AutoAttack is weaker than PGD on the same points are listed below the table.
    """
    import pandas as pd

    from ..report.tables import aa_weaker_models

    frame = frame.sort_values(SORT, kind="stable")
    number = lambda v: "-" if v is None or pd.isna(v) else f"{v:.2f}"  # noqa: E731
    whole = lambda v: "-" if v is None or pd.isna(v) else f"{int(v)}"  # noqa: E731
    hp_columns = [c for c in frame.columns if c.startswith("hp_")]

    def hparams(row) -> str:
        return " ".join(
            f"{c[3:]}={row[c]:g}" if isinstance(row[c], float) else f"{c[3:]}={row[c]}"
            for c in hp_columns
            if row[c] is not None and not pd.isna(row[c])
        )

    shown = pd.DataFrame(
        {
            "run": frame["run_id"],
            "status": frame["status"],
            "epochs": [f"{whole(d)}/{whole(t)}" for d, t in zip(frame["epochs_done"], frame["epochs"])],
            "SA": frame["sa"].map(number),
            "RA-PGD": frame["ra_pgd"].map(number),
            "RA-PGD@AA": frame["ra_pgd_aa_subset"].map(number),
            "RA-AA": frame["ra_aa"].map(number),
            "last RA-PGD": frame["last_ra_pgd"].map(number),
            "best ep": frame["best_epoch"].map(whole),
            "hyperparameters": [hparams(row) for _, row in frame.iterrows()],
        }
    )
    lines = aligned(shown, left=("run", "status", "hyperparameters"))
    counts = frame["status"].value_counts()
    lines.append(f"{len(frame)} runs: " + ", ".join(f"{n} {status}" for status, n in counts.items()))
    for run_id, models in zip(frame["run_id"], aa_weaker_models(frame)):
        if models:
            lines.append(f"  {run_id}: AutoAttack weaker than PGD on the same points ({models})")
    errors = frame[frame["error"].notna()]
    for run_id, error in zip(errors["run_id"], errors["error"]):
        lines.append(f"  {run_id}: {error}")
    return "\n".join(lines)


def aligned(frame, left=()) -> list[str]:
    """Lines of a table of strings: the ``left`` columns left-aligned, the others right-aligned."""
    widths = {c: max([len(c), *map(len, frame[c])]) for c in frame.columns}
    pad = lambda c, v: v.ljust(widths[c]) if c in left else v.rjust(widths[c])  # noqa: E731
    rows = [list(frame.columns)] + frame.values.tolist()
    return ["  ".join(pad(c, v) for c, v in zip(frame.columns, row)).rstrip() for row in rows]
