"""Weights & Biases tracking as a training-loop callback, and the replay of run records.

Offline by default (runs land under ``<results>/wandb/``), ``disabled`` under the tests,
``online`` when asked. Tracking never blocks or fails a run: any W&B error is reported once
as a warning and tracking stops for that run. An online run whose server does not answer
within ``RunOptions.wandb_timeout`` seconds logs offline instead, under the same W&B id, and
says so once; ``suite sync`` uploads it later.

Uploading offline runs: ``suite sync`` (:func:`sync_runs`) replays each run record
(``metrics.jsonl``, ``summary.json``) into its W&B run, in epoch order, and remembers what
it sent, so a run killed and resumed offline (two offline folders with one W&B id, which
``wandb sync`` would upload as two histories overwriting each other) arrives whole, once.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import warnings
from pathlib import Path

from .config import RunOptions
from .config.numbers import tidy
from .engine.callbacks import Callback
from .store.status import RunStatus

MODES = ("offline", "online", "disabled")
DEFAULT_PROJECT = "fast-bat-suite"
SYNCED = "wandb_sync.json"  # in a run folder: what suite sync has uploaded of it
DEFAULT_TIMEOUT = RunOptions.wandb_timeout  # seconds an online init may wait for the server


def flatten(record: dict, prefix: str = "") -> dict:
    """``{"best": {"sa": 1}}`` -> ``{"best/sa": 1}``."""
    flat = {}
    for key, value in record.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def resolve_project(project: str | None) -> str:
    """The flag's project, else ``$WANDB_PROJECT``, else ``fast-bat-suite``."""
    return project or os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT


def run_tags(config, *extra: str) -> list[str]:
    """The tags of a run: method, dataset, arch, eps, seed, then ``sweep:<name>`` / ``study:<name>`` ..."""
    return [config.method, config.dataset, config.arch, f"eps{config.eps:g}", f"seed{config.seed}", *extra]


def trackers(
    options,
    *,
    group: str | None = None,
    name: str | None = None,
    tags: tuple = (),
    job_type: str = "train",
    extra_config: dict | None = None,
) -> list:
    """The tracking callbacks of a run with these options (W&B; its mode may be ``disabled``).

    ``group`` falls back to ``--wandb-group`` (then ``$WANDB_RUN_GROUP``); ``name`` to the
    run's readable name; ``tags`` are added to :func:`run_tags`; ``job_type`` is train or tune.
    """
    return [
        WandbTracker(
            options.wandb,
            options.wandb_project,
            options.wandb_entity,
            group or options.wandb_group,
            extra_config,
            name=name,
            tags=tags,
            job_type=job_type,
            log_model=getattr(options, "wandb_log_model", False),
            timeout=getattr(options, "wandb_timeout", DEFAULT_TIMEOUT),
        )
    ]


class WandbTracker(Callback):
    """Log one run to W&B: its configuration (with ``run_id``), one history row per epoch
    (stepped by ``epoch``), the final summary (``status``, ``best/sa`` ... ``last/ra_aa``) and,
    with ``log_model``, the early-stopped checkpoint as a ``model`` artifact.

    The W&B run id and how the run was logged (project, entity, group, name, tags, job type,
    mode) are kept in the run's ``summary.json`` (``wandb_id``, ``wandb``), so a resumed run
    keeps logging to the same W&B run and ``suite sync`` can replay it. Offline logs land in
    ``<results>/wandb/``.
    """

    def __init__(
        self,
        mode: str = "offline",
        project: str | None = None,
        entity: str | None = None,
        group: str | None = None,
        extra_config: dict | None = None,
        *,
        name: str | None = None,
        tags: tuple = (),
        job_type: str = "train",
        log_model: bool = False,
        timeout: float | None = None,
    ):
        self.timeout = DEFAULT_TIMEOUT if timeout is None else timeout
        self.mode, self.project, self.entity, self.group = mode, resolve_project(project), entity, group
        self.extra_config = extra_config or {}
        self.name, self.tags, self.job_type, self.log_model = name, tuple(tags), job_type, log_model
        self.run = self.run_dir = None

    def identity(self, config) -> dict:
        """Where and as what the run is logged (also what ``suite sync`` replays it as)."""
        return {
            "project": self.project,
            "entity": self.entity or os.environ.get("WANDB_ENTITY"),
            "group": self.group or os.environ.get("WANDB_RUN_GROUP"),
            "name": self.name or config.name,
            "tags": run_tags(config, *self.tags),
            "job_type": self.job_type,
        }

    def on_start(self, run_dir, config, record: dict) -> None:
        if self.mode == "disabled":
            return
        self.run_dir = run_dir
        self._guard(self._init, run_dir, config, record)

    def _init(self, run_dir, config, record):
        identity = self.identity(config)
        wandb_config = {
            **config.to_dict(),
            "run_id": run_dir.run_id,
            **{key: record.get(key) for key in ("method_code", "method_module", "git")},  # what made it
            **self.extra_config,
        }
        # the id is chosen here, not by W&B, so the offline fallback and a resumed run share it
        self.run, mode = open_run(
            self.mode,
            identity,
            wandb_config,
            record.get("wandb_id") or secrets.token_hex(6),
            Path(run_dir.path).parent.parent,
            timeout=self.timeout,
        )
        record["wandb_id"] = self.run.id
        record["wandb"] = {**identity, "mode": mode, "extra_config": self.extra_config}

    def on_epoch_end(self, epoch: int, metrics: dict) -> None:
        if self.run is not None:
            self._guard(self.run.log, tidy(metrics))

    def on_end(self, record: dict) -> None:
        if self.run is None:
            return

        def finish():
            if self.log_model and record.get("status") == RunStatus.FINISHED:
                log_best_model(self.run, self.run_dir, record)
            self.run.summary.update(final_summary(record))
            self.run.finish(exit_code=0 if record.get("status") in (RunStatus.FINISHED, RunStatus.PRUNED) else 1)

        self._guard(finish)
        self.run = None

    def _guard(self, fn, *args):
        try:
            fn(*args)
        except Exception as err:
            warnings.warn(f"W&B tracking stopped for this run: {type(err).__name__}: {err}")
            self.run = None


def open_run(
    mode: str,
    identity: dict,
    config: dict,
    wandb_id: str,
    folder: Path,
    fallback: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
):
    """``wandb.init`` a run (resumable, metrics stepped by ``epoch``); online gives up after
    ``timeout`` seconds and, with ``fallback``, logs offline under the same id. Returns the run
    and the mode it runs in.

    A failed online init leaves its run id registered in this process's W&B service (a second
    ``wandb.init`` with that id fails with "run ID ... is in use"), so the service is torn down
    first; the suite holds one W&B run per process (sweeps and studies run each in its own)."""
    import wandb

    settings = wandb.Settings(init_timeout=timeout, silent=True)
    kwargs = dict(
        **identity, id=wandb_id, resume="allow", config=config, dir=str(folder), settings=settings, reinit="create_new"
    )
    try:
        run = wandb.init(mode=mode, **kwargs)
    except Exception as err:  # unreachable server: keep the run going, offline
        if mode != "online" or not fallback:
            raise
        reason = " ".join(str(err).split())[:200]
        warnings.warn(
            f"W&B server unreachable ({type(err).__name__}: {reason}); logging offline instead under id {wandb_id}; "
            f"upload later with suite sync"
        )
        wandb.teardown()
        run, mode = wandb.init(mode="offline", **kwargs), "offline"
    run.define_metric("epoch")
    run.define_metric("*", step_metric="epoch")
    run.define_metric("val_robust_acc", summary="max")
    run.define_metric("val_clean_acc", summary="last")
    run.define_metric("train_pgd_acc", summary="min")
    return run, mode


def final_summary(record: dict) -> dict:
    keys = ("status", "best", "last", "best_epoch", "epoch_seconds", "error")
    return tidy(flatten({k: record.get(k) for k in keys}))


def log_best_model(run, run_dir, record: dict) -> None:
    """The early-stopped checkpoint as the artifact ``model-<run_id>`` (alias ``best``)."""
    import wandb

    artifact = wandb.Artifact(
        f"model-{run_dir.run_id}",
        type="model",
        metadata={
            "run_id": run_dir.run_id,
            "best_epoch": record.get("best_epoch"),
            **flatten({"best": record.get("best") or {}}),
        },
    )
    artifact.add_file(str(run_dir.best), name="best.pt")
    run.log_artifact(artifact, aliases=["best"])


# -- suite sync: replay run records --------------------------------------------------------


def _digest(summary: dict) -> str:
    return hashlib.sha256(json.dumps(final_summary(summary), sort_keys=True, default=str).encode()).hexdigest()[:16]


def sync_run(
    run_dir,
    *,
    mode: str = "online",
    project: str | None = None,
    entity: str | None = None,
    log_model: bool = False,
    folder: Path | None = None,
    timeout: float | None = None,
) -> str:
    """Replay one run record into its W&B run; returns what was done (one line).

    The W&B run keeps the id, name, group, tags and job type it was tracked with. Only the
    epochs not uploaded by an earlier ``sync_run`` are logged, in order, then the summary;
    what was sent is remembered in ``<run>/wandb_sync.json``, so syncing again sends nothing
    twice and a run synced while it was training gets the rest later.
    """
    from .store import read_json, read_jsonl, write_json

    summary = run_dir.read_summary() or {}
    rows = read_jsonl(run_dir.metrics)
    config = run_dir.read_config()
    marker_path = run_dir.path / SYNCED
    marker = read_json(marker_path) if marker_path.exists() else {}
    final = summary.get("status") not in (None, RunStatus.RUNNING)
    tracked = summary.get("wandb") or {}
    if tracked.get("mode") == "online" and not marker:
        return "tracked online: already in W&B"
    if marker.get("epochs", 0) >= len(rows) and (not final or marker.get("summary") == _digest(summary)):
        return "up to date"
    identity = {
        "project": resolve_project(project or tracked.get("project")),
        "entity": entity or tracked.get("entity"),
        "group": tracked.get("group"),
        "name": tracked.get("name") or config.name,
        "tags": tracked.get("tags") or run_tags(config),
        "job_type": tracked.get("job_type") or "train",
    }
    wandb_id = marker.get("wandb_id") or summary.get("wandb_id") or secrets.token_hex(6)
    wandb_config = {**config.to_dict(), "run_id": run_dir.run_id, **(tracked.get("extra_config") or {})}
    run, _ = open_run(
        mode,
        identity,
        wandb_config,
        wandb_id,
        Path(folder or run_dir.path.parent.parent),
        fallback=False,
        timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
    )
    new = rows[marker.get("epochs", 0) :]
    try:
        for row in new:
            run.log(row)
        if final:
            if log_model and summary.get("status") == RunStatus.FINISHED and run_dir.best.exists():
                log_best_model(run, run_dir, summary)
            run.summary.update(final_summary(summary))
    finally:
        run.finish(exit_code=0 if not final or summary.get("status") in (RunStatus.FINISHED, RunStatus.PRUNED) else 1)
    write_json(
        marker_path,
        {
            "wandb_id": wandb_id,
            "project": identity["project"],
            "epochs": len(rows),
            "summary": _digest(summary) if final else None,
        },
    )
    return f"{len(new)} epochs" + (f", summary ({summary.get('status')})" if final else ", still running")
