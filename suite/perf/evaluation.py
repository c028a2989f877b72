"""The ``eval`` section of ``suite bench``: PGD-k-r with early exit against the full attack, on a
small CNN trained here on Fashion-MNIST with Fast-AT, at an eps calibrated so that its robust
accuracy is near 50%."""

from __future__ import annotations

import math
import statistics

import torch

from ..data import DeviceLoader, load_splits
from ..errors import SuiteError
from ..eval import clean_accuracy, robust_accuracy
from ..methods import get_method, resolve_hparams
from ..models import build_model
from .settings import Settings
from .timing import interleaved, medians, progress

EVAL_TRAIN = dict(
    arch="small_cnn",
    dataset="fashion_mnist",
    method="fast_at",
    batch_size=128,
    lr=0.05,
    momentum=0.9,
    train_points=8192,
)
EVAL_TARGET_ACC = 50.0  # robust accuracy (%) the calibrated eps aims at
EVAL_EPS_RANGE = (0.0, 64.0)  # /255, searched by bisection
CALIBRATION = dict(steps=10, restarts=1, bisections=8)


def bench_eval(s: Settings, device: torch.device) -> dict:
    """PGD-k-r with early exit vs the full attack, near 50% robust accuracy."""
    c = EVAL_TRAIN
    try:
        splits = load_splits(c["dataset"], s.data_dir, download=False)
    except SuiteError as err:
        return {"skipped": f"needs Fashion-MNIST (in --data-dir or the system's datasets): {err}"}
    info = splits.info
    torch.manual_seed(s.seed)
    model = build_model(c["arch"], info.in_channels, info.num_classes, info.mean, info.std).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=c["lr"], momentum=c["momentum"])
    loader = DeviceLoader(
        splits.train_x[: c["train_points"]],
        splits.train_y[: c["train_points"]],
        c["batch_size"],
        shuffle=True,
        device=device,
        generator=torch.Generator().manual_seed(s.seed),
    )
    method, hparams = get_method(c["method"]), resolve_hparams(c["method"], s.eps)
    progress(f"training {c['arch']} on {c['dataset']} with {c['method']} for {s.eval_train_iters} iterations")
    done = 0
    while done < s.eval_train_iters:
        for xb, yb in loader:
            optimizer.zero_grad(set_to_none=True)
            method.step(model, xb, yb, s.eps / 255, **hparams)
            optimizer.step()
            done += 1
            if done == s.eval_train_iters:
                break
    model.eval()
    x = splits.test_x[: s.eval_points].to(device).float().div_(255)
    y = splits.test_y[: s.eval_points].to(device)
    eps = calibrate_eps(model, x, y)
    counted = SampleCounter(model)
    runs = {"early_exit": [], "full": []}
    work = {"early_exit": [], "full": []}

    def attack(early_exit: bool):
        name = "early_exit" if early_exit else "full"

        def run():
            counted.samples = 0
            acc = robust_accuracy(counted, x, y, eps, s.eval_steps, s.eval_restarts, early_exit=early_exit)
            runs[name].append(acc)
            work[name].append(counted.samples)

        return run

    progress(
        f"timing PGD-{s.eval_steps}-{s.eval_restarts} on {len(x)} points at eps {255 * eps:.2f}/255 "
        f"({s.eval_reps} rounds)"
    )
    med = medians(interleaved({"early_exit": attack(True), "full": attack(False)}, s.eval_reps, 0, device))
    ra = {k: statistics.mean(v) for k, v in runs.items()}
    samples = {k: statistics.mean(v) for k, v in work.items()}
    return {
        "attack": f"PGD-{s.eval_steps}-{s.eval_restarts}",
        "rounds": s.eval_reps,
        "points": len(x),
        "eps": 255 * eps,
        "model": f"{c['arch']} trained {s.eval_train_iters} iterations of {c['method']} at eps {s.eps}/255",
        "clean_acc": clean_accuracy(model, x, y),
        "robust_acc": ra,
        "robust_acc_abs_diff": abs(ra["early_exit"] - ra["full"]),
        "seconds": med,
        "cost_ratio": med["early_exit"] / med["full"],
        "forward_samples": samples,
        "work_ratio": samples["early_exit"] / samples["full"],
    }


class SampleCounter(torch.nn.Module):
    """Wraps a model and counts the samples it is run on: the attack's work, whatever the load."""

    def __init__(self, model):
        super().__init__()
        self.model, self.samples = model, 0

    def forward(self, x):
        self.samples += x.shape[0]
        return self.model(x)


def calibrate_eps(model, x, y) -> float:
    """The eps (pixel units) at which a cheap PGD puts the robust accuracy nearest 50%, by bisection."""
    lo, hi = (e / 255 for e in EVAL_EPS_RANGE)
    best = (math.inf, hi)
    for _ in range(CALIBRATION["bisections"]):
        mid = (lo + hi) / 2
        acc = robust_accuracy(model, x, y, mid, CALIBRATION["steps"], CALIBRATION["restarts"])
        best = min(best, (abs(acc - EVAL_TARGET_ACC), mid))
        lo, hi = (mid, hi) if acc > EVAL_TARGET_ACC else (lo, mid)
    return best[1]
