"""The Slurm array task is a submitit Checkpointable: at the pre-limit signal its runs stop at a safe
point, submitit's own handler checkpoints and requeues it, and the requeued task resumes them to the
result of an uninterrupted run. A run stopped again and again without a new epoch fails with one line.

No cluster is needed: submitit's real job-side signal handling runs in this process, with the
environment Slurm gives an array task and a stand-in ``scontrol`` that records the requeue."""

from __future__ import annotations

import dataclasses
import os
import signal
import stat
import threading
import time

import pytest
from submitit.core.job_environment import JobEnvironment
from submitit.core.utils import DelayedSubmission

from suite.config import RunConfig, RunOptions
from suite.engine.trainer import execute
from suite.experiments import slurm_task
from suite.experiments.slurm_task import NO_PROGRESS_LIMIT, SlurmTask, count_stop, stalled_line
from suite.store.atomic import read_jsonl, write_json
from suite.store.run_dir import RunDir
from tests.conftest import TINY


def options(results) -> RunOptions:
    return RunOptions(results_dir=results, device="cpu", download=False, progress=False, wandb="disabled")


@pytest.fixture
def array_task(tmp_path, monkeypatch):
    """This process as Slurm's array task 4242_0 under submitit; ``scontrol`` calls land in a file."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scontrol = bin_dir / "scontrol"
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> "{tmp_path / "scontrol.log"}"\n')
    scontrol.chmod(scontrol.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    folder = tmp_path / "submitit"
    folder.mkdir()
    env = {
        "SUBMITIT_EXECUTOR": "slurm",
        "SUBMITIT_FOLDER": str(folder),
        "SLURM_JOB_ID": "4243",
        "SLURM_ARRAY_JOB_ID": "4242",
        "SLURM_ARRAY_TASK_ID": "0",
        "SLURM_NTASKS": "1",
        "SLURM_JOB_NUM_NODES": "1",
        "SLURM_NODEID": "0",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_JOB_NODELIST": "localhost",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGCONT, signal.SIGUSR2)}
    yield tmp_path / "scontrol.log"
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def start_as_submitit_does(delayed: DelayedSubmission):
    """What submitit's process_job does before calling the function: its signal handlers."""
    env = JobEnvironment()
    assert env.job_id == "4242_0"
    env._handle_signals(env.paths, delayed)
    return env.paths


def signal_after_first_epoch(run: RunDir, sig: int) -> threading.Thread:
    def send():
        deadline = time.monotonic() + 600
        while not (run.metrics.exists() and read_jsonl(run.metrics)) and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), sig)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def test_checkpoint_resubmits_the_same_task_with_the_same_arguments(tmp_path):
    task = SlurmTask()
    args = ([RunConfig(**TINY)], options(tmp_path), "tiny", 2, "packed")
    again = task.checkpoint(*args)
    assert isinstance(again, DelayedSubmission)
    assert again.function is task and again.function.submission == task.submission
    assert again.args == args and again.kwargs == {}


def test_the_pre_limit_signal_requeues_the_task_and_it_resumes_to_the_same_result(array_task, tmp_path):
    config = dataclasses.replace(RunConfig(**TINY), epochs=3, train_points=1024)
    want = execute(config, options(tmp_path / "whole"))
    results = tmp_path / "results"
    run = RunDir(results, want["run_id"])
    task = SlurmTask()
    delayed = DelayedSubmission(task, [config], options(results), "tiny", 1, "processes")
    delayed.set_timeout(60, 1000)
    paths = start_as_submitit_does(delayed)

    sender = signal_after_first_epoch(run, signal.SIGUSR2)
    with pytest.raises(SystemExit):  # submitit's handler requeues, then exits
        delayed.result()
    sender.join()
    assert array_task.read_text().split() == ["requeue", "4242_0"]
    stopped = run.read_summary()
    assert stopped["status"] == "interrupted" and "stopped by SIGUSR2" in stopped["error"]
    assert 1 <= stopped["epochs_done"] < 3

    requeued = DelayedSubmission.load(paths.submitted_pickle)  # what Slurm runs next
    assert isinstance(requeued.function, SlurmTask) and requeued.function.submission == task.submission
    assert requeued.args[0] == [config] and requeued.args[2:] == ("tiny", 1, "processes")
    start_as_submitit_does(requeued)
    assert requeued.result() == [{"status": "done", "reason": None}]
    got = run.read_summary()
    assert got["status"] == "finished" and (got["best"], got["last"]) == (want["best"], want["last"])
    strip = lambda rows: [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in rows]  # noqa: E731
    assert strip(read_jsonl(run.metrics)) == strip(read_jsonl(RunDir(tmp_path / "whole", want["run_id"]).metrics))


def test_sigterm_stops_the_task_without_a_result_for_slurm_to_requeue(array_task, tmp_path):
    """``scontrol requeue``, preemption or ``scancel``: Slurm sends SIGTERM and decides what follows;
    the task stops its runs at a safe point and exits without writing a result (which would end the
    sweep's wait for it)."""
    config = dataclasses.replace(RunConfig(**TINY), epochs=3, train_points=1024)
    results = tmp_path / "results"
    run = RunDir(results, config.resolved().run_id)
    delayed = DelayedSubmission(SlurmTask(), [config], options(results), "tiny", 1, "processes")
    delayed.set_timeout(60, 1000)
    paths = start_as_submitit_does(delayed)
    sender = signal_after_first_epoch(run, signal.SIGTERM)
    with pytest.raises(SystemExit) as exit_:
        delayed.result()
    sender.join()
    assert exit_.value.code == 128 + signal.SIGTERM
    assert not array_task.exists()  # submitit did not requeue: Slurm does
    assert not paths.result_pickle.exists()
    assert run.read_summary()["status"] == "interrupted"


def test_a_run_stopped_again_and_again_without_a_new_epoch_fails_with_one_line(tmp_path):
    config = RunConfig(**TINY).resolved()
    results = tmp_path / "results"
    run = RunDir(results, config.run_id)
    run.path.mkdir(parents=True)
    write_json(run.summary, {"run_id": config.run_id, "status": "interrupted", "epochs_done": 1})
    task = SlurmTask()
    assert count_stop(run, task.submission, progressed=True) == 0
    for n in range(1, NO_PROGRESS_LIMIT + 1):
        assert stalled_line(run, task.submission) is None
        assert count_stop(run, task.submission, progressed=False) == n
    line = stalled_line(run, task.submission)
    assert line == (
        f"stopped {NO_PROGRESS_LIMIT} times in a row by the scheduler without finishing a new epoch (after "
        "epoch 1); give it a longer --time, then relaunch the sweep to resume it"
    )
    assert stalled_line(run, SlurmTask().submission) is None  # a new launch of the sweep starts afresh

    outcomes = task([config], options(results), "tiny")  # trains nothing
    assert outcomes == [{"status": "failed", "reason": line}]
    summary = run.read_summary()
    assert summary["status"] == "failed" and summary["error"] == line and summary["epochs_done"] == 1
    assert count_stop(run, task.submission, progressed=True) == 0  # a new epoch resets the count


def test_the_sweep_submits_the_checkpointable_task(tmp_path, fake_slurm):
    from suite.experiments.launch import run_sweep
    from suite.experiments.sweep import load_spec
    from tests.experiments.test_sweep import tiny_spec

    spec = load_spec(tiny_spec(tmp_path, "method: [standard]\n"))
    run_sweep(spec, options(tmp_path / "results"), executor="slurm", slurm={"time": 5}, wait=False)
    folder = tmp_path / "results" / "sweeps" / "tiny" / "submitit"
    submitted = DelayedSubmission.load(next(folder.glob("*_submitted.pkl")))
    assert isinstance(submitted.function, SlurmTask) and submitted._timeout_countdown == slurm_task.REQUEUE_MAX
    script = next(folder.glob("*_submission.sh")).read_text()
    assert "#SBATCH --signal=USR2@" in script  # the pre-limit signal submitit handles


def test_a_job_that_left_no_result_reports_a_stopped_run_as_interrupted(tmp_path):
    """A task that exited at a signal writes no result (Slurm decides what follows); if Slurm ends it
    there, the sweep reports what the run's record says: interrupted, with the signal."""
    from suite.experiments.launch import _outcomes

    configs = [RunConfig(**TINY).resolved(), dataclasses.replace(RunConfig(**TINY), seed=1).resolved()]
    stopped = RunDir(tmp_path, configs[0].run_id)
    stopped.path.mkdir(parents=True)
    line = "stopped by SIGTERM after 1 of 2 epochs; rerun the same command to resume from there"
    write_json(stopped.summary, {"run_id": configs[0].run_id, "status": "interrupted", "error": line})

    class Cancelled:
        job_id = "4242_0"
        paths = type("Paths", (), {"stderr": "4242_0_log.err"})()

        def result(self):
            raise RuntimeError("Job 4242_0 has no result: CANCELLED")

    got = _outcomes(Cancelled(), configs, options(tmp_path))
    assert got[0] == {"status": "interrupted", "reason": line}
    assert got[1]["status"] == "failed" and got[1]["reason"].startswith("job 4242_0 died: Job 4242_0 has no result")
