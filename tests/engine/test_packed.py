"""Runs packed into one process (suite.engine.packed): each computes what it computes alone, and resumes."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

from suite.config import RunConfig, RunOptions
from suite.engine import Callback, execute
from suite.engine.packed import pack_key, packable, run_packed
from suite.engine.rng import GLOBAL_RNG, own_generators
from suite.engine.trainer import RunData, Trainer
from suite.store import RunDir
from tests.conftest import TINY

ROOT = Path(__file__).resolve().parents[2]
CPU = torch.device("cpu")
# three methods that draw random numbers differently (random start, noise, none before the step)
PACK = [("fast_bat", 0), ("fast_at_ga", 1), ("fast_at", 2)]


def configs(epochs: int = 3) -> list[RunConfig]:
    return [RunConfig(**{**TINY, "method": m, "seed": s, "epochs": epochs}).resolved() for m, s in PACK]


def options(results: Path) -> RunOptions:
    return RunOptions(results_dir=results, device="cpu", download=False, progress=False, wandb="disabled")


class EpochTimes(Callback):
    def __init__(self, log: list):
        self.log, self.run_id = log, None

    def on_start(self, run, config, record):
        self.run_id = run.run_id

    def on_epoch_end(self, epoch, metrics):
        self.log.append((self.run_id, epoch, time.perf_counter()))


def record(results: Path, run_id: str):
    """What a run computed: its metrics rows (without their timings), final results and last parameters."""
    folder = results / "runs" / run_id
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    rows = [{k: v for k, v in row.items() if k != "epoch_seconds"} for row in rows]
    summary = json.loads((folder / "summary.json").read_text())
    model = torch.load(folder / "last.pt", weights_only=True)["model"]
    return rows, {k: summary[k] for k in ("best", "last", "best_epoch", "status")}, model


def assert_same(a, b):
    (rows_a, summary_a, model_a), (rows_b, summary_b, model_b) = a, b
    assert rows_a == rows_b
    assert summary_a == summary_b
    assert model_a.keys() == model_b.keys() and all(torch.equal(model_a[k], model_b[k]) for k in model_a)


def test_runs_packed_in_one_process_train_as_they_do_alone_bit_for_bit(tmp_path, monkeypatch):
    """Three runs in three threads of one process give the metrics, results and final parameters each
    gives alone, although their epochs interleave; with the global generator shared instead (no
    generators of their own) they do not: the check has teeth."""
    alone = {}
    for config in configs():
        execute(config, options(tmp_path / "alone"))
        alone[config.run_id] = record(tmp_path / "alone", config.run_id)

    log: list = []
    outcomes = run_packed(
        [functools.partial(execute, c, options(tmp_path / "packed"), [EpochTimes(log)]) for c in configs()], CPU
    )
    assert [o["status"] for o in outcomes] == ["finished"] * 3
    for run_id, expected in alone.items():
        assert_same(record(tmp_path / "packed", run_id), expected)
    ends = {run_id: [t for r, _, t in log if r == run_id] for run_id in alone}
    for a in ends:  # the runs really ran at once: every run's first epoch ended before any run's last
        assert all(ends[a][0] < ends[b][-1] for b in ends if b != a)

    import suite.engine.trainer

    monkeypatch.setattr(suite.engine.trainer, "run_generator", lambda device: None)  # the global generator only
    run_packed([functools.partial(execute, c, options(tmp_path / "shared")) for c in configs()], CPU)
    differs = 0
    for run_id, expected in alone.items():
        try:
            assert_same(record(tmp_path / "shared", run_id), expected)
        except AssertionError:
            differs += 1
    assert differs > 0


KILLED = """
import functools, json, sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)
from suite.config import RunConfig, RunOptions
from suite.engine import Callback, execute
from suite.engine.packed import run_packed

class Stall(Callback):  # the process is killed here, after its second epoch's checkpoint
    def on_epoch_end(self, epoch, metrics):
        if epoch == 1:
            time.sleep(600)

configs = [RunConfig(**c) for c in json.loads(sys.argv[1])]
options = RunOptions(results_dir=Path(sys.argv[2]), device="cpu", download=False, progress=False, wandb="disabled")
run_packed([functools.partial(execute, c, options, [Stall()]) for c in configs], torch.device("cpu"))
"""


def test_every_packed_run_resumes_after_the_process_is_killed(tmp_path, capsys):
    runs = configs(epochs=3)[:2]
    results = tmp_path / "packed"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED, json.dumps([dataclasses.asdict(c) for c in runs]), str(results)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        metrics = [results / "runs" / c.run_id / "metrics.jsonl" for c in runs]
        deadline = time.monotonic() + 300
        while not all(p.is_file() and len(p.read_text().splitlines()) == 2 for p in metrics):
            assert proc.poll() is None and time.monotonic() < deadline, "the packed runs did not reach epoch 2"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    for c in runs:
        assert json.loads((results / "runs" / c.run_id / "summary.json").read_text())["status"] == "running"

    outcomes = run_packed([functools.partial(execute, c, options(results)) for c in runs], CPU)
    assert [o["status"] for o in outcomes] == ["finished"] * 2
    out = capsys.readouterr().out
    assert all(f"{c.run_id}: resuming after epoch 2 of 3" in out for c in runs)
    for c in runs:
        execute(c, options(tmp_path / "alone"))
        assert_same(record(results, c.run_id), record(tmp_path / "alone", c.run_id))


def test_what_may_share_a_process():
    plain = RunConfig(**TINY).resolved()
    assert packable(plain) is None
    wide = RunConfig(**{**TINY, "arch": "wrn16_8"}).resolved()  # dropout 0.1 by default
    assert "dropout" in packable(wide)
    assert packable(RunConfig(**{**TINY, "arch": "wrn16_8", "dropout": 0.0}).resolved()) is None
    assert pack_key(plain) == "bf16" and pack_key(RunConfig(**{**TINY, "method": "fast_at_ga"}).resolved()) == "fp32"


def test_a_packed_run_evaluates_while_another_holds_the_global_generators(tmp_path):
    """Packed, a run's validation (PGD from random starts, the CO probe) draws from a generator of its own:
    it finishes while another thread holds the global generators' lock, where the same run alone waits
    for it, and both compute the same numbers."""
    config = RunConfig(**TINY).resolved()
    opts = options(tmp_path)
    data = RunData.load(config, opts, CPU)
    with own_generators():
        packed = Trainer(config, opts, data, CPU, RunDir(tmp_path, config.run_id))
    alone = Trainer(config, opts, data, CPU, RunDir(tmp_path, config.run_id))
    held, release, rows = threading.Event(), threading.Event(), {}

    def hold():
        with GLOBAL_RNG:
            held.set()
            release.wait(300)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    held.wait()
    try:
        threads = {
            name: threading.Thread(target=lambda t=t, n=name: rows.update({n: t.validate()}), daemon=True)
            for name, t in (("packed", packed), ("alone", alone))
        }
        threads["packed"].start()
        threads["packed"].join(120)
        assert "packed" in rows
        threads["alone"].start()
        threads["alone"].join(1)
        assert threads["alone"].is_alive() and "alone" not in rows
    finally:
        release.set()
    threads["alone"].join(120)
    assert rows["packed"] == rows["alone"]
    assert {"val_robust_acc", "train_pgd_acc", "grad_align_cos"} <= set(rows["packed"])
