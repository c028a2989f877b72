"""Weights & Biases tracking as a training-loop callback.

Offline by default (runs land under ``<results>/wandb/``; ``wandb sync`` uploads them
later), ``disabled`` under the tests, ``online`` when asked. Tracking never blocks or
fails a run: any W&B error is reported once as a warning and tracking stops for that run.
"""
from __future__ import annotations

import secrets
import warnings

from .callbacks import Callback

MODES = ("offline", "online", "disabled")


def flatten(record: dict, prefix: str = "") -> dict:
    """``{"best": {"sa": 1}}`` -> ``{"best/sa": 1}``."""
    flat = {}
    for key, value in record.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


class WandbTracker(Callback):
    """Log one run to W&B: its configuration (with ``run_id``), one history row per epoch
    (stepped by ``epoch``) and the final summary (``status``, ``best/sa`` ... ``last/ra_aa``).

    The W&B run id is kept in the run's ``summary.json`` (``wandb_id``), so a resumed run
    keeps logging to the same W&B run. Offline logs land in ``<results>/wandb/``.
    """

    def __init__(self, mode: str = "offline", project: str = "fast-bat-suite", entity: str | None = None,
                 group: str | None = None, extra_config: dict | None = None):
        self.mode, self.project, self.entity, self.group = mode, project, entity, group
        self.extra_config = extra_config or {}
        self.run = None

    def on_start(self, run_dir, config, record: dict) -> None:
        if self.mode == "disabled":
            return
        self._guard(self._init, run_dir, config, record)

    def _init(self, run_dir, config, record):
        import wandb

        settings = wandb.Settings(init_timeout=60, silent=True)
        # the id is chosen here, not by W&B, so the offline fallback and a resumed run share it
        kwargs = dict(project=self.project, entity=self.entity, group=self.group, name=config.name,
                      id=record.get("wandb_id") or secrets.token_hex(6), resume="allow",
                      tags=[config.method, config.dataset, config.arch, f"eps{config.eps:g}"],
                      config={**config.to_dict(), "run_id": run_dir.run_id, **self.extra_config},
                      dir=str(run_dir.path.parent.parent), settings=settings, reinit="create_new")
        try:
            self.run = wandb.init(mode=self.mode, **kwargs)
        except Exception as err:  # unreachable server: keep the run going, offline
            if self.mode != "online":
                raise
            warnings.warn(f"W&B online init failed ({err}); logging offline instead; upload later with wandb sync")
            self.run = wandb.init(mode="offline", **kwargs)
        record["wandb_id"] = self.run.id
        self.run.define_metric("epoch")
        self.run.define_metric("*", step_metric="epoch")
        self.run.define_metric("val_robust_acc", summary="max")
        self.run.define_metric("val_clean_acc", summary="last")
        self.run.define_metric("train_pgd_acc", summary="min")

    def on_epoch_end(self, epoch: int, metrics: dict) -> None:
        if self.run is not None:
            self._guard(self.run.log, metrics)

    def on_end(self, record: dict) -> None:
        if self.run is None:
            return
        def finish():
            keys = ("status", "best", "last", "best_epoch", "epoch_seconds", "error")
            self.run.summary.update(flatten({k: record.get(k) for k in keys}))
            self.run.finish(exit_code=0 if record.get("status") in ("finished", "pruned") else 1)
        self._guard(finish)
        self.run = None

    def _guard(self, fn, *args):
        try:
            fn(*args)
        except Exception as err:
            warnings.warn(f"W&B tracking stopped for this run: {type(err).__name__}: {err}")
            self.run = None
