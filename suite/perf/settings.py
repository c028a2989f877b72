"""What ``suite bench`` measures and at which sizes: the sections, the method variants, the
defaults of each device (and of ``--quick``, for the tests), resolved before anything runs."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from ..data import DATASETS
from ..engine.device import pick_device
from ..errors import SuiteError, unknown_name
from ..methods import METHODS, get_method
from ..models import ARCHS

SECTIONS = ("methods", "reference", "pipeline", "eval", "precision")

# (name, method, hyperparameter overrides) of the training iterations compared: every registered
# method at its defaults, except those listed in VARIANTS_OF, which are timed in these variants
VARIANTS_OF = {
    "pgd": [("pgd2", {"steps": 2}), ("pgd10", {"steps": 10})],
    "fast_bat": [("fast_bat", {}), ("fast_bat_fd", {"implicit": "finite_diff"})],
}
METHOD_VARIANTS = [
    (name, method, overrides) for method in METHODS for name, overrides in VARIANTS_OF.get(method, [(method, {})])
]
LAYOUT_VARIANTS = ("fast_at", "fast_bat")  # also timed in the contiguous layout


def method_variants(settings: Settings) -> list:
    """The iterations timed: the built-ins' variants, then each extra method at its defaults."""
    return METHOD_VARIANTS + [(m, m, {}) for m in dict.fromkeys(settings.methods) if m not in METHODS]


@dataclass
class Settings:
    """What to measure; None fields take the device's default (see :func:`resolve`)."""

    arch: str = "preact_resnet18"
    dataset: str = "cifar10"
    batch_size: int | None = None
    eps: float = 8.0  # /255
    reps: int | None = None
    warmup: int | None = None
    device: str = "auto"
    quick: bool = False
    sections: tuple = SECTIONS
    images: int | None = None  # pipeline: synthetic images per epoch
    workers: int | None = None  # pipeline: DataLoader worker processes (besides 0)
    data_dir: Path = Path("data")
    eval_points: int | None = None
    eval_steps: int | None = None
    eval_restarts: int | None = None
    eval_reps: int | None = None  # eval: timed rounds (no warm-up: the calibration warms up)
    eval_train_iters: int | None = None
    fd_batch: int | None = None
    precision_batch: int | None = None
    precision_run: Path | None = None  # precision: a run record folder, measured at its last checkpoint
    precision_seeds: int = 1  # precision: draws of the methods' randomness (the policy's verdict needs 3)
    seed: int = 0
    threads: int | None = None  # CPU: torch's intra-op threads (None: torch's default)
    methods: tuple = ()  # methods: plug-ins (entry points, dotted paths) timed besides the built-ins


# Defaults by device, and the much smaller sizes of --quick (for the test suite).
DEFAULTS = {
    "cuda": dict(
        batch_size=128,
        reps=20,
        warmup=3,
        images=16384,
        eval_points=1000,
        eval_steps=50,
        eval_restarts=10,
        eval_reps=5,
        eval_train_iters=400,
        fd_batch=32,
        precision_batch=64,
    ),
    "cpu": dict(
        batch_size=32,
        reps=5,
        warmup=1,
        images=2048,
        eval_points=200,
        eval_steps=50,
        eval_restarts=10,
        eval_reps=3,
        eval_train_iters=300,
        fd_batch=32,
        precision_batch=64,
    ),
    "quick": dict(
        batch_size=8,
        reps=2,
        warmup=1,
        images=64,
        eval_points=32,
        eval_steps=5,
        eval_restarts=2,
        eval_reps=2,
        eval_train_iters=10,
        fd_batch=4,
        precision_batch=4,
    ),
}


def resolve(settings: Settings) -> tuple[Settings, torch.device]:
    """Fill the device's defaults in; refuse unknown names before anything is measured."""
    device = pick_device(settings.device)
    if settings.arch not in ARCHS:
        raise unknown_name("arch", settings.arch, ARCHS)
    if settings.dataset not in DATASETS:
        raise unknown_name("dataset", settings.dataset, DATASETS)
    for method in settings.methods:  # a plug-in that does not resolve fails here, in one line
        get_method(method)
    unknown = set(settings.sections) - set(SECTIONS)
    if unknown:
        raise SuiteError(f"unknown bench section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    if settings.precision_run is not None:  # the run's setting is what is measured: say so in the header
        from .precision import run_record

        config = run_record(Path(settings.precision_run))[1]
        settings = replace(settings, arch=config.arch, dataset=config.dataset, eps=config.eps)
    defaults = DEFAULTS["quick" if settings.quick else device.type]
    values = {k: (defaults[k] if getattr(settings, k) is None else getattr(settings, k)) for k in defaults}
    if settings.workers is None:
        values["workers"] = 0 if settings.quick else min(4, os.cpu_count() or 1)
    for name in (
        "batch_size",
        "reps",
        "images",
        "eval_points",
        "eval_steps",
        "eval_restarts",
        "eval_reps",
        "fd_batch",
        "precision_batch",
    ):
        if values[name] < 1:
            raise SuiteError(f"--{name.replace('_', '-')} must be positive, got {values[name]}")
    if settings.precision_seeds < 1:
        raise SuiteError(f"--precision-seeds must be positive, got {settings.precision_seeds}")
    resolved = Settings(**{**asdict(settings), **values})
    return resolved, device
