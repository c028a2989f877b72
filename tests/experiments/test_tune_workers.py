"""Several ``suite tune`` processes on one study, started together: real processes, tiny runs.

Each worker is its own ``suite tune`` command (as on several machines sharing a database),
on a fresh storage and then on one that already holds trials. The study must be created
once, every configuration trained once and counted once, and the study must stop at its
target: exactly ``n_trials`` finished trials, whatever the timing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from suite.experiments.tune import load_spec, open_study, run_study
from suite.experiments.tune.study import WorkerSampler
from suite.store.atomic import read_json, read_jsonl
from suite.store.run_dir import RunDir

from .test_tune import options, write_spec

WORKERS = 3


def start_workers(spec: Path, results: Path, storage: str | None, n_trials: int) -> list[subprocess.Popen]:
    command = [sys.executable, "-m", "suite.cli", "tune", str(spec), "--results-dir", str(results), "--quiet"]
    command += ["--wandb", "disabled", "--n-trials", str(n_trials)] + (["--storage", storage] if storage else [])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SUITE_WANDB": "disabled"}
    return [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(WORKERS)
    ]


def wait_all(procs: list[subprocess.Popen]) -> list[tuple[int, str]]:
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=600)
        out.append((proc.returncode, stdout + stderr))
    return out


def check_study(spec: Path, results: Path, storage: str | None, target: int) -> list:
    study = open_study(load_spec(spec), storage, results, create=False)
    trials = study.get_trials(deepcopy=False)
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == target, [(t.number, t.state.name, t.user_attrs.get("error")) for t in trials]
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    run_ids = [t.user_attrs["run_id"] for t in finished]
    assert len(set(run_ids)) == target  # one finished trial per configuration
    for t in trials:  # any other trial was refused before it trained: not needed, or a duplicate
        if t.state == TrialState.FAIL:
            assert t.user_attrs["error"].startswith("NotCounted: "), t.user_attrs
    for run_id in run_ids:  # each configuration trained once, start to end, by one worker
        run = RunDir(results, run_id)
        assert read_json(run.summary)["status"] == "finished"
        assert [row["epoch"] for row in read_jsonl(run.metrics)] == [1, 2]
    return finished


POSTGRES = pytest.param(
    "postgres",
    marks=pytest.mark.skipif(
        not os.environ.get("SUITE_TEST_POSTGRES_URL"),
        reason="set SUITE_TEST_POSTGRES_URL to a PostgreSQL URL (e.g. $(.ci/postgres.sh)) to run this",
    ),
)


@pytest.mark.parametrize("kind", ["sqlite", "journal", POSTGRES])
def test_three_tune_processes_started_together_share_one_study(tmp_path, kind):
    spec = write_spec(tmp_path, name=f"together_{kind}_{uuid.uuid4().hex[:8]}", n_trials=3)
    results = tmp_path / "results"
    storage = {"sqlite": f"sqlite:///{tmp_path / 'optuna.db'}", "journal": None}.get(kind)
    storage = os.environ.get("SUITE_TEST_POSTGRES_URL") if kind == "postgres" else storage

    outcomes = wait_all(start_workers(spec, results, storage, 3))  # a fresh storage: created once
    for code, output in outcomes:
        assert code == 0 and "Traceback" not in output, output[-3000:]
        assert "already exists" not in output and "UNIQUE constraint" not in output
    first = check_study(spec, results, storage, 3)
    assert len({t.params["lmbda"] for t in first}) == 3  # the workers draw from different streams

    outcomes = wait_all(start_workers(spec, results, storage, 4))  # one more, asked of three at once
    assert all(code == 0 for code, _ in outcomes), [output[-2000:] for _, output in outcomes]
    finished = check_study(spec, results, storage, 4)
    assert len(list((results / "runs").iterdir())) == 4  # no run beyond the target was trained
    assert [(t.number, t.params) for t in finished[:3]] == [(t.number, t.params) for t in first]


def test_each_worker_seeds_its_sampler_by_its_first_trial(tmp_path):
    """Seeded by the number of the worker's first trial that draws (an enqueued one does not):
    a single worker on a study holding k trials draws as a sampler seeded seed + k always did."""
    spec = load_spec(write_spec(tmp_path, sampler={"name": "random", "seed": 7}))
    study = optuna.create_study()
    drawn = []
    for first in (0, 5):
        sampler = WorkerSampler(spec)
        if first:  # an enqueued trial first: it fixes its parameters and leaves the seed alone
            enqueued = optuna.trial.create_trial(state=TrialState.RUNNING, system_attrs={"fixed_params": {"lmbda": 1}})
            enqueued.number = first - 1
            sampler.before_trial(study, enqueued)
            assert sampler.inner is None
        trial = optuna.trial.create_trial(state=TrialState.RUNNING)
        trial.number = first
        sampler.before_trial(study, trial)
        drawn.append(sampler.inner)
    reference = [optuna.samplers.RandomSampler(seed=7 + k) for k in (0, 5)]
    dist = optuna.distributions.FloatDistribution(0.01, 1000, log=True)
    probe = optuna.trial.create_trial(state=TrialState.RUNNING)
    values = [s.sample_independent(study, probe, "lmbda", dist) for s in drawn]
    assert values == [r.sample_independent(study, probe, "lmbda", dist) for r in reference]
    assert values[0] != values[1]


def test_a_trial_of_a_configuration_trained_before_is_not_counted_twice(tmp_path):
    spec_path = write_spec(tmp_path, name="twice", n_trials=2)
    spec, opts = load_spec(spec_path), options(tmp_path)
    study = open_study(spec, None, opts.results_dir, create=True)
    for _ in range(2):  # as two workers' enqueue might race: the same parameters twice
        study.enqueue_trial({"lmbda": 10.0})
    study = run_study(spec_path, opts)
    first, twin, other = study.get_trials(deepcopy=False)
    assert [t.state for t in (first, twin, other)] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    assert twin.user_attrs["duplicate_of"] == 0 and "trained and counted once" in twin.user_attrs["error"]
    assert other.params != first.params
    assert len(list((opts.results_dir / "runs").iterdir())) == 2


def test_a_run_held_outside_the_study_is_waited_for(tmp_path, monkeypatch, capsys):
    import threading

    import suite.experiments.tune.study as study_module

    monkeypatch.setattr(study_module, "LOCK_POLL_SECONDS", 0.2)
    spec_path = write_spec(tmp_path, name="held", n_trials=1, enqueue=[{"lmbda": 10.0}])
    spec, opts = load_spec(spec_path), options(tmp_path)
    run = RunDir(opts.results_dir, spec.run_config({"lmbda": 10.0}).resolved().run_id)
    held, release = threading.Event(), threading.Event()

    def outside_process():  # holds the run's lock (another flock on it), as a sweep training it would
        with run.lock():
            held.set()
            release.wait(timeout=60)

    holder = threading.Thread(target=outside_process)
    holder.start()
    held.wait(timeout=30)
    threading.Timer(3.0, release.set).start()
    try:
        study = run_study(spec_path, opts)
    finally:
        release.set()
        holder.join()
    (trial,) = study.get_trials(deepcopy=False)
    assert trial.state == TrialState.COMPLETE and trial.user_attrs["run_id"] == run.run_id
    assert f"run {run.run_id} is being trained elsewhere; waiting for it" in capsys.readouterr().out
    assert read_json(run.summary)["status"] == "finished"
