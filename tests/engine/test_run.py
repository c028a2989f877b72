"""`suite run` end to end on a small Fashion-MNIST subset, and its handling of bad input."""

import json
import os
import subprocess
import sys

import pytest

from suite.config import RunConfig, RunOptions
from suite.engine.trainer import execute
from suite.methods import METHODS

os.environ.setdefault("SUITE_WANDB", "disabled")

TINY = dict(
    dataset="fashion_mnist",
    arch="small_cnn",
    epochs=1,
    batch_size=64,
    train_points=256,
    val_points=64,
    test_points=64,
    aa_points=0,
    co_points=32,
    pgd_steps=3,
    pgd_restarts=2,
    val_pgd_steps=2,
)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_one_epoch_of_every_method_writes_a_valid_summary(method, tmp_path):
    hparams = {"steps": 2} if method == "pgd" else {}
    config = RunConfig(method=method, eps=8, hparams=hparams, **TINY)
    summary = execute(config, RunOptions(results_dir=tmp_path, progress=False, wandb="disabled"))
    assert summary["status"] == "finished"
    assert summary["name"] == f"{method}-fashion_mnist-small_cnn-eps8-s0"
    for model in ("best", "last"):
        metrics = summary[model]
        assert 0 <= metrics["ra_pgd"] <= metrics["sa"] <= 100
        assert metrics["ra_aa"] is None
    assert summary["best_epoch"] == 1 and summary["epoch_seconds"] > 0
    assert summary["protocol"]["pgd"].startswith("PGD-3-2") and summary["protocol"]["test_points"] == 64
    run_dir = tmp_path / "runs" / summary["run_id"]
    on_disk = json.loads((run_dir / "summary.json").read_text())
    assert on_disk["status"] == "finished" and on_disk["best"] == summary["best"]
    config_json = json.loads((run_dir / "config.json").read_text())
    assert config_json["config"]["method"] == method and config_json["run_id"] == summary["run_id"]
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and {"train_loss", "val_robust_acc", "train_pgd_acc", "fgsm_pgd_cos"} <= set(rows[0])


def test_autoattack_is_reported_when_asked(tmp_path):
    config = RunConfig(method="fast_at", eps=8, **{**TINY, "aa_points": 16})
    summary = execute(config, RunOptions(results_dir=tmp_path, progress=False, wandb="disabled"))
    assert 0 <= summary["last"]["ra_aa"] <= summary["last"]["sa"]


def test_ra_pgd_on_the_autoattack_points_comes_from_the_same_pgd_attack(tmp_path):
    """``ra_pgd_aa_subset`` is the per-point PGD result of the whole test set, cut to AA's points."""
    import torch

    from suite.data import load_splits
    from suite.eval import pgd_robust
    from suite.models import build_model
    from suite.store.atomic import load_checkpoint

    config = RunConfig(method="fast_at", eps=32, **{**TINY, "aa_points": 16}).resolved()
    summary = execute(config, RunOptions(results_dir=tmp_path, progress=False, wandb="disabled"))
    splits = load_splits("fashion_mnist", "data", download=False)
    info = splits.info
    model = build_model("small_cnn", info.in_channels, info.num_classes, info.mean, info.std)
    model.load_state_dict(load_checkpoint(tmp_path / "runs" / summary["run_id"] / "last.pt", "cpu")["model"])
    torch.manual_seed(config.seed + 7919)  # the evaluation's seed
    robust = pgd_robust(model, splits.test_x[:64].float() / 255, splits.test_y[:64], 32 / 255, 3, 2, batch_size=500)
    assert summary["last"]["ra_pgd"] == 100 * int(robust.sum()) / 64
    assert summary["last"]["ra_pgd_aa_subset"] == 100 * int(robust[:16].sum()) / 16


def test_every_run_records_the_versions_of_its_libraries(tmp_path):
    import torch

    import suite

    summary = execute(
        RunConfig(method="standard", **TINY), RunOptions(results_dir=tmp_path, progress=False, wandb="disabled")
    )
    config_json = json.loads((tmp_path / "runs" / summary["run_id"] / "config.json").read_text())
    for protocol in (summary["protocol"], config_json["protocol"]):
        versions = protocol["versions"]
        assert set(versions) == {"torch", "torchvision", "pyautoattack", "suite"}
        assert versions["torch"] == torch.__version__ and versions["suite"].startswith(suite.__version__)


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def suite_cli(*args, cwd):
    """``python -m suite.cli ARGS`` in ``cwd``, importing the suite under test (this checkout's,
    not whichever one is installed)."""
    path = os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "suite.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "SUITE_WANDB": "disabled", "PYTHONPATH": path},
        timeout=300,
    )


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["--method", "fast_bta"],
            "unknown method 'fast_bta' (did you mean 'fast_bat'?); choose one of: standard, fgsm, fast_at",
        ),
        (["--arch", "vgg"], "unknown arch 'vgg'; choose one of: preact_resnet18"),
        (["--inject-beta", "0"], "inject_beta (in /255; omit it for no injection) must be above 0"),
        (["--dropout", "0.1"], "arch 'small_cnn' has no dropout"),
        (["--arch", "wrn16_8", "--dropout", "1"], "dropout must be in [0, 1)"),
        (["--dataset", "mnist"], "unknown dataset 'mnist'; choose one of: cifar10"),
        (["--eps", "0"], "eps must be in (0, 255]"),
        (["--eps", "256"], "eps must be in (0, 255]"),
        (["--train-points", "100000"], "lower --train-points to at most 54000"),
        (["--method", "fast_at", "--lmbda", "3"], "method 'fast_at' has no hyperparameter lmbda"),
        (["--dataset", "cifar10", "--no-download"], "CIFAR-10"),
        (["--lmbda", "-1"], "fast_bat hyperparameter lmbda must be above 0, got -1"),
        (["--lmbda", "0"], "fast_bat hyperparameter lmbda must be above 0, got 0"),
        (["--ll-step", "nan"], "fast_bat hyperparameter ll_step must be finite, got nan"),
        (["--lr", "nan"], "lr must be finite, got nan"),
        (["--lr", "-0.1"], "lr must be above 0, got -0.1"),
        (["--eps", "inf"], "eps must be finite, got inf"),
        (["--seed", "-1"], "seed must be at least 0, got -1"),
        (["--aa-points", "-5"], "aa_points (0: off) must be at least 0, got -5"),
        (["--method", "pgd", "--steps", "0"], "pgd hyperparameter steps must be at least 1, got 0"),
        (["--method", "pgd", "--alpha", "-2"], "pgd hyperparameter alpha (in 1/255) must be above 0, got -2"),
        (["--method", "fast_at_ga", "--coef", "inf"], "fast_at_ga hyperparameter coef must be finite, got inf"),
    ],
)
def test_bad_input_exits_with_one_clear_line_and_writes_nothing(args, message, tmp_path):
    result = suite_cli(
        "run",
        "--results-dir",
        str(tmp_path / "results"),
        "--data-dir",
        str(tmp_path / "data"),
        "--epochs",
        "1",
        *args,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "results").exists()
