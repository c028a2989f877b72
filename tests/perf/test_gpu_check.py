"""``suite bench --gpu-check`` runs on a bare GPU box: torch, numpy, pandas, yaml and tqdm only."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
BARE = """
import sys, importlib.abc
class Missing(importlib.abc.MetaPathFinder):          # as if these were not installed
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {"wandb", "optuna", "submitit", "autoattack", "pyautoattack", "torchvision"}:
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, Missing())
import suite.perf.gpu_check
from suite.cli import main
sys.exit(main(["bench", "--gpu-check"]))
"""


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU this would run the whole check")
def test_gpu_check_imports_nothing_a_bare_gpu_box_lacks():
    done = subprocess.run(
        [sys.executable, "-c", BARE],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 2, done.stderr  # SuiteError: no GPU here, not an ImportError
    assert "needs a CUDA GPU" in done.stderr


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_check_passes():
    from suite.perf.gpu_check import format_gpu_check, run_gpu_check

    result = run_gpu_check()
    print(format_gpu_check(result))
    assert not result["failures"], result["failures"]


def _fake_result(parts):
    """What run_gpu_check returns, with made-up figures, for the parts named."""
    from suite.perf.gpu_check import failures
    from suite.perf.settings import METHOD_VARIANTS

    names = [v[0] for v in METHOD_VARIANTS]
    each = lambda v: {n: v for n in names}  # noqa: E731
    cos = {"fast_at": {"fp32": 0.999, "bf16": 0.99, "noise": 0.98}}
    figures = {
        "parity": [{"name": n, "method": m, "max_rel_diff": 0.0, "trained": True} for n, m, _ in METHOD_VARIANTS],
        "random_replays": True,
        "eval_parity": [
            {"early_exit": False, "equal": True, "broken": 120, "points": 256},
            {"early_exit": True, "equal": False, "broken": 121, "points": 256},
        ],
        "iterations": {
            "eager_s": each(0.02),
            "graph_s": each(0.005),
            "eager_over_fast_at": each(1.0),
            "graph_over_fast_at": each(1.0),
            "speedup": each(4.0),
            "peak_memory_eager": each(2**28),
            "memory_graph_capture": each(2**29),
            "reference_s": {"fast_bat": 0.07, "fast_at_ga": 0.1},
            "reference_over_suite": {"fast_bat": 1.2, "fast_at_ga": 1.1},
        },
        "trained_run": {
            "config": {
                "method": "fast_bat",
                "arch": "preact_resnet18",
                "dataset": "fashion_mnist",
                "eps": 8.0,
                "epochs": 3,
                "test_points": 1000,
                "seed": 0,
            },
            "wall_s": 60.0,
            "epoch_s": 10.0,
            "after_training_s": 30.0,
            "cuda_graphs": True,
            "results": {"best": {"sa": 80.0, "ra_pgd": 60.0}, "last": {"sa": 80.0, "ra_pgd": 60.0}},
            "precision": {"at": "a run, last checkpoint (epoch 3)", "batch": 64, "eps": 8.0, "cosines": cos},
        },
        "eval_graphs": {
            "attack": "PGD-50-2",
            "batch": 1000,
            "eps": 3.0,
            "ms_per_iterate": {"eager": 9.0, "graphs": 6.0},
            "speedup": 1.5,
        },
        "precision_init": {
            "at": "initialization (preact_resnet18, random inputs)",
            "batch": 64,
            "eps": 8.0,
            "cosines": cos,
        },
    }
    result = {
        "device": "a GPU",
        "torch": "2.x",
        "seconds": {"total": 100.0},
        "errors": {"runs_per_gpu": "RuntimeError: out of memory"},
        **{p: figures[p] for p in parts},
    }
    result["failures"] = failures(result)
    return result


def test_the_gpu_check_table_shows_what_ran_and_names_what_failed_or_did_not():
    from suite.perf.gpu_check import format_gpu_check

    text = format_gpu_check(
        _fake_result(
            ["parity", "random_replays", "eval_parity", "iterations", "trained_run", "eval_graphs", "precision_init"]
        )
    )
    assert "fast_bat_fd" in text and "20.00" in text and "5.00" in text  # eager and graphed ms
    assert "early exit NO (121/256 broken)" in text
    assert "10.0 s per epoch" in text and "fast_at fp32 0.9990, bf16 0.9900, noise 0.9800" in text
    assert "not run: eval, pipeline" in text
    assert "random numbers differ between replays: yes" in text
    assert "gradient cosine to float64 at initialization (preact_resnet18, random inputs), batch 64" in text
    assert "FAILED" in text and "runs_per_gpu: RuntimeError: out of memory" in text
    assert "PGD evaluation (early exit): graph replay and eager execution break different points" in text


def test_the_gpu_check_table_without_the_iteration_times_still_shows_parity():
    from suite.perf.gpu_check import format_gpu_check

    result = _fake_result(["parity"])
    result["errors"] = {}
    result["failures"] = []
    text = format_gpu_check(result)
    assert "(iteration times not run)" in text and "PASSED" in text


def test_the_trained_run_part_trains_evaluates_and_measures_precision_at_its_checkpoint(tmp_path):
    from suite.perf.gpu_check import trained_run

    r = trained_run(
        tmp_path / "data",
        device="cpu",
        arch="small_cnn",
        epochs=1,
        train_points=256,
        val_points=64,
        test_points=64,
        pgd_steps=2,
        pgd_restarts=1,
        val_pgd_steps=2,
    )
    assert r["cuda_graphs"] is False and r["epoch_s"] > 0 and r["wall_s"] >= r["epoch_s"]
    assert 0 <= r["results"]["best"]["ra_pgd"] <= r["results"]["best"]["sa"] <= 100
    assert "last checkpoint (epoch 1)" in r["precision"]["at"]
    assert set(r["precision"]["cosines"]) >= {"fast_at", "fast_at_ga", "fast_bat"}


def test_the_eval_parity_part_labels_half_the_points_broken_on_an_untrained_network():
    from suite.perf.gpu_check import eval_graph_parity

    r = eval_graph_parity(early_exit=True, points=24, batch=8, steps=3, restarts=2, device="cpu")
    assert r["equal"] and 0 < r["broken"] < 24


def test_the_trained_run_part_is_skipped_without_its_data(tmp_path, monkeypatch):
    import suite.perf.gpu_check as gpu_check
    from suite.errors import SuiteError

    def missing(*args, **kwargs):
        raise SuiteError("Fashion-MNIST not found")

    monkeypatch.setattr(gpu_check, "load_splits", missing)
    r = gpu_check.trained_run(tmp_path, device="cpu")
    assert "Fashion-MNIST not found" in r["skipped"]
    result = _fake_result([])
    result["trained_run"] = r
    assert "trained run: skipped (needs Fashion-MNIST" in gpu_check.format_gpu_check(result)
