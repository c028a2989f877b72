"""Tests for durable run records: resume after a kill, skipping, corrupt checkpoints, failures,
run identity, atomic writes and the table of runs (``suite runs``).

Training runs are tiny Fashion-MNIST runs on the CPU, where training is deterministic: a
resumed run must reproduce an uninterrupted one to float tolerance.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from suite import cli
from suite.config import RunConfig, RunOptions
from suite.engine.callbacks import Callback, RunPruned
from suite.engine.trainer import RunData, execute
from suite.errors import SuiteError
from suite.store.atomic import atomic_write_bytes, load_checkpoint, read_jsonl, save_checkpoint, write_json
from suite.store.run_dir import RunDir, iter_run_dirs
from suite.store.runs_table import runs_dataframe

TIMEOUT = 600  # seconds; generous, the machine may be shared
CONFIG_FLAGS = (
    "method",
    "dataset",
    "arch",
    "eps",
    "seed",
    "epochs",
    "batch_size",
    "train_points",
    "val_points",
    "test_points",
    "val_pgd_steps",
    "pgd_steps",
    "pgd_restarts",
    "aa_points",
    "co_points",
)


# ----------------------------------------------------------------- helpers


def run_flags(config: RunConfig, results: Path, *extra: str) -> list[str]:
    """``suite run`` arguments for ``config`` (no hyperparameter overrides) writing under ``results``."""
    flags = [
        "run",
        "--results-dir",
        str(results),
        "--data-dir",
        str(results.parent / "data"),
        "--device",
        "cpu",
        "--no-download",
        "--quiet",
        "--wandb",
        "disabled",
        *extra,
    ]
    for name in CONFIG_FLAGS:
        flags += [f"--{name.replace('_', '-')}", str(getattr(config, name))]
    return flags


def suite_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "suite.cli", *args]


def copy_results(results: Path, tmp_path: Path) -> Path:
    target = tmp_path / "results"
    shutil.copytree(results, target)
    return target


def assert_same_history(got: list[dict], want: list[dict]) -> None:
    """Per-epoch rows equal to float tolerance (wall-clock seconds excepted)."""
    assert [row["epoch"] for row in got] == [row["epoch"] for row in want]
    for g, w in zip(got, want):
        assert set(g) == set(w)
        for key in set(w) - {"epoch_seconds"}:
            assert g[key] == pytest.approx(w[key], rel=1e-5, abs=1e-6), (w["epoch"], key)


def assert_same_results(got: dict, want: dict) -> None:
    """Summaries with the same final test metrics of the early-stopped and the last model."""
    assert got["status"] == want["status"] == "finished"
    assert got["error"] is None
    assert (got["best_epoch"], got["epochs_done"]) == (want["best_epoch"], want["epochs_done"])
    for model in ("best", "last"):
        assert got[model] == pytest.approx(want[model], rel=1e-5, abs=1e-6), model


def assert_clean_records(results: Path) -> None:
    """No temporary file left behind and every JSON record parses."""
    assert list(results.rglob("*.tmp")) == []
    for path in results.rglob("*.json"):
        json.loads(path.read_text())
    for path in results.rglob("*.jsonl"):
        read_jsonl(path)


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def mark_interrupted(run: RunDir) -> None:
    """Make a finished run look like one killed before its end (what SIGKILL leaves)."""
    summary = run.read_summary()
    summary["status"] = "running"
    write_json(run.summary, summary)


class RaiseAt(Callback):
    """Raises ``error`` at the end of epoch ``epoch`` (0-based); remembers the final record."""

    def __init__(self, epoch: int, error: BaseException):
        self.epoch, self.error, self.final = epoch, error, None

    def on_epoch_end(self, epoch: int, metrics: dict) -> None:
        if epoch == self.epoch:
            raise self.error

    def on_end(self, record: dict) -> None:
        self.final = dict(record)


# ----------------------------------------------------------------- resume after a kill


def test_killed_run_resumes_to_the_same_result(tiny_config, tmp_path):
    """SIGKILL in epoch 2 of 3, rerun the same command: identical to an uninterrupted run."""
    config = dataclasses.replace(tiny_config, epochs=3, train_points=1024)
    run_id = config.resolved().run_id
    killed, whole = tmp_path / "killed" / "results", tmp_path / "whole" / "results"
    baseline = subprocess.Popen(
        suite_command(*run_flags(config, whole)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    victim = subprocess.Popen(
        suite_command(*run_flags(config, killed)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        run = RunDir(killed, run_id)
        deadline = time.monotonic() + TIMEOUT
        while not (run.metrics.exists() and read_jsonl(run.metrics)):
            assert victim.poll() is None, victim.communicate()
            assert time.monotonic() < deadline, "the first epoch never finished"
            time.sleep(0.02)
        time.sleep(read_jsonl(run.metrics)[0]["epoch_seconds"] / 3)  # into epoch 2's training
        assert victim.poll() is None, "the run ended before it could be killed"
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=60)
        assert run.read_summary()["status"] == "running"  # what a killed run leaves
        assert 1 <= len(read_jsonl(run.metrics)) < 3

        resumed = subprocess.run(
            suite_command(*run_flags(config, killed)), capture_output=True, text=True, timeout=TIMEOUT
        )
        assert resumed.returncode == 0, resumed.stderr
        match = re.search(rf"{run_id}: resuming after epoch (\d) of 3", resumed.stdout)
        assert match and 1 <= int(match.group(1)) <= 2, resumed.stdout
        _, err = baseline.communicate(timeout=TIMEOUT)
        assert baseline.returncode == 0, err
    finally:
        for process in (victim, baseline):
            if process.poll() is None:
                process.kill()
                process.communicate()

    want = RunDir(whole, run_id)
    assert_same_history(read_jsonl(run.metrics), read_jsonl(want.metrics))
    assert [row["epoch"] for row in read_jsonl(run.metrics)] == [1, 2, 3]
    assert_same_results(run.read_summary(), want.read_summary())
    assert load_checkpoint(run.last)["epoch"] == 2
    assert_clean_records(killed.parent)


def test_finished_run_is_skipped_unless_forced(finished_tiny_run, tmp_path, capsys):
    config, results, summary = finished_tiny_run
    results = copy_results(results, tmp_path)
    run = RunDir(results, summary["run_id"])
    files = [run.metrics, run.summary, run.config, run.last, run.best]
    before = [path.stat().st_mtime_ns for path in files]

    start = time.perf_counter()
    assert cli.main(run_flags(config, results)) == 0
    elapsed = time.perf_counter() - start
    out = capsys.readouterr().out
    assert f"{run.run_id}: already finished; skipped (use --force to train it again)" in out
    assert [path.stat().st_mtime_ns for path in files] == before
    assert elapsed < 10, "a finished run must return without loading data or training"

    assert cli.main(run_flags(config, results, "--force")) == 0
    assert "already finished" not in capsys.readouterr().out
    assert run.metrics.stat().st_mtime_ns != before[0]
    assert_same_history(read_jsonl(run.metrics), read_jsonl(RunDir(finished_tiny_run[1], run.run_id).metrics))
    assert_same_results(run.read_summary(), summary)


def test_run_finished_meanwhile_by_another_process_is_not_retrained(
    finished_tiny_run, tiny_options, monkeypatch, capsys
):
    """Another worker finishes the run while this one loads its data: nothing is redone."""
    config, results, summary = finished_tiny_run
    load = RunData.load

    def load_while_another_process_finishes(*args):
        data = load(*args)
        shutil.copytree(results, tiny_options.results_dir)
        return data

    monkeypatch.setattr(RunData, "load", load_while_another_process_finishes)
    run = RunDir(tiny_options.results_dir, summary["run_id"])
    assert execute(config, tiny_options) == summary
    assert "already finished" in capsys.readouterr().out
    assert run.metrics.stat().st_mtime_ns == RunDir(results, run.run_id).metrics.stat().st_mtime_ns


# ----------------------------------------------------------------- corrupt checkpoints


def test_truncated_checkpoint_without_fallback_is_a_one_line_error(finished_tiny_run, tmp_path, capsys):
    config, results, summary = finished_tiny_run
    results = copy_results(results, tmp_path)
    run = RunDir(results, summary["run_id"])
    mark_interrupted(run)
    truncate(run.last)
    run.last_prev.unlink()

    assert cli.main(run_flags(config, results)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert f"checkpoint {run.last} is corrupt or truncated" in err
    assert "Traceback" not in err


def test_truncated_checkpoint_falls_back_to_the_previous_one(finished_tiny_run, tmp_path, capsys):
    """A bad ``last.pt`` (epoch 2) resumes from ``last.prev.pt`` (epoch 1) and retrains epoch 2."""
    config, results, summary = finished_tiny_run
    original = read_jsonl(RunDir(results, summary["run_id"]).metrics)
    results = copy_results(results, tmp_path)
    run = RunDir(results, summary["run_id"])
    mark_interrupted(run)
    truncate(run.last)

    assert cli.main(run_flags(config, results)) == 0
    out, err = capsys.readouterr()
    assert f"warning: checkpoint {run.last} is corrupt or truncated" in err  # warnings go to stderr
    assert "resuming from the previous checkpoint last.prev.pt" in err
    assert f"{run.run_id}: resuming after epoch 1 of 2" in out
    assert_same_history(read_jsonl(run.metrics), original)
    assert_same_results(run.read_summary(), summary)
    assert load_checkpoint(run.last)["epoch"] == 1


class Payload:
    """Unpickling this object opens (creates) ``marker``: stands for arbitrary code."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def test_checkpoints_load_weights_only(tmp_path):
    marker, path = tmp_path / "code-ran", tmp_path / "evil.pt"
    torch.save({"model": {"w": torch.zeros(2)}, "payload": Payload(marker)}, path)
    with pytest.raises(SuiteError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert str(path) in message and "weights_only=True" in message and "\n" not in message
    assert not marker.exists()
    torch.load(path, weights_only=False)  # the payload is live: unrestricted loading runs it
    assert marker.exists()

    save_checkpoint(path, {"model": {"w": torch.ones(2)}, "history": [{"epoch": 1, "x": 0.5}], "best": {"epoch": None}})
    state = load_checkpoint(path)
    assert torch.equal(state["model"]["w"], torch.ones(2)) and state["history"][0]["x"] == 0.5


# ----------------------------------------------------------------- failed and pruned runs


def test_failing_run_is_recorded_and_resumes(finished_tiny_run, tiny_config, tiny_options):
    callback = RaiseAt(0, RuntimeError("boom"))
    with pytest.raises(RuntimeError, match="boom"):
        execute(tiny_config, tiny_options, [callback])
    run = RunDir(tiny_options.results_dir, tiny_config.resolved().run_id)
    summary = run.read_summary()
    assert summary["status"] == "failed" and "boom" in summary["error"] and summary["finished"]
    assert callback.final["status"] == "failed"
    assert [row["epoch"] for row in read_jsonl(run.metrics)] == [1]
    assert "RuntimeError: boom" in (run.path / "error.txt").read_text()

    # rerunning resumes after the recorded epoch and ends like a run that never failed
    _, results, finished = finished_tiny_run
    summary = execute(tiny_config, tiny_options)
    assert summary["status"] == "finished" and summary["error"] is None
    assert run.read_summary()["status"] == "finished" and not (run.path / "error.txt").exists()
    assert_same_history(read_jsonl(run.metrics), read_jsonl(RunDir(results, run.run_id).metrics))
    assert_same_results(summary, finished)


def test_a_kill_between_the_last_and_the_best_checkpoint_is_repaired(
    finished_tiny_run, tiny_config, tiny_options, monkeypatch
):
    import suite.engine.trainer

    real = suite.engine.trainer.save_checkpoint
    _, results, finished = finished_tiny_run
    best_epoch = finished["best_epoch"] - 1  # the last improvement: nothing later rewrites best.pt

    def killed_before_best(path, state):
        if path.name == "best.pt" and state["epoch"] == best_epoch:
            raise KeyboardInterrupt  # its last.pt is written, its best.pt is not
        real(path, state)

    monkeypatch.setattr(suite.engine.trainer, "save_checkpoint", killed_before_best)
    with pytest.raises(KeyboardInterrupt):
        execute(tiny_config, tiny_options)
    run = RunDir(tiny_options.results_dir, tiny_config.resolved().run_id)
    assert load_checkpoint(run.last)["epoch"] == best_epoch
    assert not run.best.exists() or load_checkpoint(run.best)["epoch"] != best_epoch
    monkeypatch.setattr(suite.engine.trainer, "save_checkpoint", real)

    summary = execute(tiny_config, tiny_options)
    assert_same_results(summary, finished)
    best = load_checkpoint(run.best)
    assert best["epoch"] + 1 == summary["best_epoch"]
    want = load_checkpoint(RunDir(results, run.run_id).best)
    for name, tensor in want["model"].items():
        torch.testing.assert_close(best["model"][name], tensor, rtol=1e-5, atol=1e-6)


def test_pruned_run_is_recorded(tiny_config, tiny_options):
    callback = RaiseAt(0, RunPruned("hopeless at epoch 1"))
    summary = execute(tiny_config, tiny_options, [callback])
    assert summary["status"] == "pruned" and summary["error"] == "hopeless at epoch 1"
    assert callback.final["status"] == "pruned"
    run = RunDir(tiny_options.results_dir, summary["run_id"])
    assert run.read_summary()["status"] == "pruned"
    assert len(read_jsonl(run.metrics)) == 1 and "best" not in summary


def test_ctrl_c_is_recorded_as_interrupted(tiny_config, tiny_options):
    with pytest.raises(KeyboardInterrupt):
        execute(tiny_config, tiny_options, [RaiseAt(0, KeyboardInterrupt())])
    run = RunDir(tiny_options.results_dir, tiny_config.resolved().run_id)
    assert run.read_summary()["status"] == "interrupted" and len(read_jsonl(run.metrics)) == 1


# ----------------------------------------------------------------- atomic writes


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_atomic_write_keeps_old_content_on_failure(tmp_path, monkeypatch, failing):
    path = tmp_path / "summary.json"
    atomic_write_bytes(path, b"old")

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, failing, fail)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(path, b"new content")
    monkeypatch.undo()
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_checkpoint_failing_midway_keeps_old_checkpoint(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"epoch": 1, "w": torch.ones(3)})
    with pytest.raises(Exception):  # the lambda cannot be pickled: torch.save fails after writing tensors
        save_checkpoint(path, {"w": torch.zeros(1000), "epoch": 2, "bad": lambda: None})
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_lock_removes_leftovers_of_a_killed_writer(tmp_path):
    run = RunDir(tmp_path, "some-run")
    run.path.mkdir(parents=True)
    leftover = run.path / ".last.pt.x1y2.tmp"
    leftover.write_bytes(b"half a checkpoint")
    write_json(run.summary, {"status": "running"})
    with run.lock():
        assert not leftover.exists()
        with pytest.raises(SuiteError, match="being trained by another process"):
            with RunDir(tmp_path, "some-run").lock():
                pass
    assert run.read_summary() == {"status": "running"}


def test_a_running_run_nobody_holds_is_listed_as_interrupted(finished_tiny_run, tmp_path):
    """A killed run's summary still says 'running'; the listing tells it from a live one by its lock."""
    _, results, _ = finished_tiny_run
    results = copy_results(results, tmp_path)
    run = next(iter_run_dirs(results))
    summary = run.read_summary()
    write_json(run.summary, {**summary, "status": "running"})
    assert list(runs_dataframe(results)["status"]) == ["interrupted"]
    with run.lock():  # a live trainer holds the lock
        assert run.is_held()
        assert list(runs_dataframe(results)["status"]) == ["running"]
    assert not run.is_held()


# ----------------------------------------------------------------- the table of runs


@pytest.fixture
def three_runs(finished_tiny_run, tiny_config, tmp_path):
    """Runs with different method, eps and status: finished, pruned and failed."""
    _, results, _ = finished_tiny_run
    results = copy_results(results, tmp_path)
    options = RunOptions(
        results_dir=results, data_dir=tmp_path / "data", device="cpu", download=False, progress=False, wandb="disabled"
    )
    standard = dataclasses.replace(tiny_config, method="standard", epochs=1)
    execute(standard, options, [RaiseAt(0, RunPruned("hopeless"))])
    with pytest.raises(RuntimeError):
        execute(dataclasses.replace(standard, eps=4), options, [RaiseAt(0, RuntimeError("boom"))])
    return results


def test_runs_dataframe_lists_and_filters(three_runs, finished_tiny_run):
    frame = runs_dataframe(three_runs)
    assert sorted(zip(frame["method"], frame["eps"], frame["status"])) == [
        ("fast_bat", 8.0, "finished"),
        ("standard", 4.0, "failed"),
        ("standard", 8.0, "pruned"),
    ]
    finished = frame[frame["status"] == "finished"].iloc[0]
    summary = finished_tiny_run[2]
    assert (finished["sa"], finished["ra_pgd"], finished["last_ra_pgd"]) == (
        summary["best"]["sa"],
        summary["best"]["ra_pgd"],
        summary["last"]["ra_pgd"],
    )
    assert (finished["epochs_done"], finished["epochs"], finished["hp_lmbda"]) == (2, 2, 10.0)
    failed = frame[frame["status"] == "failed"].iloc[0]
    assert "boom" in failed["error"] and pd.isna(failed["sa"])

    assert list(runs_dataframe(three_runs, method="standard")["eps"].sort_values()) == [4.0, 8.0]
    assert list(runs_dataframe(three_runs, eps=[4.0])["status"]) == ["failed"]
    assert list(runs_dataframe(three_runs, status=["finished", "pruned"], eps=8)["method"].sort_values()) == [
        "fast_bat",
        "standard",
    ]
    assert runs_dataframe(three_runs, method="pgd").empty
    with pytest.raises(SuiteError, match="cannot filter on 'colour'"):
        runs_dataframe(three_runs, colour="red")


def test_suite_runs_table_and_csv(three_runs, capsys):
    assert cli.main(["runs", "--results-dir", str(three_runs)]) == 0
    table = capsys.readouterr().out
    lines = table.splitlines()
    assert lines[0].split()[:4] == ["run", "status", "epochs", "SA"]
    assert sum(line.startswith(("fast_bat-", "standard-")) for line in lines) == 3
    assert "3 runs: " in table and ": RuntimeError: boom" in table

    assert cli.main(["runs", "--results-dir", str(three_runs), "--method", "standard", "--status", "failed"]) == 0
    table = capsys.readouterr().out
    assert "1 runs: 1 failed" in table and "fast_bat-" not in table

    assert cli.main(["runs", "--results-dir", str(three_runs), "--csv", "--eps", "8"]) == 0
    parsed = pd.read_csv(io.StringIO(capsys.readouterr().out))
    want = runs_dataframe(three_runs, eps=8)
    assert list(parsed.columns) == list(want.columns)
    assert list(parsed["run_id"]) == list(want["run_id"])
    for column in want.columns:
        got, expected = parsed[column].tolist(), want[column].tolist()
        for g, e in zip(got, expected):
            if e is None or (isinstance(e, float) and np.isnan(e)):
                assert pd.isna(g), column
            else:
                assert g == pytest.approx(e) if isinstance(e, float) else g == e, column

    assert cli.main(["runs", "--results-dir", str(three_runs.parent / "nowhere")]) == 0
    assert "no runs under" in capsys.readouterr().out


# ----------------------------------------------------------------- damaged records


@pytest.fixture
def best_is_first_epoch(monkeypatch):
    """Validation robust accuracy falls every epoch: the early-stopped model is epoch 1's."""
    from suite.engine.trainer import Trainer

    real, calls = Trainer.validate, []

    def falling(self):
        row = real(self)
        calls.append(1)
        return {**row, "val_robust_acc": 50.0 - len(calls)}

    monkeypatch.setattr(Trainer, "validate", falling)


@pytest.mark.parametrize("prev_survives", [True, False])
def test_a_damaged_best_checkpoint_is_rebuilt_or_reported(
    best_is_first_epoch, tiny_config, tiny_options, prev_survives, capsys
):
    """Killed after epoch 2 of 3 (best: epoch 1) with best.pt truncated: the rerun finishes, evaluating
    what it can: the early-stopped model rebuilt from last.prev.pt, or marked unavailable."""
    config = dataclasses.replace(tiny_config, epochs=3)
    with pytest.raises(KeyboardInterrupt):
        execute(config, tiny_options, [RaiseAt(1, KeyboardInterrupt())])
    run = RunDir(tiny_options.results_dir, config.resolved().run_id)
    truncate(run.best)
    if not prev_survives:
        run.last_prev.unlink()
    summary = execute(config, tiny_options)
    err = capsys.readouterr().err  # warnings go to stderr
    assert summary["status"] == "finished" and summary["best_epoch"] == 1 and summary["error"] is None
    assert summary["last"]["sa"] is not None and summary["last"]["ra_pgd"] is not None
    assert f"{run.best} is corrupt or truncated" in err
    if prev_survives:
        assert "rebuilt it from last.prev.pt" in err and load_checkpoint(run.best)["epoch"] == 0
        assert summary["best"]["sa"] is not None and "unavailable" not in summary["best"]
    else:
        assert summary["best"]["sa"] is None and "cannot be evaluated" in summary["best"]["unavailable"]
        frame = runs_dataframe(tiny_options.results_dir)
        assert list(frame["status"]) == ["finished"] and pd.isna(frame["sa"][0])


def test_damaged_records_are_skipped_by_listings_and_repaired_by_a_rerun(three_runs, finished_tiny_run, capsys):
    config, _, summary = finished_tiny_run
    runs = {r.run_id: r for r in iter_run_dirs(three_runs)}
    finished = runs.pop(summary["run_id"])
    pruned, failed = sorted(runs.values(), key=lambda r: r.read_summary()["status"], reverse=True)
    truncate(failed.summary)
    pruned.config.write_text("{ garbage")
    assert cli.main(["runs", "--results-dir", str(three_runs), "--csv"]) == 0
    out, err = capsys.readouterr()
    assert list(pd.read_csv(io.StringIO(out))["run_id"]) == [finished.run_id]
    assert f"skipping the unreadable run record {failed.path}" in err
    assert f"skipping the unreadable run record {pruned.path}" in err

    # a finished run's garbage config.json, metrics.jsonl line, or truncated summary: a rerun repairs it
    original = read_jsonl(finished.metrics)
    for damage in ("config", "metrics", "summary"):
        if damage == "config":
            finished.config.write_text("not json")
        elif damage == "metrics":
            finished.metrics.write_text(finished.metrics.read_text() + "{oops\n")
            assert list(runs_dataframe(three_runs)["status"]) == ["incomplete"]
            assert f"{finished.metrics} line 3 is not valid JSON" in capsys.readouterr().err
        else:
            truncate(finished.summary)
        assert cli.main(run_flags(config, three_runs)) == 0
        out = capsys.readouterr().out
        assert "already finished" not in out and "resuming after epoch 2 of 2" in out, (damage, out)
        assert_same_history(read_jsonl(finished.metrics), original)
        assert_same_results(finished.read_summary(), summary)
        json.loads(finished.config.read_text())

    truncate(finished.summary)  # --force always gets out
    assert cli.main(run_flags(config, three_runs, "--force")) == 0
    assert_same_results(finished.read_summary(), summary)


def test_missing_epochs_mark_a_run_incomplete_until_rebuilt(finished_tiny_run, tmp_path, capsys):
    """metrics.jsonl must hold every epoch the summary counts; reports never draw from fewer."""
    from suite.report.sources import load_local

    config, results, summary = finished_tiny_run
    results = copy_results(results, tmp_path)
    run = RunDir(results, summary["run_id"])
    original = read_jsonl(run.metrics)
    write_jsonl_rows = original[1:]
    run.metrics.write_text("".join(json.dumps(row) + "\n" for row in write_jsonl_rows))
    frame = runs_dataframe(results)
    assert list(frame["status"]) == ["incomplete"] and "holds 1 of the 2 epochs" in frame["error"][0]
    assert "left out of reports" in capsys.readouterr().err
    runset = load_local(results)
    assert runset.finished.empty and runset.histories == {}

    assert cli.main(run_flags(config, results)) == 0  # rebuilt from the checkpoint
    assert_same_history(read_jsonl(run.metrics), original)
    assert list(runs_dataframe(results)["status"]) == ["finished"]


# ----------------------------------------------------------------- file-system trouble: one line, exit 2


@pytest.mark.parametrize("where", ["file", "under_file", "proc"])
def test_an_unusable_results_folder_is_one_line(tiny_config, tmp_path, where, capsys):
    (tmp_path / "a-file").write_text("")
    results = {
        "file": tmp_path / "a-file",
        "under_file": tmp_path / "a-file" / "results",
        "proc": Path("/proc/suite-results"),
    }[where]
    assert cli.main(run_flags(tiny_config, results)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert str(results) in err
    assert (tmp_path / "a-file").read_text() == ""


@pytest.mark.parametrize("errno_name", ["ENOSPC", "EROFS"])
def test_a_full_or_read_only_disk_is_one_line_and_the_run_resumes(
    finished_tiny_run, tiny_config, tmp_path, monkeypatch, capsys, errno_name
):
    import errno

    import suite.engine.trainer
    import suite.store.run_dir

    real = suite.store.run_dir.save_checkpoint

    def fails_in_epoch_2(path, state):
        if state["epoch"] == 1:
            raise OSError(getattr(errno, errno_name), os.strerror(getattr(errno, errno_name)), str(path))
        real(path, state)

    results = tmp_path / "results"
    for module in (suite.store.run_dir, suite.engine.trainer):
        monkeypatch.setattr(module, "save_checkpoint", fails_in_epoch_2)
    assert cli.main(run_flags(tiny_config, results)) == 2
    err = capsys.readouterr().err
    run = RunDir(results, tiny_config.resolved().run_id)
    assert err.startswith("error: ") and err.count("\n") == 1 and f"{run.last}: " in err
    assert ("disk is full" if errno_name == "ENOSPC" else "read-only") in err
    assert run.read_summary()["status"] == "failed" and load_checkpoint(run.last_prev)["epoch"] == 0
    monkeypatch.undo()
    assert cli.main(run_flags(tiny_config, results)) == 0
    assert "resuming after epoch 1 of 2" in capsys.readouterr().out
    assert_same_results(run.read_summary(), finished_tiny_run[2])


def test_a_damaged_curve_of_an_unfinished_run_is_left_out_of_the_report(three_runs, capsys):
    from suite.report.sources import load_local

    failed = next(r for r in iter_run_dirs(three_runs) if r.read_summary()["status"] == "failed")
    failed.metrics.write_text(failed.metrics.read_text() + "garbage\n")
    runset = load_local(three_runs)
    assert len(runset.runs) == 3 and failed.run_id not in runset.histories and len(runset.histories) == 2
    assert f"{failed.metrics} line 2 is not valid JSON" in capsys.readouterr().err


class FullDisk(io.RawIOBase):
    """A file on a disk with room for ``room`` more bytes: a longer write fails as the kernel's
    would, with ``errno_name`` (ENOSPC: the disk is full; EACCES: write permission withdrawn)."""

    def __init__(self, handle, room: int, errno_name: str):
        self.handle, self.room, self.errno_name = handle, room, errno_name

    def writable(self):
        return True

    def write(self, data):
        import errno

        if len(data) > self.room:
            code = getattr(errno, self.errno_name)
            raise OSError(code, os.strerror(code))
        self.room -= len(data)
        return self.handle.write(data)


@pytest.mark.parametrize("errno_name, words", [("ENOSPC", "No space left on device"), ("EACCES", "Permission denied")])
def test_a_disk_failing_inside_torch_save_records_its_real_cause(
    finished_tiny_run, tiny_config, tmp_path, monkeypatch, capsys, errno_name, words
):
    import suite.store.atomic

    real_save = torch.save

    def save_on_a_failing_disk(state, handle):  # torch's own writer, on a disk that fails in epoch 2
        if state.get("epoch") == 1 and "optimizer" in state:
            return real_save(state, FullDisk(handle, 1000, errno_name))
        return real_save(state, handle)

    monkeypatch.setattr(suite.store.atomic.torch, "save", save_on_a_failing_disk)
    results = tmp_path / "results"
    assert cli.main(run_flags(tiny_config, results)) == 2
    err = capsys.readouterr().err
    run = RunDir(results, tiny_config.resolved().run_id)
    assert err.startswith("error: ") and err.count("\n") == 1 and "enforce fail" not in err
    assert f"{run.last}: {words}" in err
    summary = run.read_summary()
    assert summary["status"] == "failed" and "enforce fail" not in summary["error"]
    assert summary["error"].startswith(
        f"{'PermissionError' if errno_name == 'EACCES' else 'OSError'}: {run.last}: {words}"
    )
    assert load_checkpoint(run.last_prev)["epoch"] == 0 and not list(run.path.glob(".*.tmp"))
    monkeypatch.undo()
    assert cli.main(run_flags(tiny_config, results)) == 0  # and the run resumes from its last epoch
    assert "resuming after epoch 1 of 2" in capsys.readouterr().out
    assert_same_results(run.read_summary(), finished_tiny_run[2])


def test_error_line_finds_the_operating_system_error_in_the_chain(tmp_path):
    from suite.errors import error_line, os_error_in

    try:
        try:
            raise OSError(28, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")  # noqa: B904
    except RuntimeError as err:
        assert error_line(err).startswith("OSError: No space left on device (the disk is full")
    try:
        try:
            raise FileNotFoundError(2, "No such file")
        except FileNotFoundError:
            raise ValueError("unrelated") from None
    except ValueError as err:
        assert os_error_in(err) is None and error_line(err) == "ValueError: unrelated"
    assert error_line(SuiteError("bad input")) == "SuiteError: bad input"


# ----------------------------------------------------------------- symbolic links: refused, nothing written through them


@pytest.mark.parametrize("link", ["folder", "summary.json", "config.json", "metrics.jsonl", "last.pt", ".lock"])
def test_a_symlinked_run_folder_or_record_is_refused(finished_tiny_run, tmp_path, capsys, link):
    config, source, _ = finished_tiny_run
    results = Path(shutil.copytree(source, tmp_path / "results"))
    run = RunDir(results, config.resolved().run_id)
    elsewhere = tmp_path / "elsewhere"
    if link == "folder":
        shutil.move(run.path, elsewhere)
        run.path.symlink_to(elsewhere, target_is_directory=True)
        (elsewhere / ".keep.x1.tmp").write_text("not the suite's")
        target = elsewhere
    else:
        elsewhere.mkdir()
        target = elsewhere / link
        target.write_bytes(b"someone else's file")
        (run.path / link).unlink(missing_ok=True)
        (run.path / link).symlink_to(target)
    before = {p.name: p.read_bytes() for p in elsewhere.iterdir()}
    assert cli.main(run_flags(config, results, "--force")) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "is a symbolic link" in err and "refusing to write or delete through it" in err
    assert {p.name: p.read_bytes() for p in elsewhere.iterdir()} == before  # nothing written or deleted there


def test_the_atomic_writer_never_replaces_a_link(tmp_path):
    target = tmp_path / "target.json"
    target.write_text("kept")
    (tmp_path / "summary.json").symlink_to(target)
    with pytest.raises(SuiteError, match="is a symbolic link"):
        write_json(tmp_path / "summary.json", {"status": "running"})
    with pytest.raises(SuiteError, match="is a symbolic link"):
        save_checkpoint(tmp_path / "summary.json", {"epoch": 0})
    assert target.read_text() == "kept" and (tmp_path / "summary.json").is_symlink()


@pytest.mark.parametrize("run_id", ["../../etc", "a/b", "..", ""])
def test_a_run_id_is_one_folder_name(tmp_path, run_id):
    with pytest.raises(SuiteError, match="is not a run id"):
        RunDir(tmp_path, run_id)
