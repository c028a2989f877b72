"""A run's configuration: what is trained and how it is evaluated.

Everything in ``RunConfig`` determines the result, so its resolved form (method defaults
filled in) is hashed into the run id: the same configuration always maps to the same run
folder. Where the run executes (device, folders, tracking) lives in ``RunOptions`` and
does not change the id.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import SuiteError
from .methods import resolve_hparams

LR_SCHEDULES = ("cyclic", "multistep", "constant")
# Settings added after the first release: left out of the run-id hash while they are None, so
# the runs recorded before they existed keep their ids. Every field added from now on goes here,
# with None as its default meaning "as before".
HASH_WHEN_SET = frozenset({"inject_beta"})


@dataclass
class RunConfig:
    method: str = "fast_bat"
    dataset: str = "fashion_mnist"
    arch: str = "small_cnn"
    eps: float = 8.0                  # training and test budget, in /255
    seed: int = 0
    # optimisation (the paper's protocol)
    epochs: int = 20
    batch_size: int = 128
    lr: float = 0.2                   # peak learning rate
    lr_schedule: str = "cyclic"       # cyclic: 0 -> lr -> 0 per iteration; multistep: x0.1 at 50% and 75%
    momentum: float = 0.9
    weight_decay: float = 5e-4
    hparams: dict = field(default_factory=dict)   # method hyperparameters; see suite.methods
    # data sizes (None: all of the split)
    train_points: int | None = None
    val_points: int | None = 1000     # per-epoch validation (early stopping)
    test_points: int | None = None
    # per-epoch validation attack (cheap) and catastrophic-overfitting probe
    val_pgd_steps: int = 10
    val_pgd_restarts: int = 1
    co_points: int = 256              # fixed training points for the CO diagnostics (0: off)
    # final evaluation
    pgd_steps: int = 50
    pgd_restarts: int = 10
    aa_points: int = 1000             # AutoAttack on the first N test points (0: skip)
    # data option: add the class-wise pattern beta * v_y (in /255) to every image (suite/data/inject.py)
    inject_beta: float | None = None

    def resolved(self) -> "RunConfig":
        """Validate and fill in the method's defaults; raises SuiteError on bad values."""
        from .data import DATASETS
        from .models import ARCHS

        if self.dataset not in DATASETS:
            raise SuiteError(f"unknown dataset {self.dataset!r}; choose one of: {', '.join(DATASETS)}")
        if self.arch not in ARCHS:
            raise SuiteError(f"unknown arch {self.arch!r}; choose one of: {', '.join(ARCHS)}")
        if not 0 < self.eps <= 255:
            raise SuiteError(f"eps must be in (0, 255] (units of 1/255), got {self.eps:g}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise SuiteError(f"unknown lr_schedule {self.lr_schedule!r}; choose one of: {', '.join(LR_SCHEDULES)}")
        for name in ("epochs", "batch_size", "val_pgd_steps", "pgd_steps", "pgd_restarts", "val_pgd_restarts"):
            if getattr(self, name) < 1:
                raise SuiteError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("train_points", "val_points", "test_points"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise SuiteError(f"{name} must be at least 1 (or omitted for the whole split), got {value}")
        if self.inject_beta is not None and not 0 < self.inject_beta <= 255:
            raise SuiteError(f"inject_beta must be in (0, 255] (units of 1/255) or omitted, got {self.inject_beta:g}")
        if self.lr <= 0:
            raise SuiteError(f"lr must be positive, got {self.lr:g}")
        hparams = resolve_hparams(self.method, self.eps, self.hparams)
        # Floats stay floats (8 and 8.0 are one setting, one run id).
        return dataclasses.replace(self, eps=float(self.eps), lr=float(self.lr), momentum=float(self.momentum),
                                   weight_decay=float(self.weight_decay), hparams=hparams,
                                   inject_beta=None if self.inject_beta is None else float(self.inject_beta))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "RunConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise SuiteError(f"unknown run setting(s) {', '.join(sorted(unknown))}; valid: {', '.join(sorted(names))}")
        return cls(**data)

    @property
    def name(self) -> str:
        """Readable name: ``fast_bat-cifar10-preact_resnet18-eps8-s0``."""
        return f"{self.method}-{self.dataset}-{self.arch}-eps{self.eps:g}-s{self.seed}"

    @property
    def run_id(self) -> str:
        """``<name>-<hash of the resolved configuration>``; call on a resolved config."""
        hashed = {k: v for k, v in self.to_dict().items() if not (k in HASH_WHEN_SET and v is None)}
        digest = hashlib.sha256(json.dumps(hashed, sort_keys=True).encode()).hexdigest()[:10]
        return f"{self.name}-{digest}"


@dataclass
class RunOptions:
    """Where and how a run executes; none of it changes the result or the run id."""
    results_dir: Path = Path("results")
    data_dir: Path = Path("data")
    device: str = "auto"              # auto | cpu | cuda | cuda:N
    download: bool = True
    force: bool = False               # retrain a finished run from scratch
    progress: bool = True
    compile: bool = False             # torch.compile the model (first-order steps and evaluation)
    wandb: str = field(default_factory=lambda: os.environ.get("SUITE_WANDB", "offline"))  # offline | online | disabled
    wandb_project: str = "fast-bat-suite"
    wandb_entity: str | None = None
    wandb_group: str | None = None
