"""Stop signals: a run sent SIGTERM, SIGUSR1 or SIGINT stops at a safe point, says so in its record,
exits 128 + the signal, and resumes to the same result as an uninterrupted run."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch

from suite.config import RunConfig, RunOptions
from suite.engine import signals
from suite.engine.packed import run_packed
from suite.engine.trainer import execute
from suite.store.atomic import load_checkpoint, read_jsonl
from suite.store.run_dir import RunDir
from tests.conftest import TINY

TIMEOUT = 600
FLAGS = (
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


@pytest.fixture(scope="module")
def three_epochs(tmp_path_factory):
    """(config, options factory, summary, metrics) of a 3-epoch tiny run trained without a stop."""
    config = dataclasses.replace(RunConfig(**TINY), epochs=3, train_points=1024)
    root = tmp_path_factory.mktemp("whole")

    def options(results):
        return RunOptions(
            results_dir=results,
            data_dir=root / "data",
            device="cpu",
            download=False,
            progress=False,
            wandb="disabled",
        )

    summary = execute(config, options(root / "results"))
    return config, options, summary, read_jsonl(RunDir(root / "results", summary["run_id"]).metrics)


def run_command(config, results, data) -> list[str]:
    flags = ["run", "--results-dir", str(results), "--data-dir", str(data), "--device", "cpu"]
    flags += ["--no-download", "--quiet", "--wandb", "disabled"]
    for name in FLAGS:
        flags += [f"--{name.replace('_', '-')}", str(getattr(config, name))]
    return [sys.executable, "-m", "suite.cli", *flags]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1, signal.SIGINT], ids=lambda s: s.name)
def test_a_signal_stops_a_run_at_a_safe_point_and_it_resumes_exactly(sig, three_epochs, tmp_path):
    config, options, want, want_rows = three_epochs
    results = tmp_path / "results"
    run = RunDir(results, want["run_id"])
    victim = subprocess.Popen(
        run_command(config, results, options(results).data_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (run.metrics.exists() and read_jsonl(run.metrics)):  # the first epoch is done
            assert victim.poll() is None, victim.communicate()
            assert time.monotonic() < deadline, "the first epoch never finished"
            time.sleep(0.02)
        victim.send_signal(sig)
        _, err = victim.communicate(timeout=TIMEOUT)
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.communicate()
    assert victim.returncode == 128 + sig, err
    assert f"stopped by {sig.name}; rerun the same command to resume" in err
    stopped = run.read_summary()
    assert stopped["status"] == "interrupted"
    done = stopped["epochs_done"]
    assert 1 <= done < 3 and stopped["error"] == (
        f"stopped by {sig.name} after {done} of 3 epochs; rerun the same command to resume from there"
    )
    assert load_checkpoint(run.last)["epoch"] == done - 1  # the last complete epoch is the resume point
    assert len(read_jsonl(run.metrics)) == done

    resumed = execute(config, options(results))
    assert resumed["status"] == "finished" and resumed["error"] is None
    got_rows = read_jsonl(run.metrics)
    assert [r["epoch"] for r in got_rows] == [1, 2, 3]
    for got, row in zip(got_rows, want_rows):  # bit for bit, wall-clock seconds excepted
        assert {k: v for k, v in got.items() if k != "epoch_seconds"} == {
            k: v for k, v in row.items() if k != "epoch_seconds"
        }
    assert (resumed["best"], resumed["last"], resumed["best_epoch"]) == (want["best"], want["last"], want["best_epoch"])


def test_handlers_are_restored_and_the_flag_is_process_wide():
    """Threads (packed runs) cannot install handlers: they see the main thread's flag and stop."""
    seen = []
    previous = signal.signal(signal.SIGUSR1, lambda *_: seen.append("mine"))
    try:
        started = threading.Barrier(3)

        def trainer():
            started.wait()
            while True:
                signals.check()  # what a trainer does between iterations
                time.sleep(0.001)

        with signals.stopping_on_signals():
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
            with signals.stopping_on_signals():  # nested: the outer one's handlers stay
                pass
            assert signals.requested() is None
            threading.Timer(0.2, lambda: (started.wait(), os.kill(os.getpid(), signal.SIGUSR1))).start()
            outcomes = run_packed([trainer, trainer], device=torch.device("cpu"))
            assert signals.requested() == signal.SIGUSR1
        assert [type(o) for o in outcomes] == [signals.Stopped, signals.Stopped]
        assert [o.signum for o in outcomes] == [signal.SIGUSR1] * 2
        assert signals.requested() is None  # cleared when the block ends
        os.kill(os.getpid(), signal.SIGUSR1)  # the handler found before is back
        assert seen == ["mine"]
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_a_signal_during_the_final_evaluation_interrupts_it_at_once():
    """Evaluation writes nothing until its end: in the main thread it is interrupted, not waited for."""
    with signals.stopping_on_signals():
        with pytest.raises(signals.Stopped) as stop:
            with signals.raising_at_once():
                os.kill(os.getpid(), signal.SIGTERM)
                for _ in range(1000):
                    time.sleep(0.001)
                pytest.fail("the signal did not interrupt the block")
    assert stop.value.signum == signal.SIGTERM and stop.value.exit_code == 143
