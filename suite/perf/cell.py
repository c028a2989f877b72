"""A Table-1 cell timed on ``synthetic_cifar10``, and the whole Table 1 extrapolated from it.

Table 1 (``sweeps/table1.yaml``) trains PreActResNet-18 on CIFAR-10 for 20 epochs, validates every
epoch (PGD-10 on 1000 points, the CO probe), and evaluates the early-stopped and the last model
with PGD-50-10 on the 10,000 test points and AutoAttack on the first 1000. CIFAR-10 cannot be
fetched onto the GPU box, so the cell runs on ``synthetic_cifar10`` (its shape, size and
augmentation) with Table 1's own settings, through the Trainer (its CUDA graphs, graphed
evaluation, checkpoints), but cut to fit the GPU check: :data:`CELL_EPOCHS` epochs and
:data:`CELL_TEST_POINTS` test points, no AutoAttack. Everything else is an extrapolation, and
says so:

* a cell's training: the first epoch (CUDA-graph capture, cuDNN autotuning) as measured, then
  the median of the later epochs for each of the 19 others;
* a cell's final evaluation: the measured seconds per evaluated model on its test points, scaled
  to 10,000 points (early-exit PGD costs in proportion to the points it attacks; its cost also
  follows the model's robustness, which a 3-epoch model need not share with a 20-epoch one),
  for two models (early-stopped and last), plus AutoAttack on 1000;
* AutoAttack (pyautoattack is not on the GPU box): the standard version's iteration counts
  (APGD-CE 100 on every point, APGD-T and FAB-T 9 x 100 and Square 5000 queries on the points
  still robust) times the measured seconds per point of a forward-backward and of a forward of
  the trained network at the evaluation batch size (:func:`autoattack_estimate`);
* the methods the cell does not train (Fast-AT-GA, PGD-2): Fast-AT's epoch scaled by their
  graphed iteration time over Fast-AT's (the check's ``iterations`` part), the rest as measured.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ..engine.callbacks import Callback
from ..engine.device import sync

CELL_METHODS = ("fast_at", "fast_bat")
CELL_EPOCHS = 3
CELL_TEST_POINTS = 1000
TABLE1_TEST_POINTS, TABLE1_AA_POINTS, TABLE1_EPOCHS = 10_000, 1000, 20
MODELS_EVALUATED = 2  # the early-stopped and the last-epoch model (one when they are the same epoch)
# AutoAttack "standard" (Linf): (forward-backward passes, forwards) per attacked point, and which
# points it attacks: those classified correctly, or those still robust after the attacks before it
# (autoattack/autoattack.py: APGD 100 iterations, 9 target classes, Square 5000 queries).
AUTOATTACK_WORK = {
    "apgd-ce": (100, 0, "correct"),
    "apgd-t": (9 * 100, 0, "robust"),
    "fab-t": (9 * 100, 9 * 100, "robust"),
    "square": (0, 5000, "robust"),
}


class Timeline(Callback):
    """When the run started, each epoch ended (after its checkpoint) and the run ended."""

    def __init__(self):
        self.started, self.epochs, self.ended = None, [], None

    def on_start(self, run, config, record):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, metrics):
        self.epochs.append((time.perf_counter(), metrics["epoch_seconds"]))

    def on_end(self, record):
        self.ended = time.perf_counter()


def cell_config(spec_configs, method: str, **overrides):
    """Table 1's own run of ``method`` at eps 8, seed 0, moved to synthetic_cifar10 and cut to the check's size."""
    import dataclasses

    config = next(c for c in spec_configs if c.method == method and c.eps == 8 and c.seed == 0)
    settings = {
        "dataset": "synthetic_cifar10",
        "epochs": CELL_EPOCHS,
        "test_points": CELL_TEST_POINTS,
        "aa_points": 0,
        **overrides,
    }
    return dataclasses.replace(config, **settings).resolved()


def table1_spec():
    """The shipped Table 1 sweep spec (its runs and base settings)."""
    from ..experiments.presets import spec_path
    from ..experiments.sweep import load_spec

    return load_spec(spec_path("table1.yaml"))


def train_cell_run(config, results: Path, device: str) -> dict:
    """Train and evaluate one cell run with the Trainer; its timings, results and run folder."""
    from ..config import RunOptions
    from ..engine import execute

    options = RunOptions(results_dir=results, device=device, download=False, progress=False, wandb="disabled")
    timeline = Timeline()
    begun = time.perf_counter()
    summary = execute(config, options, [timeline])
    wall = time.perf_counter() - begun
    epoch_s = [seconds for _, seconds in timeline.epochs]
    ends = [t for t, _ in timeline.epochs]
    starts = [timeline.started, *ends[:-1]]
    between = [end - start - seconds for start, end, seconds in zip(starts, ends, epoch_s)]
    models = 1 if summary["best_epoch"] in (None, config.epochs) else MODELS_EVALUATED
    return {
        "run_dir": str(results / "runs" / summary["run_id"]),
        "setup_s": timeline.started - begun,  # data, model, record: before the first epoch
        "epoch_s": epoch_s,
        "first_epoch_s": epoch_s[0],
        "steady_epoch_s": statistics.median(epoch_s[1:]) if len(epoch_s) > 1 else epoch_s[0],
        "validation_s": statistics.median(between),  # validation, CO probe, checkpoint, records
        "final_evaluation_s": timeline.ended - ends[-1],
        "models_evaluated": models,
        "test_points": len_test(summary, config),
        "wall_s": wall,
        "cuda_graphs": summary.get("cuda_graphs"),
        "results": {m: {k: summary[m][k] for k in ("sa", "ra_pgd")} for m in ("best", "last")},
    }


def len_test(summary, config) -> int:
    return summary.get("protocol", {}).get("test_points") or config.test_points


def per_point_seconds(model, x, y, reps: int = 3) -> dict:
    """Seconds per point of an input-gradient forward-backward and of a forward (eval mode, eager,
    as AutoAttack runs), at ``len(x)`` points a batch; medians of ``reps`` after one warm-up."""
    model.eval()

    def gradient():
        xa = x.clone().requires_grad_(True)
        torch.autograd.grad(F.cross_entropy(model(xa), y, reduction="sum"), xa)

    def forward():
        with torch.no_grad():
            model(x)

    out = {}
    for name, fn in (("forward_backward", gradient), ("forward", forward)):
        times = []
        for r in range(reps + 1):
            sync(x.device)
            start = time.perf_counter()
            fn()
            sync(x.device)
            if r:
                times.append(time.perf_counter() - start)
        out[name] = statistics.median(times) / len(x)
    return out


def autoattack_estimate(per_point: dict, points: int, clean_fraction: float, robust_fraction: float) -> dict:
    """AutoAttack standard's seconds on ``points`` points from its work (:data:`AUTOATTACK_WORK`) and the
    measured per-point costs: APGD-CE on the correctly classified share, the other attacks on the
    robust share (taken as the PGD robust accuracy: the points APGD-CE leaves)."""
    by_attack = {}
    for attack, (fb, f, on) in AUTOATTACK_WORK.items():
        n = points * (clean_fraction if on == "correct" else robust_fraction)
        by_attack[attack] = n * (fb * per_point["forward_backward"] + f * per_point["forward"])
    return {
        "seconds": sum(by_attack.values()),
        "by_attack": by_attack,
        "clean_fraction": clean_fraction,
        "robust_fraction": robust_fraction,
    }


def cell_wall(run: dict, aa_s: float) -> dict:
    """One Table-1 cell's seconds extrapolated from a cell run: training, validation, final evaluation."""
    epochs = TABLE1_EPOCHS
    training = run["first_epoch_s"] + (epochs - 1) * run["steady_epoch_s"]
    validation = epochs * run["validation_s"]
    per_model = run["final_evaluation_s"] / run["models_evaluated"]
    final = MODELS_EVALUATED * (per_model * TABLE1_TEST_POINTS / run["test_points"] + aa_s)
    return {
        "training_s": training,
        "validation_s": validation,
        "final_evaluation_s": final,
        "setup_s": run["setup_s"],
        "wall_s": run["setup_s"] + training + validation + final,
    }


def variant_name(config) -> str:
    """The bench's name of a configuration's method variant (pgd2, fast_bat_fd, ...)."""
    if config.method == "pgd":
        return f"pgd{config.hparams.get('steps', 10)}"
    if config.method == "fast_bat" and config.hparams.get("implicit") == "finite_diff":
        return "fast_bat_fd"
    return config.method


def table1_estimate(cell: dict, iterations: dict | None, configs) -> dict:
    """The whole Table 1 in H200-hours: every run of ``configs`` (the shipped spec's) at its method's
    extrapolated cell time (:func:`cell_wall`; unmeasured methods scaled by graphed iteration time
    from ``iterations``); with Fast-AT-GA also at its bf16 and mixed iteration times if measured."""
    runs = {m: cell[m] for m in CELL_METHODS if m in cell}
    if not runs:
        return {"skipped": "no cell run measured"}
    walls = {m: cell_wall(r, cell["autoattack"]["seconds"] if "autoattack" in cell else 0.0) for m, r in runs.items()}
    shared = {
        k: statistics.mean(w[k] for w in walls.values()) for k in ("validation_s", "final_evaluation_s", "setup_s")
    }
    graph_s = (iterations or {}).get("graph_s", {})
    extra = (iterations or {}).get("precision_variants_graph_s", {})

    def run_seconds(name: str, graphed: dict) -> float | None:
        if name in walls:
            return walls[name]["wall_s"]
        if "fast_at" not in runs or name not in graphed or "fast_at" not in graphed:
            return None
        per_epoch = runs["fast_at"]["steady_epoch_s"] * graphed[name] / graphed["fast_at"]
        return shared["setup_s"] + TABLE1_EPOCHS * per_epoch + shared["validation_s"] + shared["final_evaluation_s"]

    def total(graphed: dict):
        seconds = [run_seconds(variant_name(c), graphed) for c in configs]
        missing = sorted({variant_name(c) for c, s in zip(configs, seconds) if s is None})
        return (None if missing else sum(seconds) / 3600), missing

    hours, missing = total(graph_s)
    out = {
        "runs": len(configs),
        "cell_s": {m: w for m, w in walls.items()},
        "hours": hours,
        "missing": missing,  # methods whose time could not be extrapolated (their iteration time not measured)
        "by_method_s": {name: run_seconds(name, graph_s) for name in sorted({variant_name(c) for c in configs})},
    }
    for precision, seconds in extra.items():  # Fast-AT-GA trained in another precision
        out[f"hours_fast_at_ga_{precision}"] = total({**graph_s, "fast_at_ga": seconds})[0]
    return out


def measure_cell(work: Path, device: str = "cuda", methods=CELL_METHODS, **overrides) -> dict:
    """The ``table1_cell`` part: each of ``methods`` trained as a cut-down Table-1 cell on
    synthetic_cifar10, timed; AutoAttack estimated on the last one's trained network."""
    from ..config import RunOptions
    from ..engine.trainer import RunData, checkpoint_model
    from ..store import RunDir

    spec_configs = table1_spec().configs()
    out = {}
    for method in methods:
        config = cell_config(spec_configs, method, **overrides)
        out[method] = {"config": _shown(config), **train_cell_run(config, Path(work), device)}
    options = RunOptions(results_dir=Path(work), device=device, download=False, progress=False, wandb="disabled")
    data = RunData.load(config, options, torch.device(device))
    model, _ = checkpoint_model(config, data.info, RunDir(Path(work), config.run_id).last, torch.device(device))
    batch = min(len(data.test_x), 1000 if device != "cpu" else 100)
    per_point = per_point_seconds(model, data.test_x[:batch], data.test_y[:batch])
    last = out[methods[-1]]["results"]["last"]
    out["autoattack"] = {
        "points": TABLE1_AA_POINTS,
        "per_point_s": per_point,
        **autoattack_estimate(per_point, TABLE1_AA_POINTS, last["sa"] / 100, last["ra_pgd"] / 100),
        "estimate_from": f"{methods[-1]}'s network after {config.epochs} epochs, eval batch {batch}",
    }
    out["table1_runs"] = len(spec_configs)
    return out


def _shown(config) -> dict:
    keys = ("method", "dataset", "arch", "eps", "epochs", "batch_size", "val_points", "val_pgd_steps", "co_points")
    return {k: getattr(config, k) for k in (*keys, "test_points", "pgd_steps", "pgd_restarts")}
