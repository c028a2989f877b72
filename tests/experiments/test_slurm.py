"""The cluster path on a real Slurm: a one-node cluster on loopback started by ``.ci/slurm.sh``.

``tests/run.sh`` starts it and sets ``SUITE_TEST_SLURM=1`` and ``SLURM_CONF``; without them
(no root, say) these tests skip. What a real cluster cannot show (a refused submission, an
unreachable controller, the #SBATCH lines of options this node cannot satisfy) stays with the
fake sbatch in test_sweep.py. The cluster has no accounting, so ``sacct`` fails on every status
poll, as on many small clusters: the sweep must still collect its runs, printing each of
submitit's log lines once.
"""

from __future__ import annotations

import collections
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from suite.cli import build_parser
from suite.experiments.sweep import load_spec
from suite.store.run_dir import RunDir
from tests.experiments.test_plugin_sweeps import plugins_on_sys_path_only
from tests.experiments.test_reproduce import RUN_FLAGS
from tests.experiments.test_reproduce import sweeps as sweeps  # noqa: F401  (the tiny smoke preset fixture)
from tests.experiments.test_sweep import options, tiny_spec
from tests.plugins import forget_plugin_modules  # noqa: F401  (autouse: each test imports its own plug-ins)

pytestmark = pytest.mark.skipif(
    not os.environ.get("SUITE_TEST_SLURM") or shutil.which("sbatch") is None,
    reason=os.environ.get("SUITE_TEST_SLURM_SKIP")  # why tests/run.sh could not start it
    or "no Slurm cluster: tests/run.sh starts one with .ci/slurm.sh (needs root and slurm-wlm, munge)",
)
SLURM_FLAGS = ["--executor", "slurm", "--gpus-per-job", "0", "--cpus-per-job", "1", "--time", "10"]


def suite_cli(*args, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """A ``suite`` command in a subprocess, as a user runs it (the jobs inherit its environment)."""
    return subprocess.run(
        [sys.executable, "-m", "suite.cli", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def job_state(job_id: str) -> str:
    """The job's state from the controller (it keeps finished jobs for MinJobAge, 300 s here)."""
    out = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True, check=True).stdout
    return re.search(r"JobState=(\S+)", out).group(1)


def wait_until_gone(job_id: str, timeout_s: float = 240) -> None:
    """Wait until the job array has left the queue (every task done)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        queue = subprocess.run(["squeue", "-h", "-j", job_id], capture_output=True, text=True).stdout
        if not queue.strip():
            return
        time.sleep(0.5)
    pytest.fail(f"job {job_id} still queued after {timeout_s} s:\n{queue}")


def test_docs_name_the_slurm_version_tested():
    version = subprocess.run(["sinfo", "--version"], capture_output=True, text=True, check=True).stdout.split()[-1]
    assert f"Tested against Slurm {version}" in (Path(__file__).parents[2] / "docs" / "cluster.md").read_text()


def test_sweep_runs_as_one_job_array_and_prints_each_log_line_once(tmp_path):
    """`suite sweep --executor slurm`: one array, a task per run, every run collected (the failing one
    failed alone); submitit's status-poll warnings, printed once each (they went to stdout and stderr)."""
    spec = tiny_spec(tmp_path, "method: [standard, fast_at]\ntrain_points: [256, 32]\n")  # 32 points fail
    results = tmp_path / "results"
    done = suite_cli("sweep", spec, *SLURM_FLAGS, *RUN_FLAGS, "--results-dir", results, cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr  # a run failed
    array = re.search(r"submitted job array (\d+) \(4 runs\) of 4 task\(s\)", done.stdout).group(1)
    assert "sweep tiny: 2 done, 0 skipped, 2 failed" in done.stdout
    assert len(re.findall(r"^  failed \S+: .*exceeds the 32 training points", done.stdout, re.M)) == 2
    for line in (results / "sweeps" / "tiny" / "journal.jsonl").read_text().splitlines():
        assert json.loads(line)["pid"] != os.getpid()
    finished = {c.train_points for c in load_spec(spec).configs() if RunDir(results, c.run_id).is_finished()}
    assert finished == {256}
    assert {job_state(f"{array}_{i}") for i in range(4)} == {"COMPLETED"}  # failed runs are handled, not crashes

    lines = collections.Counter(line for line in (done.stdout + done.stderr).splitlines() if "submitit" in line)
    assert all(n == 1 for n in lines.values()), [line for line, n in lines.items() if n > 1]
    polls = [line for line in lines if "Bypassing sacct error" in line]
    assert polls, "no status poll logged: has this cluster accounting after all?"
    assert (done.stdout + done.stderr).count("accounting storage is disabled") <= len(polls)  # sacct's own line


def test_array_task_trains_several_runs_at_once(tmp_path, monkeypatch, capsys):
    """--runs-per-gpu 2: one array task trains both runs, each in its own process."""
    import suite.experiments.launch
    from suite.experiments.launch import run_sweep

    monkeypatch.setitem(suite.experiments.launch.POLL_S, "slurm", 0.5)
    spec = load_spec(tiny_spec(tmp_path, "method: [standard, fast_at]\n"))
    slurm = {"time": 10, "cpus_per_task": 2, "gpus_per_node": 0}
    result = run_sweep(spec, options(tmp_path), executor="slurm", slurm=slurm, runs_per_gpu=2)
    assert "(2 runs) of 1 task(s), up to 2 runs at once" in capsys.readouterr().out
    assert sorted(result.done) == sorted(c.run_id for c in spec.configs()) and not result.failed
    journal = [json.loads(line) for line in (tmp_path / "results/sweeps/tiny/journal.jsonl").read_text().splitlines()]
    assert len({event["pid"] for event in journal if event["event"] == "start"}) == 2


def test_array_tasks_find_the_plugins(tmp_path, monkeypatch):
    """Array tasks, fresh processes on the node, resolve a dotted-path and an entry-point plug-in
    that the launcher found only through its own sys.path."""
    import suite.experiments.launch
    from suite.experiments.launch import run_sweep

    plugins_on_sys_path_only(tmp_path, monkeypatch)
    monkeypatch.setitem(suite.experiments.launch.POLL_S, "slurm", 0.5)
    spec = load_spec(tiny_spec(tmp_path, "method: [plugpkg.meth, ep_plug]\n"))
    slurm = {"time": 10, "cpus_per_task": 1, "gpus_per_node": 0}
    result = run_sweep(spec, options(tmp_path), executor="slurm", slurm=slurm)
    assert not result.failed, result.report()
    assert sorted(result.done) == sorted(c.run_id for c in spec.configs())


def test_reproduce_no_wait_then_its_follow_up_commands(sweeps, tmp_path):  # noqa: F811
    """`suite reproduce --executor slurm --no-wait` submits the sweeps and returns; the commands it
    prints then follow the runs, run the study (the same --set) and write the report of both sweeps."""
    results = tmp_path / "results"
    argv = ["reproduce", "smoke", "--sweeps-dir", sweeps, "--results-dir", results, "--set", "epochs=1"]
    submitted = suite_cli(*argv, *SLURM_FLAGS, "--no-wait", *RUN_FLAGS, cwd=tmp_path)
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    out = submitted.stdout
    arrays = re.findall(r"submitted job array (\d+)", out)
    assert len(arrays) == 2 and "(2 runs)" in out and "(1 runs)" in out  # smoke and smoke_co
    assert not (results / "studies").exists() and not (tmp_path / "reports").exists()
    commands = {line.split(": ", 1)[0]: line.split(": ", 1)[1] for line in out.splitlines() if ": suite " in line}
    follow, study, report = (
        shlex.split(commands[key].split(" (")[0])
        for key in ("follow the runs", "the study", "when they are done, the report")
    )
    tune_args = build_parser().parse_args(study[1:])
    assert (tune_args.spec, tune_args.set) == (sweeps / "lambda_smoke.yaml", ["epochs=1"])
    report_args = build_parser().parse_args(report[1:])
    assert (report_args.sweep, report_args.overrides, report_args.study, report_args.name) == (
        [sweeps / "smoke.yaml", sweeps / "smoke_co.yaml"],
        ["epochs=1"],
        "lam_tiny",
        "smoke",
    )

    for array in arrays:
        wait_until_gone(array)
    runs = suite_cli(*follow[1:], "--csv", cwd=tmp_path)
    assert runs.returncode == 0, runs.stderr
    rows = [line for line in runs.stdout.splitlines()[1:] if line.strip()]
    assert len(rows) == 3 and all("finished" in row for row in rows), runs.stdout

    tune = suite_cli(*study[1:], "--device", "cpu", "--no-download", "--quiet", cwd=tmp_path)
    assert tune.returncode == 0, tune.stdout + tune.stderr
    assert (results / "studies" / "lam_tiny.csv").exists()

    written = suite_cli(*report[1:], cwd=tmp_path)
    assert written.returncode == 0, written.stdout + written.stderr
    assert (tmp_path / "reports" / "smoke" / "report.md").exists()
    assert (tmp_path / "reports" / "smoke" / "lambda_sensitivity.png").exists()


def test_cancelled_tasks_fail_their_runs_instead_of_hanging(tmp_path, monkeypatch):
    """scancel of an array whose tasks wait to start: they leave no result and sacct knows nothing
    here (no accounting), yet both runs are reported failed, from squeue, and the sweep returns.
    (A running task cancelled ends the same way, after Slurm's KillWait of 30 s.)"""
    import threading

    import suite.experiments.launch
    from suite.experiments.launch import run_sweep

    monkeypatch.setitem(suite.experiments.launch.POLL_S, "slurm", 0.5)
    spec = load_spec(tiny_spec(tmp_path, "method: [standard, fast_at]\n"))
    folder = tmp_path / "results/sweeps/tiny/submitit"

    def cancel_once_queued() -> None:
        deadline = time.monotonic() + 60
        while not list(folder.glob("*_submitted.pkl")) and time.monotonic() < deadline:
            time.sleep(0.1)
        array = next(folder.glob("*_submitted.pkl")).name.split("_")[0]
        subprocess.run(["scancel", array], check=True)

    canceller = threading.Thread(target=cancel_once_queued, daemon=True)
    canceller.start()
    later = {"begin": "now+3600"}  # both tasks wait in the queue until the test cancels them
    slurm = {"time": 10, "cpus_per_task": 1, "gpus_per_node": 0, "additional_parameters": later}
    outcome = []  # run in a thread: without the fix it would wait forever
    sweep = threading.Thread(
        target=lambda: outcome.append(run_sweep(spec, options(tmp_path), executor="slurm", slurm=slurm)), daemon=True
    )
    sweep.start()
    sweep.join(timeout=60)
    assert outcome, "the sweep still waits for its cancelled tasks"
    result = outcome[0]
    assert not result.done and len(result.failed) == 2
    for _, reason in result.failed:
        assert re.search(r"job \d+_[01] ended without a result \((state CANCELLED|no longer in squeue); log: ", reason)
