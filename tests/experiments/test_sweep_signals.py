"""A local sweep sent SIGTERM or SIGINT (to it, or to its process group as a terminal or a scheduler
sends it) stops every job at a safe point: no process trains on, each run is recorded as
interrupted, the sweep exits 128 + the signal, and a relaunch finishes them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from suite.experiments.sweep import load_spec
from suite.store.atomic import read_jsonl
from suite.store.run_dir import RunDir
from tests.experiments.test_reproduce import sweeps as sweeps  # noqa: F401  (the tiny smoke preset fixture)
from tests.experiments.test_sweep import tiny_spec

TIMEOUT = 600
GRID = "method: [standard, fast_at]\nepochs: [4]\ntrain_points: [1024]\n"


def sweep_command(spec, results) -> list[str]:
    return [
        sys.executable,
        "-m",
        "suite.cli",
        "sweep",
        str(spec),
        "--results-dir",
        str(results),
        "--workers",
        "2",
        "--device",
        "cpu",
        "--no-download",
        "--quiet",
        "--wandb",
        "disabled",
    ]


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


@pytest.mark.parametrize(
    "sig, to_group",
    [(signal.SIGTERM, True), (signal.SIGINT, True), (signal.SIGTERM, False)],
    ids=["TERM-group", "INT-group", "TERM-parent"],
)
def test_a_stopped_local_sweep_stops_its_jobs_and_a_relaunch_finishes_them(sig, to_group, tmp_path):
    spec = tiny_spec(tmp_path, GRID)
    results = tmp_path / "results"
    runs = [RunDir(results, c.run_id) for c in load_spec(spec).configs()]
    journal = results / "sweeps" / "tiny" / "journal.jsonl"
    sweep = subprocess.Popen(
        sweep_command(spec, results),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's job
    )
    try:
        wait_for(lambda: all(run.metrics.exists() and read_jsonl(run.metrics) for run in runs), "no epoch finished")
        if to_group:
            os.killpg(sweep.pid, sig)
        else:
            sweep.send_signal(sig)
        out, err = sweep.communicate(timeout=TIMEOUT)
        wait_for(lambda: not group_alive(sweep.pid), "a process of the sweep is still running")
    finally:
        if group_alive(sweep.pid):
            os.killpg(sweep.pid, signal.SIGKILL)
            sweep.communicate()
    assert sweep.returncode == 128 + sig, out + err
    assert f"0 done, 0 skipped, 0 failed, 2 interrupted (stopped by {sig.name}; relaunch the sweep" in out
    for run in runs:
        summary = run.read_summary()
        assert summary["status"] == "interrupted", summary
        assert summary["error"].startswith("stopped by ") and 1 <= summary["epochs_done"] < 4
    events = [json.loads(line) for line in journal.read_text().splitlines()]
    assert sorted(e["event"] for e in events) == ["interrupted", "interrupted", "start", "start"]

    again = subprocess.run(sweep_command(spec, results), cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "2 done, 0 skipped, 0 failed" in again.stdout  # not "running elsewhere": the locks were released
    for run in runs:
        summary = run.read_summary()
        assert summary["status"] == "finished" and summary["epochs_done"] == 4
        assert [row["epoch"] for row in read_jsonl(run.metrics)] == [1, 2, 3, 4]


@pytest.mark.parametrize("share", ["processes", "packed"])
def test_a_job_training_several_cells_stops_them_all(share, tmp_path):
    """A job's first process alone gets the signal (``kill PID``, or a scheduler signalling only it):
    cells in processes of their own get it passed on, packed cells (threads) see its flag."""
    import threading

    from suite.experiments.launch import train_cells
    from tests.experiments.test_sweep import options

    configs = load_spec(tiny_spec(tmp_path, GRID)).configs()
    runs = [RunDir(tmp_path / "results", c.run_id) for c in configs]

    def stop_after_an_epoch():
        wait_for(lambda: all(run.metrics.exists() and read_jsonl(run.metrics) for run in runs), "no epoch finished")
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=stop_after_an_epoch, daemon=True).start()
    outcomes = train_cells(configs, options(tmp_path), "tiny", None, share)
    assert [o["status"] for o in outcomes] == ["interrupted", "interrupted"], outcomes
    assert all(o["reason"] == "stopped by SIGTERM" for o in outcomes)
    for run in runs:
        summary = run.read_summary()
        assert summary["status"] == "interrupted" and 1 <= summary["epochs_done"] < 4


def test_a_stopped_sweep_stops_suite_reproduce_with_its_exit_code(sweeps, tmp_path, monkeypatch, capsys):  # noqa: F811
    """No further sweep, study or report after a sweep a signal stopped; exit 128 + the signal."""
    import suite.experiments.launch
    from suite.cli import main
    from suite.experiments.launch import SweepResult
    from tests.experiments.test_reproduce import RUN_FLAGS

    calls = []

    def stopped_sweep(spec, options, **kwargs):
        calls.append(spec.name)
        return SweepResult(interrupted=[("some-run", "stopped by SIGTERM")], stopped_by=signal.SIGTERM)

    monkeypatch.setattr(suite.experiments.launch, "run_sweep", stopped_sweep)
    argv = ["reproduce", "smoke", "--sweeps-dir", str(sweeps), "--results-dir", str(tmp_path / "results")]
    assert main([*argv, "--reports-dir", str(tmp_path / "reports"), *RUN_FLAGS]) == 128 + signal.SIGTERM
    out = capsys.readouterr().out
    assert calls == ["smoke"]  # the second sweep (smoke_co) never started
    assert "1 interrupted (stopped by SIGTERM; relaunch the sweep to resume them)" in out
    assert "preset smoke: stopped; rerun the same command to resume" in out
    assert not (tmp_path / "results" / "studies").exists() and not (tmp_path / "reports").exists()
