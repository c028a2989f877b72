"""Requeues on a real Slurm (the one-node cluster of ``.ci/slurm.sh``; skipped without it, as in
test_slurm.py): ``scontrol requeue`` of a running array task, and a ``--time`` shorter than the run.
Each ends with a finished run whose metrics equal an uninterrupted run's.

Slurm holds a requeued job until a BeginTime about two minutes later; the tests release it at once
(``scontrol update StartTime=now``), which changes when it starts, not what it does.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time

from suite.config import RunOptions
from suite.engine.trainer import execute
from suite.experiments.sweep import load_spec
from suite.store.atomic import read_jsonl
from suite.store.run_dir import RunDir
from tests.experiments.test_reproduce import RUN_FLAGS
from tests.experiments.test_slurm import pytestmark as pytestmark  # noqa: F401  (skip without a cluster)
from tests.experiments.test_sweep import tiny_spec

TIMEOUT = 600


def start_sweep(spec, results, *flags) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "suite.cli", "sweep", str(spec), "--executor", "slurm", "--gpus-per-job", "0"]
        + ["--cpus-per-job", "1", *map(str, flags), *RUN_FLAGS, "--results-dir", str(results)],
        cwd=spec.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def queue() -> list[tuple[str, str, str]]:
    out = subprocess.run(["squeue", "-h", "-o", "%i|%T|%r"], capture_output=True, text=True).stdout
    return [tuple(line.split("|")) for line in out.splitlines() if line.strip()]


class Releaser(threading.Thread):
    """Starts requeued jobs at once instead of after Slurm's BeginTime delay; counts them."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop, self.released = threading.Event(), []

    def run(self):
        while not self.stop.is_set():
            for job, state, reason in queue():
                if state == "PENDING" and reason == "BeginTime":
                    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], capture_output=True)
                    self.released.append(job)
            time.sleep(0.5)


def uninterrupted(config, root) -> tuple[dict, list[dict]]:
    results = root / "whole"
    options = RunOptions(results_dir=results, device="cpu", download=False, progress=False, wandb="disabled")
    summary = execute(config, options)
    return summary, read_jsonl(RunDir(results, summary["run_id"]).metrics)


def assert_same_run(run: RunDir, want: dict, want_rows: list[dict]) -> None:
    got = run.read_summary()
    assert got["status"] == "finished" and got["error"] is None
    assert (got["best"], got["last"], got["best_epoch"]) == (want["best"], want["last"], want["best_epoch"])
    strip = lambda rows: [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in rows]  # noqa: E731
    assert strip(read_jsonl(run.metrics)) == strip(want_rows)


def events(results) -> list[dict]:
    journal = results / "sweeps" / "tiny" / "journal.jsonl"
    return [json.loads(line) for line in journal.read_text().splitlines()]


def finish(sweep: subprocess.Popen, releaser: Releaser) -> tuple[str, str]:
    try:
        out, err = sweep.communicate(timeout=TIMEOUT)
    finally:
        releaser.stop.set()
        if sweep.poll() is None:
            sweep.kill()
            sweep.communicate()
    return out, err


def test_scontrol_requeue_of_a_running_task_resumes_it_to_the_same_result(tmp_path):
    """Slurm sends SIGTERM: the run stops at a safe point (interrupted), the task leaves no result,
    Slurm requeues it, and the requeued task resumes the run from its last complete epoch."""
    spec = tiny_spec(tmp_path, "method: [fast_at]\nepochs: [6]\ntrain_points: [1024]\n")
    (config,) = load_spec(spec).configs()
    results = tmp_path / "results"
    run = RunDir(results, config.run_id)
    releaser = Releaser()
    releaser.start()
    sweep = start_sweep(spec, results, "--time", 10)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (run.metrics.exists() and read_jsonl(run.metrics)):
            assert sweep.poll() is None, sweep.communicate()
            assert time.monotonic() < deadline, "the first epoch never finished"
            time.sleep(0.05)
        (job,) = [job for job, state, _ in queue() if state == "RUNNING"]
        subprocess.run(["scontrol", "requeue", job], check=True, capture_output=True)
    finally:
        out, err = finish(sweep, releaser)
    assert sweep.returncode == 0, out + err
    assert "sweep tiny: 1 done, 0 skipped, 0 failed" in out
    seen = [(e["event"], e["epochs_done"] if e["event"] == "start" else None) for e in events(results)]
    assert [name for name, _ in seen] == ["start", "interrupted", "start", "finished"], seen
    assert seen[2][1] >= 1  # the second start resumed from a complete epoch
    assert events(results)[1]["error"].startswith("stopped by SIGTERM after ")
    want, want_rows = uninterrupted(config, tmp_path)
    assert_same_run(run, want, want_rows)


def test_a_time_limit_shorter_than_the_run_requeues_it_until_it_finishes(tmp_path):
    """--time 2 (minutes) with the pre-limit signal 60 s before: SIGUSR2 stops the run, submitit
    checkpoints and requeues the task, and the run goes on from its last epoch to the end."""
    spec = tiny_spec(tmp_path, "method: [fast_at]\nepochs: [250]\ntrain_points: [512]\n")
    (config,) = load_spec(spec).configs()
    results = tmp_path / "results"
    releaser = Releaser()
    releaser.start()
    sweep = start_sweep(spec, results, "--time", 2, "--slurm", "signal_delay_s=60")
    try:
        want, want_rows = uninterrupted(config, tmp_path)  # meanwhile, in this process
    finally:
        out, err = finish(sweep, releaser)
    assert sweep.returncode == 0, out + err
    assert "sweep tiny: 1 done, 0 skipped, 0 failed" in out
    names = [e["event"] for e in events(results)]
    assert names[-1] == "finished" and "interrupted" in names, f"the run finished before its time limit: {names}"
    stops = [e["error"] for e in events(results) if e["event"] == "interrupted"]
    assert all(re.match(r"stopped by SIGUSR2 after \d+ of 250 epochs", line) for line in stops), stops
    logs = "".join(p.read_text() for p in (results / "sweeps" / "tiny" / "submitit").glob("*_log.*"))
    assert "this job is timed-out" in logs and "Requeued job" in logs  # submitit's own requeue
    assert_same_run(RunDir(results, config.run_id), want, want_rows)
    assert os.path.exists(RunDir(results, config.run_id).requeues)
