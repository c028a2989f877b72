"""Shared test setup: W&B off unless a test turns it on, and a tiny CPU run configuration.

``SUITE_WANDB`` is the suite's own default for ``RunOptions.wandb``, so the tests do not
depend on whatever ``WANDB_MODE`` the environment sets; subprocesses inherit both.
Torch runs one CPU thread (unless ``OMP_NUM_THREADS`` says otherwise): on a small shared
machine that is faster than threads contending for cores, and every run of a test, in
this process or a subprocess, computes with the same thread count, hence the same numbers.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

os.environ["SUITE_WANDB"] = "disabled"
os.environ["WANDB_SILENT"] = "true"
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402  (after the environment is set)

from suite.config import RunConfig, RunOptions  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

TINY = dict(
    method="fast_bat",
    dataset="fashion_mnist",
    arch="small_cnn",
    epochs=2,
    batch_size=64,
    train_points=512,
    val_points=128,
    test_points=128,
    aa_points=0,
    co_points=64,
    pgd_steps=5,
    pgd_restarts=1,
    val_pgd_steps=3,
)


@pytest.fixture
def tiny_config() -> RunConfig:
    """A two-epoch Fast-BAT run on 512 Fashion-MNIST points: about a second on a CPU."""
    return RunConfig(**TINY)


@pytest.fixture
def tiny_options(tmp_path) -> RunOptions:
    """Results under ``tmp_path/results``, CPU, no downloads, no progress bars, W&B disabled."""
    return RunOptions(
        results_dir=tmp_path / "results",
        data_dir=tmp_path / "data",
        device="cpu",
        download=False,
        progress=False,
        wandb="disabled",
    )


@pytest.fixture(scope="session")
def finished_tiny_run(tmp_path_factory):
    """``(config, results_dir, summary)`` of the tiny run trained once to the end.

    Shared by every test: copy ``results_dir`` before changing anything in it.
    """
    from suite.engine.trainer import execute

    config = RunConfig(**TINY)
    results = tmp_path_factory.mktemp("finished") / "results"
    options = RunOptions(
        results_dir=results,
        data_dir=results.parent / "data",
        device="cpu",
        download=False,
        progress=False,
        wandb="disabled",
    )
    summary = execute(config, options)
    assert summary["status"] == "finished"
    return config, results, summary


FAKE_SLURM = Path(__file__).resolve().parent / "fake_slurm"


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch) -> Path:
    """Slurm's commands on PATH without a cluster: ``sbatch`` is tests/fake_slurm/sbatch.py,
    ``sacct``/``squeue`` know no jobs, ``scancel`` and ``srun`` do nothing."""
    folder = tmp_path / "fake_slurm"
    folder.mkdir()
    commands = {
        "sbatch": f'exec "{sys.executable}" "{FAKE_SLURM / "sbatch.py"}" "$@"',
        "sacct": 'echo "JobID|State|NodeList"',
        "squeue": "true",
        "scancel": "true",
        "srun": "exit 1",
    }
    for name, body in commands.items():
        script = folder / name
        script.write_text(f"#!/bin/sh\n{body}\n")
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM_DIR", str(folder))
    return folder


SMALL_CNN_EPS = 8 / 255


def small_cnn_problem(dtype):
    """``(model, x, y, z)``: a small CNN at initialization in ``dtype``, 8 Fashion-MNIST-shaped points
    with saturated pixels (the box constraint is active somewhere), and a feasible point z at eps 8/255."""
    from suite.methods.perturbation import project, uniform_init
    from suite.models import build_model

    torch.manual_seed(0)
    model = build_model("small_cnn", 1, 10, (0.5,), (0.25,)).to(dtype)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(8, 1, 28, 28, generator=g, dtype=dtype)
    x[:, :, :4] = 0.0
    y = torch.randint(0, 10, (8,), generator=g)
    z = project(uniform_init(x, SMALL_CNN_EPS), x, SMALL_CNN_EPS)
    return model, x, y, z
