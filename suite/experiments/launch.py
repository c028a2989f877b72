"""Launching a sweep: its unfinished runs handed to submitit, locally or as one Slurm job array.

``run_sweep`` skips finished runs and hands the others to submitit: ``local`` (one process
per run, ``workers`` at a time, one GPU each when there are GPUs) or ``slurm`` (one job
array). The engine's per-run lock makes relaunching safe: a run trained by another
process at the same moment is reported as skipped, never trained twice at once. Every job is
handed the import paths of the sweep's plug-in methods (:mod:`suite.methods.plugins`), so a
fresh process finds a method the launcher found.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import socket
import sys
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..config import RunConfig, RunOptions
from ..engine import signals
from ..engine.callbacks import Callback
from ..errors import SuiteError, error_line
from .sharing import SHARES, default_sharing
from .slurm_task import REQUEUE_MAX, SlurmTask
from .sweep import SweepSpec

LOCAL_TIMEOUT_MIN = 7 * 24 * 60  # submitit's local default (2 minutes) would kill real runs
POLL_S = {"local": 0.5, "slurm": 10.0}
RETELL_S = 2.0  # after a stop signal, how often running local jobs are sent SIGTERM again


@dataclass
class SweepResult:
    """``done``: run ids trained to completion now; ``skipped``, ``failed`` and ``interrupted`` (stopped
    by a signal at a safe point, or never started because of one): (run id, reason)."""

    done: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    failed: list = field(default_factory=list)
    interrupted: list = field(default_factory=list)
    submitted: list = field(default_factory=list)  # job ids, when not waiting for them
    stopped_by: int | None = None  # the stop signal the launcher received, if any

    @property
    def exit_code(self) -> int:
        """128 + the stop signal when one stopped the sweep, 1 when a run failed, else 0."""
        return 128 + self.stopped_by if self.stopped_by else 1 if self.failed else 0

    def add(self, run_id: str, outcome: dict) -> None:
        status = outcome["status"]
        if status == "done":
            self.done.append(run_id)
        else:
            getattr(self, status).append((run_id, outcome["reason"]))

    def report(self) -> str:
        reasons = {}
        for _, reason in self.skipped:
            reasons[reason] = reasons.get(reason, 0) + 1
        detail = f" ({', '.join(f'{n} {r}' for r, n in reasons.items())})" if reasons else ""
        text = f"{len(self.done)} done, {len(self.skipped)} skipped{detail}, {len(self.failed)} failed"
        if self.interrupted:
            text += f", {len(self.interrupted)} interrupted"
        if self.stopped_by:
            text += f" (stopped by {signals.signal_name(self.stopped_by)}; relaunch the sweep to resume them)"
        if self.submitted:
            text += f", {len(self.submitted)} submitted (not waited for)"
        return text + "".join(f"\n  failed {run_id}: {error}" for run_id, error in self.failed)


class Journal(Callback):
    """Appends one line per training start and end to ``<results>/sweeps/<name>/journal.jsonl``."""

    def __init__(self, path: Path):
        self.path, self.run_id = Path(path), None

    def write(self, event: str, **extra) -> None:
        line = {
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "run_id": self.run_id,
            "event": event,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            **extra,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as handle:  # one short O_APPEND write: lines never interleave
            handle.write(json.dumps(line) + "\n")

    def on_start(self, run, config, record) -> None:
        self.run_id = run.run_id
        self.write("start", epochs_done=record.get("epochs_done", 0))

    def on_end(self, record) -> None:
        self.write(record.get("status", "unknown"), error=record.get("error"))


def sweep_dir(options: RunOptions, name: str) -> Path:
    return Path(options.results_dir) / "sweeps" / name


def train_cell(config: RunConfig, options: RunOptions, sweep: str, threads: int | None = None) -> dict:
    """The job function: train one run; returns {"status": done | skipped | failed | interrupted, "reason": ...}.

    The W&B group is the sweep's name (unless ``options.wandb_group`` says otherwise). Never
    raises for a failed run, so one failure never stops the sweep; the traceback goes to the
    job's log and to the run's ``error.txt``. A stop signal makes it ``interrupted`` (the handlers
    are installed here, first, in a cell's own process).
    """
    with signals.stopping_on_signals():
        return _train_cell(config, options, sweep, threads)


def _train_cell(config: RunConfig, options: RunOptions, sweep: str, threads: int | None) -> dict:
    from ..engine import execute
    from ..engine.reuse import reusable
    from ..store import RunDir, RunLocked
    from ..tracking import trackers

    if threads:
        import torch

        torch.set_num_threads(threads)
    journal = Journal(sweep_dir(options, sweep) / "journal.jsonl")
    try:
        if reusable(RunDir(options.results_dir, config.run_id), config.method, options):
            return {"status": "skipped", "reason": "finished"}  # inside: a method failing to resolve fails one run
        if signals.requested():  # a packed run whose thread starts after the stop
            raise signals.Stopped(signals.requested())
        tracking = trackers(
            options,
            group=options.wandb_group or sweep,
            tags=(f"sweep:{sweep}",),
            job_type="train",
            extra_config={"sweep": sweep},
        )
        summary = execute(config, options, [journal, *tracking])
    except RunLocked:
        return {"status": "skipped", "reason": "running elsewhere"}
    except signals.Stopped as stop:  # at a safe point: the record says interrupted, a relaunch resumes
        return {"status": "interrupted", "reason": f"stopped by {stop}"}
    except Exception as err:  # noqa: BLE001  (any failure of one run is reported, not raised)
        traceback.print_exc()
        return {"status": "failed", "reason": error_line(err)}
    if journal.run_id is None:  # never started: another process finished it meanwhile
        return {"status": "skipped", "reason": "finished"}
    if summary.get("status") != "finished":
        return {"status": "failed", "reason": summary.get("error") or f"status {summary.get('status')}"}
    return {"status": "done", "reason": None}


def train_cells(
    configs: list[RunConfig],
    options: RunOptions,
    sweep: str,
    threads: int | None = None,
    share: str = "processes",
    paths: tuple = (),
) -> list[dict]:
    """The job function of a group of cells sharing a GPU (a Slurm array task, a local packed job):
    train ``configs`` concurrently, one outcome each.

    ``share="processes"``: each cell is :func:`train_cell` in its own process (spawned: CUDA does not
    survive a fork), so one crashing cell (even a segfault) fails only itself. ``share="packed"``:
    every cell in this process, each in a thread on its own CUDA stream (``suite.engine.packed``);
    one failing cell still fails only itself, a crash of the process all of them (each resumes
    from its last epoch). One config runs in this process. ``paths``: ``sys.path`` entries the
    plug-in methods need (:func:`suite.methods.plugins.import_paths`); spawned cells inherit them.
    """
    from ..methods.plugins import add_import_paths

    add_import_paths(paths)
    with signals.stopping_on_signals():  # the job's main thread; packed runs' threads poll its flag
        if len(configs) == 1:
            return [train_cell(configs[0], options, sweep, threads)]
        if share == "packed":
            return _train_packed(configs, options, sweep, threads)
        return _train_in_processes(configs, options, sweep, threads)


def _train_in_processes(configs, options, sweep, threads) -> list[dict]:
    """One spawned process per cell; a stop signal this process receives is passed on to them (a
    scheduler may signal only the job's first process), and each stops at a safe point."""
    import multiprocessing
    from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait

    per_cell = max(1, threads // len(configs)) if threads else None
    outcomes = []
    for config in configs:  # a pool per cell: a crash breaks its own pool, never the other cells'
        pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        outcomes.append((pool, pool.submit(train_cell, config, options, sweep, per_cell)))
    passed_on = False
    while not all(future.done() for _, future in outcomes):
        wait([future for _, future in outcomes], timeout=POLL_S["local"], return_when=FIRST_EXCEPTION)
        if signals.requested() and not passed_on:
            passed_on = True
            for pool, _ in outcomes:
                for pid in list(getattr(pool, "_processes", None) or {}):
                    with contextlib.suppress(OSError):
                        os.kill(pid, signals.requested())
    results = []
    for pool, future in outcomes:
        try:
            results.append(future.result())
        except Exception as err:  # noqa: BLE001  (the cell's process died)
            results.append({"status": "failed", "reason": f"the run's process died: {type(err).__name__}: {err}"})
        pool.shutdown()
    return results


def _train_packed(configs, options, sweep, threads) -> list[dict]:
    import functools

    import torch

    from ..engine.device import pick_device
    from ..engine.packed import run_packed

    if threads:
        torch.set_num_threads(threads)
    outcomes = run_packed(
        [functools.partial(train_cell, config, options, sweep) for config in configs], pick_device(options.device)
    )
    return [o if isinstance(o, dict) else {"status": "failed", "reason": f"{type(o).__name__}: {o}"} for o in outcomes]


def default_runs_per_gpu(on_gpu: bool, cuda_graphs: bool) -> int:
    """Runs sharing one GPU by default (``suite.experiments.sharing.DEFAULTS``, with the measurements
    behind each entry; ``suite bench --gpu-check`` prints what its figures support)."""
    return default_sharing(on_gpu, cuda_graphs).runs_per_gpu


def pack_cells(configs: list[RunConfig], k: int, share: str) -> list[list[RunConfig]]:
    """The configs in groups of at most ``k`` that share a GPU. Packed groups hold only runs that may
    share a process, of one precision (``suite.engine.packed``); a run that may not is a group alone."""
    if share != "packed":
        return [configs[i : i + k] for i in range(0, len(configs), k)]
    from ..engine.packed import pack_key, packable

    groups, alone = {}, []
    for config in configs:
        if packable(config) is None:
            groups.setdefault(pack_key(config), []).append(config)
        else:
            alone.append([config])
    return [g[i : i + k] for g in groups.values() for i in range(0, len(g), k)] + alone


def visible_gpus() -> list[int]:
    """The GPU indices this process may use (honouring an integer CUDA_VISIBLE_DEVICES)."""
    import torch

    if not torch.cuda.is_available():
        return []
    mask = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")
    if all(part.strip().isdigit() for part in mask) and len(mask) == torch.cuda.device_count():
        return [int(part) for part in mask]
    return list(range(torch.cuda.device_count()))


def run_sweep(
    spec: SweepSpec,
    options: RunOptions,
    *,
    executor: str = "local",
    workers: int | None = None,
    slurm: dict | None = None,
    dry_run: bool = False,
    wait: bool = True,
    out=None,
    runs_per_gpu: int | None = None,
    share: str | None = None,
) -> SweepResult:
    """Launch the sweep's unfinished runs and (unless ``wait=False``) wait for them.

    ``workers``: local processes at a time (default: ``runs_per_gpu`` per visible GPU, else 1).
    ``runs_per_gpu``: runs sharing each GPU (default :func:`default_runs_per_gpu`); on Slurm,
    the grid cells each array task trains concurrently on its GPU(s). ``share``: how they share it,
    "processes" or "packed" (``suite.experiments.sharing``; default its table's).
    ``slurm``: submitit SlurmExecutor parameters (partition, time in minutes, gpus_per_node,
    cpus_per_task, array_parallelism, mem, account, qos, ...).
    """
    from ..engine.reuse import reusable
    from ..store import RunDir

    out = out or sys.stdout
    if executor not in ("local", "slurm"):
        raise SuiteError(f"unknown executor {executor!r}; use local or slurm")
    if share is not None and share not in SHARES:
        raise SuiteError(f"unknown share {share!r}; use {' or '.join(SHARES)}")
    result, todo = SweepResult(), []
    configs = spec.configs()
    for config in configs:
        if reusable(RunDir(options.results_dir, config.run_id), config.method, options):
            result.add(config.run_id, {"status": "skipped", "reason": "finished"})
        else:
            todo.append(config)
    print(
        f"sweep {spec.name}: {len(configs)} runs, {len(configs) - len(todo)} finished, {len(todo)} to run",
        file=out,
        flush=True,
    )
    if dry_run:
        for config in configs:
            print(
                f"  {config.run_id:60s} {dry_run_state(RunDir(options.results_dir, config.run_id), config, options)}",
                file=out,
            )
        return result
    if not todo:
        return result
    from ..data.prefetch import ensure_datasets

    ensure_datasets(todo, options.data_dir, options.download)  # here, once, before any job starts
    import submitit

    from ..methods.plugins import import_paths
    from .submitit_logging import print_each_line_once

    print_each_line_once()
    paths = tuple(import_paths(config.method for config in todo))  # where the jobs find the plug-ins
    # jobs may start elsewhere (a Slurm node, another working directory): give them absolute paths
    options = dataclasses.replace(
        options, results_dir=Path(options.results_dir).resolve(), data_dir=Path(options.data_dir).resolve()
    )
    folder = sweep_dir(options, spec.name) / "submitit"
    if executor == "local":
        gpus = [] if options.device == "cpu" else visible_gpus()
        default = default_sharing(bool(gpus), options.cuda_graphs)
        per_gpu, how = runs_per_gpu or default.runs_per_gpu, share or default.share
        workers = workers or max(1, len(gpus) * per_gpu)
        threads = None if gpus else max(1, (os.cpu_count() or 1) // workers)
        cells = pack_cells(todo, per_gpu, how) if how == "packed" else [[config] for config in todo]
        jobs = max(1, workers // per_gpu) if how == "packed" else workers  # job processes at a time
        pool = submitit.LocalExecutor(folder=folder)
        pool.update_parameters(timeout_min=LOCAL_TIMEOUT_MIN)
        _run_local(pool, cells, options, spec.name, jobs, gpus, threads, result, how, paths)
    else:
        params = {"job_name": f"sweep-{spec.name}", "nodes": 1, "ntasks_per_node": 1, **(slurm or {})}
        try:
            array = submitit.SlurmExecutor(folder=folder, max_num_timeout=REQUEUE_MAX)
        except RuntimeError as err:  # no srun on PATH
            raise SuiteError(f"--executor slurm needs the Slurm commands on PATH ({err})") from None
        try:
            array.update_parameters(**params)
        except ValueError as err:
            first = str(err).splitlines()[0]
            raise SuiteError(f"bad Slurm parameter: {first} (see submitit's SlurmExecutor)") from None
        threads = params.get("cpus_per_task")
        default = default_sharing(bool(params.get("gpus_per_node")) and options.device != "cpu", options.cuda_graphs)
        k, how = runs_per_gpu or default.runs_per_gpu, share or default.share
        cells = pack_cells(todo, k, how)
        n = len(cells)
        task = SlurmTask()  # requeued by submitit at the time limit (suite.experiments.slurm_task)
        try:
            jobs = array.map_array(task, cells, [options] * n, [spec.name] * n, [threads] * n, [how] * n, [paths] * n)
        except submitit.core.utils.FailedJobError as err:  # sbatch said no: an unreachable controller, a bad option
            raise SuiteError(f"Slurm refused the job array: {_sbatch_error(str(err))}") from None
        print(
            f"submitted job array {jobs[0].job_id.split('_')[0]} ({len(todo)} runs) of {n} task(s), up to {k} "
            f"runs at once each; logs in {folder}",
            file=out,
            flush=True,
        )
        if not wait:
            result.submitted = [job.job_id for job in jobs]
            return result
        _wait(
            dict(zip(jobs, cells)), result, POLL_S["slurm"], _progress(len(todo), spec.name, options.progress), options
        )
    return result


def _sbatch_error(stderr: str) -> str:
    """sbatch's reason in one line: its last ``error:``/``fatal:`` line, without the prefix."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    reasons = [line for line in lines if "error:" in line or "fatal:" in line] or lines or ["no reason given"]
    reason = re.sub(r"^(sbatch: )?(error|fatal): ", "", reasons[-1])
    return f"{reason} (check the cluster with `sinfo` and the --partition, --time and --slurm options)"


def dry_run_state(run, config: RunConfig, options: RunOptions) -> str:
    """A run's line in a dry run: done, stale (its method's code changed: trained again unless
    ``--accept-stale``), or to run, with the last status of an unfinished one."""
    from ..engine.reuse import code_state

    status = (run.read_summary() or {}).get("status")
    if status != "finished" or options.force:
        return f"to run (last: {status})" if status else "to run"
    state = code_state(run, config.method)
    if state == "stale":
        return (
            "stale: done with other method code (keeps its result with --accept-stale)"
            if options.accept_stale
            else "stale: method code changed since; trains again (--accept-stale keeps it)"
        )
    return "done (method code unknown: recorded before code hashes)" if state == "unknown" else "done"


def _outcomes(job, configs, options) -> list[dict]:
    """The job function's outcomes, one per config (:func:`_no_result` for a job that died)."""
    try:
        outcomes = job.result()
    except Exception as err:  # noqa: BLE001  (a crashed or cancelled job)
        last = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        return _no_result(configs, options, f"job {job.job_id} died: {last} (log: {job.paths.stderr})")
    return outcomes if isinstance(outcomes, list) else [outcomes] * len(configs)


def _no_result(configs, options, reason: str) -> list[dict]:
    """Outcomes of a job that left no result (it died, or Slurm ended it): interrupted where a stop
    signal stopped the run (its record says so, with the signal), else failed with ``reason``."""
    from ..store import RunDir

    outcomes = []
    for config in configs:
        record = RunDir(options.results_dir, config.run_id).read_summary() or {}
        stopped = record.get("status") == "interrupted"
        outcomes.append(
            {"status": "interrupted", "reason": record.get("error")}
            if stopped
            else {"status": "failed", "reason": reason}
        )
    return outcomes


def _progress(total: int, name: str, show: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"sweep {name}", unit="run", file=sys.stderr, dynamic_ncols=True, disable=not show)


def _record(bar, result, config, outcome) -> None:
    result.add(config.run_id, outcome)
    if outcome["status"] == "failed":
        bar.write(f"failed {config.run_id}: {outcome['reason']}")
    bar.set_postfix(done=len(result.done), skipped=len(result.skipped), failed=len(result.failed))
    bar.update()


def _gpu_parameters(slot: int, gpus: list[int], device: str) -> dict:
    """The GPUs a local job sees (its CUDA_VISIBLE_DEVICES): one per worker slot, round robin,
    unless the device names one (``cuda:N``): then every job sees them all; none on CPU."""
    if not gpus:
        return {"gpus_per_node": 0}
    if device.startswith("cuda:"):
        return {"gpus_per_node": len(gpus), "visible_gpus": gpus}
    return {"gpus_per_node": 1, "visible_gpus": [gpus[slot % len(gpus)]]}


def _run_local(pool, cells, options, name, workers, gpus, threads, result, share="processes", paths=()) -> None:
    """Keep ``workers`` job processes busy until every run is handled; each job trains one cell (a
    list of configs: one run, or with ``share="packed"`` several in one process).

    A stop signal (SIGTERM, SIGINT, SIGUSR1/2) to this process or its process group stops the
    sweep: nothing new starts, every running job is sent SIGTERM (submitit's controller passes it
    on to the job, whose runs stop at a safe point and are recorded as interrupted), and this waits
    for them. Controllers start with SIGINT ignored: a Ctrl-C would make one kill its job a second
    later, before the runs reach their safe point; the job itself handles SIGINT.
    """
    import signal

    queue, running, free = deque(cells), {}, list(range(workers))
    bar = _progress(sum(len(cell) for cell in cells), name, options.progress)
    told = None  # when the running jobs were last sent SIGTERM
    try:
        with signals.stopping_on_signals():
            while queue or running:
                while queue and free and not signals.requested():
                    slot, cell = free.pop(0), queue.popleft()
                    pool.update_parameters(**_gpu_parameters(slot, gpus, options.device))
                    with signals.ignoring(signal.SIGINT):
                        job = pool.submit(train_cells, cell, options, name, threads, share, paths)
                    running[job] = (cell, slot)
                if signals.requested() and told is None:
                    result.stopped_by = signals.requested()
                    bar.write(f"{signals.signal_name(result.stopped_by)}: stopping the running jobs at a safe point")
                    for cell in queue:
                        for config in cell:
                            result.add(config.run_id, {"status": "interrupted", "reason": "not started"})
                    queue.clear()
                if signals.requested() and (told is None or time.monotonic() - told > RETELL_S):
                    told = time.monotonic()  # again later: a job still starting up has not its handlers yet
                    for job in running:
                        _terminate(job)
                for job in [job for job in running if job.done()]:
                    cell, slot = running.pop(job)
                    free.append(slot)
                    for config, outcome in zip(cell, _outcomes(job, cell, options)):
                        _record(bar, result, config, outcome)
                time.sleep(POLL_S["local"])
    except KeyboardInterrupt:
        for job in running:
            job.cancel()
        raise
    finally:
        bar.close()


def _terminate(job) -> None:
    """SIGTERM to a local job's controller, which passes it on to the job's process."""
    import signal

    process = getattr(job, "_process", None)
    if process is not None and process.poll() is None:
        with contextlib.suppress(OSError):
            process.send_signal(signal.SIGTERM)


def _wait(jobs: dict, result, poll_s: float, bar, options) -> None:
    """Wait for already submitted Slurm jobs ({job: its configs}); Ctrl-C leaves them running.

    A job that Slurm says has ended (``suite.experiments.slurm_queue``) but that has left no
    result at two polls in a row (cancelled, killed at its time limit, its node lost) fails its
    runs: submitit, reading only ``sacct``, would wait for it forever on a cluster without accounting.
    """
    from .slurm_queue import GONE, ended

    pending, suspects = dict(jobs), set()
    try:
        while pending:
            for job in [job for job in pending if job.done()]:
                configs = pending.pop(job)
                for config, outcome in zip(configs, _outcomes(job, configs, options)):
                    _record(bar, result, config, outcome)
            states = ended([job.job_id for job in pending]) if pending else {}
            for job in [job for job in pending if job in suspects and job.job_id in states and not job.done()]:
                state = "no longer in squeue" if states[job.job_id] == GONE else f"state {states[job.job_id]}"
                reason = f"job {job.job_id} ended without a result ({state}; log: {job.paths.stderr})"
                configs = pending.pop(job)
                for config, outcome in zip(configs, _no_result(configs, options, reason)):
                    _record(bar, result, config, outcome)
            suspects = {job for job in pending if job.job_id in states}
            if pending:
                time.sleep(poll_s)
    except KeyboardInterrupt:
        bar.write("stopped waiting; the jobs keep running (rerun the sweep to see where they stand)")
        raise
    finally:
        bar.close()
