"""AutoAttack at the catastrophic-overfitting setting: is Fast-AT's collapse real, or PGD's weakness?

    python reports/co_autoattack.py RESULTS_DIR RUN_ID [RUN_ID ...] [--points 200] > table.md

For each run, its early-stopped (best.pt) and last-epoch (last.pt) networks are attacked on the
first ``--points`` points of the run's own test data (injected features included) at the run's
eps: PGD-20-1 as in the smoke protocol, then AutoAttack (standard: APGD-CE, APGD-T, FAB-T, Square).
Prints a markdown table with the seconds each AutoAttack took. Outside ``suite reproduce``: on 2
CPU cores it does not fit the smoke budget.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from suite.config import RunOptions
from suite.engine.trainer import RunData, checkpoint_model
from suite.eval import clean_accuracy
from suite.eval.autoattack import autoattack_accuracy
from suite.eval.pgd import percent, pgd_robust
from suite.store.run_dir import RunDir


def rows(results_dir: Path, run_id: str, points: int, data_dir: Path):
    run = RunDir(results_dir, run_id)
    config, device = run.read_config(), torch.device("cpu")
    data = RunData.load(config, RunOptions(data_dir=data_dir, download=False), device)
    x, y, eps = data.test_x[:points], data.test_y[:points], config.eps / 255
    for which, path in (("early-stopped", run.best), ("last epoch", run.last)):
        model, epoch = checkpoint_model(config, data.info, path, device)
        model.eval()
        torch.manual_seed(config.seed)
        pgd = percent(pgd_robust(model, x, y, eps, config.pgd_steps, config.pgd_restarts))
        start = time.perf_counter()
        aa = autoattack_accuracy(model, x, y, eps, seed=config.seed)
        yield (
            config.method,
            str(config.seed),
            f"{which} (epoch {epoch + 1})",
            f"{clean_accuracy(model, x, y):.1f}",
            f"{pgd:.1f}",
            f"{aa:.1f}",
            f"{time.perf_counter() - start:.0f}",
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results_dir", type=Path)
    parser.add_argument("run_ids", nargs="+")
    parser.add_argument("--points", type=int, default=200)
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    args = parser.parse_args()
    header = ("method", "seed", "model", "SA", "RA-PGD-20-1", "RA-AA", "AA seconds")
    print(
        f"AutoAttack (standard) and PGD on the first {args.points} test points, {torch.get_num_threads()} "
        f"torch threads\n"
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for run_id in args.run_ids:
        for row in rows(args.results_dir, run_id, args.points, args.data_dir):
            print("| " + " | ".join(row) + " |", flush=True)
