"""Tests for ``suite tune``: Optuna studies whose trials are real (tiny) runs.

Every trial trains small_cnn on 256 real Fashion-MNIST points for a few epochs on the CPU.
Covered: pruning and resuming, failed runs, two worker processes on a journal file and on
PostgreSQL (``SUITE_TEST_POSTGRES_URL``, e.g. from ``.ci/postgres.sh``), a worker killed
mid-trial, spec parsing and password redaction.
"""

from __future__ import annotations

import os

os.environ.setdefault("SUITE_WANDB", "disabled")

import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

import optuna  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from suite import cli  # noqa: E402
from suite.config import RunOptions  # noqa: E402
from suite.errors import SuiteError  # noqa: E402
from suite.experiments.tune import best_params, load_spec, open_study, redact, run_study  # noqa: E402
from suite.store.atomic import read_json, read_jsonl
from suite.store.run_dir import RunDir  # noqa: E402

TINY = {
    "method": "fast_bat",
    "dataset": "fashion_mnist",
    "arch": "small_cnn",
    "eps": 32,
    "epochs": 2,
    "train_points": 256,
    "val_points": 64,
    "test_points": 64,
    "aa_points": 0,
    "co_points": 0,
    "pgd_steps": 3,
    "pgd_restarts": 1,
    "val_pgd_steps": 2,
    "batch_size": 64,
}


def write_spec(tmp_path: Path, name: str = "smoke", base: dict | None = None, **spec) -> Path:
    """A tiny study spec on disk: TPE (random while under 10 trials), no pruner unless given."""
    data = {
        "name": name,
        "base": {**TINY, **(base or {})},
        "search": {"lmbda": [0.01, 1000]},
        "sampler": {"name": "tpe", "seed": 0},
        "pruner": "none",
        "n_trials": 2,
        **spec,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def options(tmp_path: Path) -> RunOptions:
    return RunOptions(results_dir=tmp_path / "results", progress=False, wandb="disabled")


def trials(study: optuna.Study) -> list:
    return study.get_trials(deepcopy=False)


def states(study: optuna.Study) -> list[str]:
    return [t.state.name for t in trials(study)]


# -- studies -------------------------------------------------------------------------------
def test_study_completes_prunes_resumes_and_exports(tmp_path, capsys):
    spec = write_spec(tmp_path)
    opts = options(tmp_path)
    study = run_study(spec, opts)
    assert states(study) == ["COMPLETE", "COMPLETE"]
    first = [(t.number, t.params, t.values) for t in trials(study)]
    assert first[0][1] != first[1][1]
    for t in trials(study):  # the objective is the early-stopped epoch's validation robust accuracy
        assert t.values[0] == max(t.intermediate_values.values())
        assert sorted(t.intermediate_values) == [1, 2]
        assert read_json(RunDir(opts.results_dir, t.user_attrs["run_id"]).summary)["status"] == "finished"

    # resume with a larger target and a pruner no trial can pass: trials are added, none lost
    code = cli.main(
        [
            "tune",
            str(spec),
            "--results-dir",
            str(opts.results_dir),
            "--quiet",
            "--wandb",
            "disabled",
            "--n-trials",
            "3",
            "--set",
            "pruner={name: threshold, lower: 101}",
        ]
    )
    assert code == 0
    study = open_study(load_spec(spec), None, opts.results_dir, create=False)
    assert states(study) == ["COMPLETE", "COMPLETE", "PRUNED"]
    assert [(t.number, t.params, t.values) for t in trials(study)[:2]] == first
    assert len({t.params["lmbda"] for t in trials(study)}) == 3  # a resumed sampler draws anew
    pruned = trials(study)[2]
    assert list(pruned.intermediate_values) == [1]  # stopped after its first epoch
    summary = read_json(RunDir(opts.results_dir, pruned.user_attrs["run_id"]).summary)
    assert summary["status"] == "pruned" and summary["epochs_done"] == 1 and "Optuna" in summary["error"]

    # the same target again runs nothing
    assert len(trials(run_study(spec, opts, n_trials=3))) == 3

    frame = pd.read_csv(opts.results_dir / "studies" / "smoke.csv")
    assert list(frame["state"]) == ["COMPLETE", "COMPLETE", "PRUNED"]
    assert {"trial", "lmbda", "ll_step", "val_robust_acc", "sa", "ra_pgd", "run_id"} <= set(frame.columns)
    assert frame["ll_step"].eq(2000.0).all()  # the method's default at eps > 8
    assert frame["ra_pgd"].notna().tolist() == [True, True, False]
    assert frame["val_robust_acc"].notna().all()  # pruned: the best reached before pruning

    best = max(trials(study)[:2], key=lambda t: t.values[0])
    assert best_params(spec, results_dir=opts.results_dir) == best.params
    capsys.readouterr()
    assert cli.main(["tune", str(spec), "--results-dir", str(opts.results_dir), "--show"]) == 0
    out = capsys.readouterr().out
    assert f"best: trial {best.number}" in out and "PRUNED" in out and best.user_attrs["run_id"] in out


def test_failed_run_fails_its_trial_and_the_study_goes_on(tmp_path):
    spec = write_spec(tmp_path, base={"batch_size": 512})  # more than the 256 training points
    study = run_study(spec, options(tmp_path), n_trials=2)
    assert states(study) == ["FAIL", "FAIL"]
    assert all("batch size 512 exceeds" in t.user_attrs["error"] for t in trials(study))
    with pytest.raises(SuiteError, match="no complete trial"):
        best_params(spec, results_dir=tmp_path / "results")


def test_resuming_with_other_settings_is_refused(tmp_path):
    spec = write_spec(tmp_path)
    open_study(load_spec(spec), None, tmp_path, create=True)
    with pytest.raises(SuiteError, match="base differ"):
        open_study(load_spec(spec, ["epochs=3"]), None, tmp_path, create=True)
    open_study(load_spec(spec, ["epochs=3", "name=other"]), None, tmp_path, create=True)


def check_two_workers(tmp_path: Path, storage: str | None, name: str) -> None:
    spec = write_spec(tmp_path, name=name, n_trials=4)
    study = run_study(spec, options(tmp_path), storage=storage, workers=2)
    done = trials(study)
    assert [t.number for t in done] == [0, 1, 2, 3]
    assert states(study) == ["COMPLETE"] * 4
    assert len({t.params["lmbda"] for t in done}) == 4  # workers draw different parameters
    assert len({t.user_attrs["run_id"] for t in done}) == 4
    assert all("heartbeat" in t.system_attrs or storage for t in done)  # the journal's own heartbeat ran
    assert len(pd.read_csv(tmp_path / "results" / "studies" / f"{name}.csv")) == 4


def test_two_workers_share_a_journal_study(tmp_path):
    check_two_workers(tmp_path, None, "journal2")


@pytest.mark.skipif(
    not os.environ.get("SUITE_TEST_POSTGRES_URL"),
    reason="set SUITE_TEST_POSTGRES_URL to a PostgreSQL URL (e.g. $(.ci/postgres.sh)) to run this",
)
def test_two_workers_share_a_postgres_study(tmp_path, capsys, monkeypatch):
    url, name = os.environ["SUITE_TEST_POSTGRES_URL"], f"pg_{uuid.uuid4().hex[:8]}"
    check_two_workers(tmp_path, url, name)
    argv = ["suite", "tune", str(tmp_path / f"{name}.yaml"), "--storage", url, "--show"]
    monkeypatch.setattr(sys, "argv", list(argv))
    assert cli.main(argv[1:] + ["--results-dir", str(tmp_path / "results")]) == 0
    password = urlsplit(url).password
    out = capsys.readouterr()
    assert "PostgreSQL" not in out.err and "***@" in out.out
    if password:  # never printed, nor left in the command line that W&B records
        assert password not in out.out + out.err + " ".join(sys.argv)


def test_killed_worker_trial_fails_and_is_retried(tmp_path, capsys):
    spec = write_spec(
        tmp_path, base={"epochs": 6}, n_trials=1, heartbeat={"interval": 1, "grace_period": 3, "max_retry": 1}
    )
    results = tmp_path / "results"
    env = {"OMP_NUM_THREADS": "1", **os.environ, "SUITE_WANDB": "disabled"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "suite.cli",
            "tune",
            str(spec),
            "--results-dir",
            str(results),
            "--quiet",
            "--wandb",
            "disabled",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline, running = time.time() + 180, None
        while running is None and time.time() < deadline and proc.poll() is None:
            time.sleep(0.3)
            try:
                live = open_study(load_spec(spec), None, results, create=False).get_trials(states=(TrialState.RUNNING,))
            except SuiteError:
                continue  # the study does not exist yet
            if (
                live
                and "run_id" in live[0].user_attrs
                and read_jsonl(RunDir(results, live[0].user_attrs["run_id"]).metrics)
            ):
                running = live[0]  # at least one epoch done
        assert running is not None, "the worker never got a trial past its first epoch"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()

    study = open_study(load_spec(spec), None, results, create=False)
    assert states(study) == ["RUNNING"]  # nobody has noticed yet
    time.sleep(4)  # past the grace period
    capsys.readouterr()
    study = run_study(spec, options(tmp_path))  # a new worker carries on
    assert "resuming after epoch" in capsys.readouterr().out  # the retry resumes the killed run
    first, retry = trials(study)
    assert first.state == TrialState.FAIL
    assert retry.state == TrialState.COMPLETE and retry.params == first.params
    assert retry.system_attrs["failed_trial"] == first.number
    summary = read_json(RunDir(results, retry.user_attrs["run_id"]).summary)
    assert summary["status"] == "finished" and summary["epochs_done"] == 6
    assert sorted(retry.intermediate_values) == [1, 2, 3, 4, 5, 6]
    assert retry.user_attrs["run_id"] == first.user_attrs["run_id"]


# -- specs and secrets -----------------------------------------------------------------------
def test_spec_overrides_and_coupled_step(tmp_path):
    spec = load_spec(
        write_spec(tmp_path), ["epochs=5", "lmbda=[0.1, 10]", "coupled=true", "pruner.name=median", "n_trials=7"]
    )
    assert spec.base["epochs"] == 5 and spec.n_trials == 7 and spec.coupled
    assert spec.search == {"lmbda": {"low": 0.1, "high": 10.0, "log": True}}
    assert spec.pruner == {"name": "median"}
    params = spec.suggest(optuna.trial.FixedTrial({"lmbda": 5.0}))
    assert params == {"lmbda": 5.0, "ll_step": 51.0}  # a = 1/lambda, in /255
    config = spec.run_config(params).resolved()
    assert config.epochs == 5 and config.hparams == {"lmbda": 5.0, "ll_step": 51.0, "implicit": "exact"}

    assert load_spec(write_spec(tmp_path), ["search.ll_step={low: 100, high: 9000, log: false}"]).search["ll_step"] == {
        "low": 100.0,
        "high": 9000.0,
        "log": False,
    }
    with pytest.raises(SuiteError, match="both set in base and searched"):
        load_spec(write_spec(tmp_path), ["base.lmbda=3"])
    with pytest.raises(SuiteError, match="has no hyperparameter steps"):
        load_spec(write_spec(tmp_path, search={"steps": [1, 10]}))
    with pytest.raises(SuiteError, match="multi-objective"):
        load_spec(write_spec(tmp_path, objective=["val_robust_acc", "val_clean_acc"], pruner="median"))
    multi = load_spec(write_spec(tmp_path, objective=["val_robust_acc", "val_clean_acc"], pruner=None))
    assert multi.directions == ["maximize", "maximize"] and multi.pruner == {"name": "none"}


def test_multi_objective_study(tmp_path, capsys):
    spec = write_spec(
        tmp_path,
        base={"epochs": 1},
        n_trials=1,
        objective=["val_robust_acc", "val_clean_acc"],
        enqueue=[{"lmbda": 10.0}],
    )
    study = run_study(spec, options(tmp_path))
    (trial,) = trials(study)
    assert trial.params == {"lmbda": 10.0}  # the enqueued trial
    assert trial.state == TrialState.COMPLETE and not trial.intermediate_values  # no pruning here
    assert trial.values == [trial.user_attrs["val_robust_acc"], trial.user_attrs["val_clean_acc"]]
    assert best_params(spec, results_dir=tmp_path / "results") == trial.params
    assert cli.main(["tune", str(spec), "--results-dir", str(tmp_path / "results"), "--show"]) == 0
    assert "val_clean_acc=" in capsys.readouterr().out


@pytest.mark.parametrize("path", sorted(Path(__file__).resolve().parents[2].glob("sweeps/lambda_*.yaml")))
def test_shipped_specs_are_valid(path):
    spec = load_spec(path)
    assert spec.name == path.stem and "lmbda" in spec.search and spec.base["method"] == "fast_bat"


def test_redact_hides_passwords():
    assert redact("postgresql://suite:s3cr%40t@db:5432/optuna") == "postgresql://suite:***@db:5432/optuna"
    assert redact("postgresql+psycopg2://u:p/w@h/db?ssl=1") == "postgresql+psycopg2://u:***@h/db?ssl=1"
    assert redact("postgresql://h/db?user=u&password=pw&x=1") == "postgresql://h/db?user=u&password=***&x=1"
    text = "OperationalError: could not parse mysql://root:hunter2@10.0.0.1/x"
    assert "hunter2" not in redact(text) and "root:***@10.0.0.1" in redact(text)
    for unchanged in ("postgresql://suite@db/optuna", "sqlite:///results/studies/a.db", "results/a.journal", None):
        assert redact(unchanged) == unchanged


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--n-trials", "-3"], "--n-trials must be at least 1, got -3"),
        (["--n-trials", "0"], "--n-trials must be at least 1, got 0"),
        (["--workers", "0"], "--workers must be at least 1, got 0"),
        (["--set", "n_trials=-2"], "n_trials must be at least 1, got -2"),
    ],
)
def test_bad_trial_and_worker_counts_are_refused_before_anything_is_written(tmp_path, capsys, flags, message):
    spec = write_spec(tmp_path)
    results = tmp_path / "results"
    assert cli.main(["tune", str(spec), "--results-dir", str(results), "--quiet", "--wandb", "disabled", *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not results.exists()


def test_show_of_a_missing_study_writes_nothing(tmp_path, capsys):
    spec = write_spec(tmp_path)
    results = tmp_path / "results"
    assert cli.main(["tune", str(spec), "--results-dir", str(results), "--show"]) == 2
    err = capsys.readouterr().err
    assert "no study 'smoke'" in err and "suite tune" in err and err.count("\n") == 1
    assert not results.exists()


def test_a_password_with_an_at_sign_is_hidden_whole(tmp_path, capsys):
    url = "postgresql://user:s@cret@db-host:5432/optuna"
    assert redact(url) == "postgresql://user:***@db-host:5432/optuna"
    assert (
        cli.main(
            ["tune", str(write_spec(tmp_path)), "--results-dir", str(tmp_path / "results"), "--storage", url, "--show"]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "cret" not in err and "%40" in err and err.count("\n") == 1


def test_a_missing_database_driver_names_the_package(tmp_path, capsys):
    import importlib.util

    if importlib.util.find_spec("MySQLdb"):
        pytest.skip("the MySQL driver is installed")
    assert (
        cli.main(
            [
                "tune",
                str(write_spec(tmp_path)),
                "--results-dir",
                str(tmp_path / "results"),
                "--storage",
                "mysql://suite:pw@127.0.0.1:1/optuna",
                "--show",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "pip install mysqlclient" in err and "pw" not in err and err.count("\n") == 1
