"""The tables of reports/co_search.md, from the run records of the CO search.

    python reports/co_search.py RESULTS_DIR [RESULTS_DIR ...] > tables.md

One row per run: its setting, the per-epoch validation PGD and clean accuracy, the CO verdict
(suite/report/co.py) and the test accuracy of the early-stopped and the last-epoch model.
"""

from __future__ import annotations

import sys
from pathlib import Path

from suite.report.co import co_verdict
from suite.store.atomic import read_json, read_jsonl
from suite.store.run_dir import RunDir


def rows(results_dir: Path):
    for folder in sorted((Path(results_dir) / "runs").iterdir()):
        run = RunDir(results_dir, folder.name)
        summary, config = run.read_summary() or {}, read_json(run.config)["config"]
        history = read_jsonl(run.metrics)
        if summary.get("status") != "finished":
            continue
        verdict = co_verdict(history)
        best, last = summary["best"], summary["last"]
        hp = ", ".join(f"{k} {v:g}" for k, v in config["hparams"].items() if k == "coef")
        yield (
            config["method"] + (f" ({hp})" if hp else ""),
            f"{config['eps']:g}",
            f"{config.get('inject_beta') or 0:g}",
            f"{config['lr']:g}",
            str(config["train_points"]),
            str(config["epochs"]),
            str(config["seed"]),
            " ".join(f"{r['val_robust_acc']:.0f}" for r in history),
            " ".join(f"{r['val_clean_acc']:.0f}" for r in history),
            f"CO at {verdict.epoch}" if verdict.flagged else "no",
            f"{best['sa']:.1f} / {best['ra_pgd']:.1f} (ep {summary['best_epoch']})",
            f"{last['sa']:.1f} / {last['ra_pgd']:.1f}",
        )


HEADER = (
    "method",
    "ε",
    "β",
    "lr",
    "points",
    "epochs",
    "seed",
    "val PGD-5 acc. per epoch",
    "val clean acc. per epoch",
    "CO rule",
    "early-stopped SA / RA-PGD",
    "last-epoch SA / RA-PGD",
)

if __name__ == "__main__":
    table = sorted(set(row for d in sys.argv[1:] for row in rows(Path(d))))  # a run found twice counts once
    print("| " + " | ".join(HEADER) + " |")
    print("|" + "---|" * len(HEADER))
    for row in table:
        print("| " + " | ".join(row) + " |")
