"""The callable a Slurm job array runs: :func:`~suite.experiments.launch.train_cells`, requeued by submitit.

Why a ``submitit.helpers.Checkpointable``: Slurm sends the pre-limit signal (``--signal``, SIGUSR2
unless ``SUBMITIT_PREEMPT_SIGNAL`` says otherwise) before a task's time limit. The runs stop at a
safe point (:mod:`suite.engine.signals`), and submitit's own handler then calls
:meth:`SlurmTask.checkpoint` and requeues the task, which resumes every run from its last complete
epoch: the same final metrics as an uninterrupted run. SIGTERM (``scontrol requeue``, preemption,
``scancel``) stops the runs the same way; the task then exits without a result, and Slurm requeues
it or ends it as it decided.

A task that keeps being stopped without finishing a new epoch would loop forever: every stop
without progress is counted in the run folder (``requeues.json``, tied to this submission), and
after :data:`NO_PROGRESS_LIMIT` in a row the run fails with one line instead of training again.
"""

from __future__ import annotations

import signal
import uuid

from submitit.helpers import Checkpointable

from ..engine import signals
from ..store import RunDir, read_json, write_json, write_summary
from ..store.status import RunStatus

NO_PROGRESS_LIMIT = 3  # stops in a row without a new epoch before a run is failed
REQUEUE_MAX = 1000  # submitit's own count of timeouts (3 by default) must not end a run that progresses


class SlurmTask(Checkpointable):
    """``SlurmTask()(configs, options, sweep, threads, share, paths)`` trains ``configs`` as ``train_cells`` does.

    ``submission`` names one launch of the sweep: requeues keep it (a resubmission pickles this
    object), a new ``suite sweep`` makes a new one, so counts of an earlier launch do not count.
    submitit's own ``checkpoint()`` is the resubmission: this task with the same arguments; the
    runs' checkpoints hold the training state.
    """

    def __init__(self, submission: str | None = None):
        self.submission = submission or uuid.uuid4().hex

    def __call__(self, configs, options, sweep, threads=None, share="processes", paths=()) -> list[dict]:
        from .launch import train_cells

        refused = {c.run_id: stalled_line(RunDir(options.results_dir, c.run_id), self.submission) for c in configs}
        todo = [c for c in configs if refused[c.run_id] is None]
        for config in configs:
            if refused[config.run_id] is not None:
                fail_run(RunDir(options.results_dir, config.run_id), refused[config.run_id])
        before = {c.run_id: epochs_done(RunDir(options.results_dir, c.run_id)) for c in todo}
        preempt = preempt_signal()
        submitit_handler = signal.getsignal(preempt)
        with signals.stopping_on_signals():
            outcomes = iter(train_cells(todo, options, sweep, threads, share, paths) if todo else [])
            stopped_by = signals.requested()
        results = [
            {"status": "failed", "reason": refused[c.run_id]} if refused[c.run_id] else next(outcomes) for c in configs
        ]
        if stopped_by is None:
            return results
        for config, outcome in zip(configs, results):
            if outcome["status"] == "interrupted":
                run = RunDir(options.results_dir, config.run_id)
                count_stop(run, self.submission, progressed=epochs_done(run) > before.get(config.run_id, 0))
        if stopped_by == preempt and callable(submitit_handler):
            submitit_handler(stopped_by, None)  # submitit: self.checkpoint(), requeue, exit
        raise SystemExit(128 + stopped_by)  # no result: Slurm requeues the task or ends it


def preempt_signal() -> int:
    """The signal submitit asks Slurm for before a time limit (SIGUSR2 by default)."""
    from submitit.core.job_environment import JobEnvironment

    return JobEnvironment._usr_sig()


def epochs_done(run: RunDir) -> int:
    return int((run.read_summary() or {}).get("epochs_done") or 0)


def stops_without_progress(run: RunDir, submission: str) -> int:
    """Stops in a row without a new epoch during ``submission`` (0 for another submission's count)."""
    if not run.requeues.exists():
        return 0
    record = read_json(run.requeues)
    return int(record.get("without_progress", 0)) if record.get("submission") == submission else 0


def count_stop(run: RunDir, submission: str, progressed: bool) -> int:
    """Record one stop of ``run``; returns the stops in a row without progress."""
    count = 0 if progressed else stops_without_progress(run, submission) + 1
    write_json(run.requeues, {"submission": submission, "without_progress": count, "epochs_done": epochs_done(run)})
    return count


def stalled_line(run: RunDir, submission: str) -> str | None:
    """Why ``run`` must not train again in this submission, or None."""
    count = stops_without_progress(run, submission)
    if count < NO_PROGRESS_LIMIT:
        return None
    return (
        f"stopped {count} times in a row by the scheduler without finishing a new epoch (after epoch "
        f"{epochs_done(run)}); give it a longer --time, then relaunch the sweep to resume it"
    )


def fail_run(run: RunDir, line: str) -> None:
    """Record ``run`` as failed with ``line``, under its lock."""
    with run.lock():
        record = run.read_summary() or {"run_id": run.run_id}
        record.update(status=RunStatus.FAILED.value, error=line)
        write_summary(run.summary, record)
