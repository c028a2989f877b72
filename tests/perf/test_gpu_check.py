"""``suite bench --gpu-check`` runs on a bare GPU box: torch, numpy, pandas, yaml and tqdm only."""

import json
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


CPU_PARTS = """
import json, sys, tempfile
from pathlib import Path
import torch
torch.set_num_threads(1)
from suite.perf.cell import measure_cell
from suite.perf.gpu_check import trained_run
from suite.perf.runs_per_gpu import packed_parity, packed_throughput, relative
tiny = dict(arch="small_cnn", epochs=2, train_points=512, val_points=64, test_points=64, co_points=32,
            pgd_steps=2, pgd_restarts=1, val_pgd_steps=2)
with tempfile.TemporaryDirectory() as work:
    cell = measure_cell(Path(work), device="cpu", **tiny)
    trained = trained_run(Path(work), cell, "data", device="cpu")
out = {
    "cell": cell,
    "trained": trained,
    "parity": packed_parity("fast_bat", k=2, iterations=3, batch=8, device="cpu", arch="small_cnn"),
    "packed": relative(packed_throughput((1, 2), modes=(False,), batch=8, arch="small_cnn", device="cpu")),
}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def cpu_parts():
    """The table1_cell, trained_run, packed_parity and packed runs-per-GPU parts, run on a CPU at tiny
    sizes in a subprocess where W&B, Optuna, submitit, AutoAttack and torchvision cannot be imported."""
    done = subprocess.run(
        [sys.executable, "-c", BARE.split("import suite.perf.gpu_check")[0] + CPU_PARTS],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=900,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_cell_part_trains_table1s_runs_on_synthetic_cifar10_and_times_their_pieces(cpu_parts):
    cell = cpu_parts["cell"]
    for method in ("fast_at", "fast_bat"):
        c = cell[method]
        assert c["config"]["method"] == method and c["config"]["dataset"] == "synthetic_cifar10"
        assert c["config"]["pgd_steps"] == 2 and c["config"]["val_points"] == 64  # the overrides, else Table 1's
        assert len(c["epoch_s"]) == 2 and c["cuda_graphs"] is False
        assert 0 < c["first_epoch_s"] and 0 < c["steady_epoch_s"] and 0 < c["validation_s"]
        assert 0 < c["final_evaluation_s"] < c["wall_s"] and c["models_evaluated"] in (1, 2)
        assert 0 <= c["results"]["last"]["ra_pgd"] <= c["results"]["last"]["sa"] <= 100
    aa = cell["autoattack"]
    assert aa["points"] == 1000 and aa["seconds"] == pytest.approx(sum(aa["by_attack"].values()))
    assert cell["table1_runs"] == 80


def test_the_trained_run_part_measures_every_method_at_the_cells_fast_bat_checkpoint(cpu_parts):
    t = cpu_parts["trained"]
    assert t["run_dir"].startswith("fast_bat-synthetic_cifar10-small_cnn") and not t["trained_here"]
    p = t["precision"]
    assert "last checkpoint (epoch 2)" in p["at"] and p["seeds"] == [0, 1, 2]
    assert set(p["cosines"]) == {"standard", "fgsm", "fast_at", "n_fgsm", "fast_at_ga", "pgd2", "fast_bat"}
    assert p["policy"]["fast_at_ga"]["today"] == "fp32" and p["policy"]["fast_at_ga"]["verdict"] in (
        "bf16",
        "mixed",
        "fp32",
    )
    assert p["policy"]["standard"]["verdict"] is None  # nothing random: no noise to compare with


def test_runs_packed_into_one_process_train_as_alone_and_their_throughput_is_measured(cpu_parts):
    assert cpu_parts["parity"]["max_rel_diff"] == 0.0
    packed = cpu_parts["packed"]["eager"]
    for method in ("fast_at", "fast_bat"):
        assert packed[method]["over_one"]["1"] == 1.0 and packed[method]["iters_per_s"]["2"] > 0


def test_the_check_is_sized_for_eight_minutes():
    from suite.perf.gpu_check import PART_ESTIMATE_S, PARTS

    assert set(PART_ESTIMATE_S) == set(PARTS)
    assert sum(PART_ESTIMATE_S.values()) <= 8 * 60


def test_table1_is_extrapolated_from_the_cells_and_the_graphed_iteration_times():
    from suite.perf.cell import cell_wall, table1_estimate, table1_spec

    run = dict(
        first_epoch_s=5.0,
        steady_epoch_s=2.0,
        validation_s=0.5,
        final_evaluation_s=10.0,
        models_evaluated=2,
        test_points=1000,
        setup_s=3.0,
    )
    wall = cell_wall(run, aa_s=30.0)
    # 20 epochs: 5 + 19 x 2; validation 20 x 0.5; two models, each 5 s x 10 (10,000 points) + 30 s AutoAttack
    assert wall == {
        "training_s": 43.0,
        "validation_s": 10.0,
        "final_evaluation_s": 160.0,
        "setup_s": 3.0,
        "wall_s": 216.0,
    }
    cell = {"fast_at": run, "fast_bat": {**run, "steady_epoch_s": 6.0}, "autoattack": {"seconds": 30.0}}
    graphed = {"fast_at": 0.005, "fast_bat": 0.015, "fast_at_ga": 0.08, "pgd2": 0.0075}
    est = table1_estimate(
        cell, {"graph_s": graphed, "precision_variants_graph_s": {"bf16": 0.02}}, table1_spec().configs()
    )
    fast_bat = 3 + 5 + 19 * 6 + 10 + 160
    other = lambda ratio: 3 + 20 * 2.0 * ratio + 10 + 160  # noqa: E731 - Fast-AT's epoch scaled, the rest shared
    assert est["by_method_s"] == pytest.approx(
        {"fast_at": 216.0, "fast_bat": fast_bat, "fast_at_ga": other(16), "pgd2": other(1.5)}
    )
    assert est["runs"] == 80 and est["hours"] == pytest.approx(20 * (216 + fast_bat + other(16) + other(1.5)) / 3600)
    assert est["hours_fast_at_ga_bf16"] == pytest.approx(20 * (216 + fast_bat + other(4) + other(1.5)) / 3600)
    assert table1_estimate(cell, None, table1_spec().configs())["missing"] == ["fast_at_ga", "pgd2"]


def _fake_result(parts):
    """What run_gpu_check returns, with made-up figures, for the parts named."""
    from suite.perf.gpu_check import failures
    from suite.perf.precision import precision_policy
    from suite.perf.settings import METHOD_VARIANTS

    names = [v[0] for v in METHOD_VARIANTS]
    each = lambda v: {n: v for n in names}  # noqa: E731
    cos = {"fast_at": {"fp32": 0.999, "bf16": 0.99, "noise": 0.98}}
    seeds = [{"fast_at_ga": {"fp32": 0.999, "bf16": 0.80 + i / 100, "mixed": 0.95, "noise": 0.9}} for i in range(3)]
    ops = {"total": 500, "kernels": 360, "top": {}}
    gains = {"fast_at": {"over_one": {"1": 1.0, "2": 1.9}}, "fast_bat": {"over_one": {"1": 1.0, "2": 1.7}}}
    cell_run = {
        "config": {"epochs": 3},
        "cuda_graphs": True,
        "first_epoch_s": 6.0,
        "steady_epoch_s": 2.0,
        "validation_s": 0.5,
        "final_evaluation_s": 8.0,
        "models_evaluated": 1,
        "test_points": 1000,
        "setup_s": 4.0,
        "wall_s": 25.0,
        "results": {"best": {"sa": 70.0, "ra_pgd": 40.0}, "last": {"sa": 70.0, "ra_pgd": 40.0}},
    }
    figures = {
        "parity": [{"name": n, "method": m, "max_rel_diff": 0.0, "trained": True} for n, m, _ in METHOD_VARIANTS],
        "packed_parity": {"method": "fast_bat", "runs": 2, "max_rel_diff": 0.5, "cuda_graphs": True},
        "random_replays": {"default": True, "own_generator": False},
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
            "precision_variants_graph_s": {"bf16": 0.0172, "mixed": 0.05},
            "op_counts": {**each(ops), "fast_bat": {"total": 1700, "kernels": 1300, "top": {}}},
            "ops_over_fast_at": {"total": 3.4, "kernels": 3.61},
        },
        "table1_cell": {
            "fast_at": cell_run,
            "fast_bat": {**cell_run, "steady_epoch_s": 6.5},
            "autoattack": {
                "points": 1000,
                "seconds": 40.0,
                "per_point_s": {"forward_backward": 2e-5, "forward": 7e-6},
                "estimate_from": "fast_bat's network after 3 epochs, eval batch 1000",
            },
        },
        "trained_run": {
            "run_dir": "fast_bat-synthetic_cifar10-preact_resnet18-eps8-s0-abc",
            "trained_here": False,
            "precision": {
                "at": "a run, last checkpoint (epoch 3)",
                "batch": 64,
                "eps": 8.0,
                "seeds": [0, 1, 2],
                "cosines": seeds[0],
                "policy": precision_policy(seeds),
            },
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
        "runs_per_gpu": {"graphs": {"processes": gains, "packed": gains}},
    }
    result = {
        "device": "a GPU",
        "torch": "2.x",
        "seconds": {"total": 100.0, **{p: 1.0 for p in parts}},
        "errors": {"pipeline": "RuntimeError: out of memory"},
        **{p: figures[p] for p in parts},
    }
    if "table1_cell" in parts:
        from suite.perf.cell import table1_estimate, table1_spec

        result["table1_estimate"] = table1_estimate(
            result["table1_cell"], result.get("iterations"), table1_spec().configs()
        )
    result["failures"] = failures(result)
    return result


def test_the_gpu_check_table_shows_what_ran_and_names_what_failed_or_did_not():
    from suite.perf.gpu_check import format_gpu_check

    shown = ["parity", "packed_parity", "random_replays", "eval_parity", "iterations", "table1_cell", "trained_run"]
    text = format_gpu_check(_fake_result([*shown, "eval_graphs", "precision_init", "runs_per_gpu"]))
    assert "fast_bat_fd" in text and "20.00" in text and "5.00" in text  # eager and graphed ms
    assert "early exit NO (121/256 broken)" in text
    assert "random numbers differ between replays: default yes, own generator NO" in text
    assert "graph replays drew the same random numbers (own generator)" in text
    assert "runs packed into one process train differently from alone (5.00e-01)" in text
    assert "fast_at_ga graphed in other precisions (its policy: float32): bf16 17.20 ms (3.44x Fast-AT)" in text
    assert "fast_at 360/500, fast_bat 1300/1700, Fast-BAT / Fast-AT 3.61/3.40" in text
    assert "training 6.0 s the first epoch, 2.0 s/epoch after" in text
    assert "AutoAttack on 1000 points, ESTIMATED" in text
    assert "one Table-1 cell, fast_at, EXTRAPOLATED to 20 epochs and 10,000 test points" in text
    assert "whole Table 1 (80 runs), EXTRAPOLATED" in text and "H200-hours (with Fast-AT-GA in bf16" in text
    assert "policy: fast_at_ga may train in mixed" in text and "set PRECISION = 'mixed'" in text
    assert "runs per GPU (graphs, packed), iterations/s summed over K runs relative to one: fast_at K=1: 1.00" in text
    assert "the measurement supports --runs-per-gpu 2 --share processes (1.70x one run" in text
    assert "not run: eval" in text and "pipeline" not in text.split("not run: ")[1].split("\n")[0]
    assert "gradient cosine to float64 at initialization (preact_resnet18, random inputs), batch 64" in text
    assert "FAILED" in text and "pipeline: RuntimeError: out of memory" in text
    assert "PGD evaluation (early exit): graph replay and eager execution break different points" in text
    assert "seconds per part (expected): parity 1 (30)" in text


def test_the_gpu_check_table_without_the_iteration_times_still_shows_parity():
    from suite.perf.gpu_check import format_gpu_check

    result = _fake_result(["parity"])
    result["errors"] = {}
    result["failures"] = []
    text = format_gpu_check(result)
    assert "(iteration times not run)" in text and "PASSED" in text


def test_the_eval_parity_part_labels_half_the_points_broken_on_an_untrained_network():
    from suite.perf.gpu_check import eval_graph_parity

    r = eval_graph_parity(early_exit=True, points=24, batch=8, steps=3, restarts=2, device="cpu")
    assert r["equal"] and 0 < r["broken"] < 24
