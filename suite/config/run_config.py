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

from ..errors import SuiteError, unknown_name
from ..models import REVISIONS as ARCH_REVISIONS
from ..models import resolve_dropout
from .checks import check_number

LR_SCHEDULES = ("cyclic", "multistep", "constant")
# Settings added after the first release: left out of the run-id hash while they are None, so
# the runs recorded before they existed keep their ids. Every field added from now on goes here,
# with None as its default meaning "as before".
HASH_WHEN_SET = frozenset({"dropout", "inject_beta"})


@dataclass
class RunConfig:
    method: str = "fast_bat"
    dataset: str = "fashion_mnist"
    arch: str = "small_cnn"
    dropout: float | None = None  # the network's dropout rate: wrn16_8 only, default 0.1 (the reference's)
    eps: float = 8.0  # training and test budget, in /255
    seed: int = 0
    # optimisation (the paper's protocol)
    epochs: int = 20
    batch_size: int = 128
    lr: float = 0.2  # peak learning rate
    lr_schedule: str = "cyclic"  # cyclic: 0 -> lr -> 0 per iteration; multistep: x0.1 at 50% and 75%
    momentum: float = 0.9
    weight_decay: float = 5e-4
    hparams: dict = field(default_factory=dict)  # method hyperparameters; see suite.methods
    # data sizes (None: all of the split)
    train_points: int | None = None
    val_points: int | None = 1000  # per-epoch validation (early stopping)
    test_points: int | None = None
    # per-epoch validation attack (cheap) and catastrophic-overfitting probe
    val_pgd_steps: int = 10
    val_pgd_restarts: int = 1
    co_points: int = 256  # fixed training points for the CO diagnostics (0: off)
    # final evaluation
    pgd_steps: int = 50
    pgd_restarts: int = 10
    aa_points: int = 1000  # AutoAttack on the first N test points (0: skip)
    # data option: add the class-wise pattern beta * v_y (in /255) to every image (suite/data/inject.py)
    inject_beta: float | None = None

    def resolved(self) -> RunConfig:
        """Validate and fill in the method's defaults; raises SuiteError on bad values."""
        from ..data import DATASETS
        from ..methods import resolve_hparams
        from ..models import check_arch

        if self.dataset not in DATASETS:
            raise unknown_name("dataset", self.dataset, DATASETS)
        check_arch(self.arch)
        check_number("eps", self.eps)
        if not 0 < self.eps <= 255:
            raise SuiteError(f"eps must be in (0, 255] (units of 1/255), got {self.eps:g}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise unknown_name("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        check_number("seed", self.seed, integer=True, minimum=0)
        for name in ("epochs", "batch_size", "val_pgd_steps", "pgd_steps", "pgd_restarts", "val_pgd_restarts"):
            check_number(name, getattr(self, name), integer=True, minimum=1)
        for name in ("train_points", "val_points", "test_points"):
            if getattr(self, name) is not None:
                check_number(f"{name} (omit it for the whole split)", getattr(self, name), integer=True, minimum=1)
        for name in ("co_points", "aa_points"):
            check_number(f"{name} (0: off)", getattr(self, name), integer=True, minimum=0)
        if self.inject_beta is not None:
            check_number("inject_beta (in /255; omit it for no injection)", self.inject_beta, above=0, maximum=255)
        check_number("lr", self.lr, above=0)
        check_number("momentum", self.momentum, minimum=0, below=1)
        check_number("weight_decay", self.weight_decay, minimum=0)
        hparams = resolve_hparams(self.method, self.eps, self.hparams)
        # Floats stay floats (8 and 8.0 are one setting, one run id).
        return dataclasses.replace(
            self,
            eps=float(self.eps),
            lr=float(self.lr),
            momentum=float(self.momentum),
            weight_decay=float(self.weight_decay),
            hparams=hparams,
            dropout=resolve_dropout(self.arch, self.dropout),
            inject_beta=None if self.inject_beta is None else float(self.inject_beta),
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RunConfig:
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
        """``<name>-<hash of the resolved configuration>``; call on a resolved config.

        The hash also holds the network's revision (``suite.models.REVISIONS``) where it has one,
        so that runs of a network changed under its name never reuse the old network's records."""
        return f"{self.name}-{digest(self.to_dict(), ARCH_REVISIONS.get(self.arch))}"


def digest(config: dict, arch_revision: int | None = None) -> str:
    """The hash part of a run id: a configuration's settings (those of HASH_WHEN_SET only when
    set) and, where it has one, its network's revision."""
    hashed = {k: v for k, v in config.items() if not (k in HASH_WHEN_SET and v is None)}
    if arch_revision is not None:  # the network changed under its name: new ids
        hashed["arch_revision"] = arch_revision
    return hashlib.sha256(json.dumps(hashed, sort_keys=True).encode()).hexdigest()[:10]


def recorded_arch(run_id: str, config: dict) -> str:
    """The network a run record was trained on: its ``arch``, or ``<arch>@r<n>`` for a record of
    revision n of a network that has since changed under its name (``suite.models.REVISIONS``;
    revision 1 is the first, whose ids held no revision). ``config`` is the recorded configuration."""
    arch = config.get("arch")
    current = ARCH_REVISIONS.get(arch)
    if current is None:
        return arch
    names = {f.name for f in dataclasses.fields(RunConfig)}
    settings = {k: v for k, v in config.items() if k in names}
    for revision in range(1, current):
        if run_id.endswith("-" + digest(settings, None if revision == 1 else revision)):
            return f"{arch}@r{revision}"
    return arch


@dataclass
class RunOptions:
    """Where and how a run executes; none of it changes the result or the run id."""

    results_dir: Path = Path("results")
    data_dir: Path = Path("data")
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    download: bool = True
    force: bool = False  # retrain a finished run from scratch
    accept_stale: bool = False  # keep finished runs whose method code changed since (suite.engine.reuse)
    progress: bool = True
    cuda_graphs: bool = True  # replay each training iteration from a CUDA graph (ignored off CUDA)
    wandb: str = field(default_factory=lambda: os.environ.get("SUITE_WANDB", "offline"))  # offline | online | disabled
    wandb_project: str | None = None  # None: $WANDB_PROJECT, else fast-bat-suite
    wandb_entity: str | None = None  # None: $WANDB_ENTITY, else the account's default
    wandb_group: str | None = None
    wandb_log_model: bool = False  # log best.pt as a W&B model artifact
    wandb_timeout: float = 15.0  # seconds an online W&B init may take before the run logs offline
