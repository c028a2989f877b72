"""``synthetic_cifar10``: CIFAR-10's shape and size from a seed, learnable, always present, never CIFAR-10."""

import json

import pandas as pd
import pytest
import torch

from suite.cli import main
from suite.data import DATASETS, load_splits
from suite.data import synthetic as syn
from suite.data.prefetch import ensure_data
from suite.report import tables


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    return load_splits("synthetic_cifar10", tmp_path_factory.mktemp("no_files"), download=False)


def test_it_has_cifar10s_shape_size_and_split_and_needs_no_files(splits, tmp_path):
    info = splits.info
    cifar = DATASETS["cifar10"]
    shape = (info.in_channels, info.num_classes, info.image_size, info.crop_padding, info.flip)
    assert shape == (cifar.in_channels, cifar.num_classes, cifar.image_size, cifar.crop_padding, cifar.flip)
    assert (len(splits.train_x), len(splits.val_x), len(splits.test_x)) == (45_000, 5_000, 10_000)
    assert splits.train_x.dtype == torch.uint8 and tuple(splits.train_x.shape[1:]) == (3, 32, 32)
    train_labels = torch.cat([splits.train_y, splits.val_y])
    assert torch.bincount(train_labels).tolist() == [5000] * 10  # balanced, as CIFAR-10
    assert torch.bincount(splits.test_y).tolist() == [1000] * 10
    assert not list(tmp_path.iterdir())  # nothing read or written


def test_its_normalisation_constants_are_its_own_training_images(splits):
    x = torch.cat([splits.train_x, splits.val_x]).float() / 255
    torch.testing.assert_close(x.mean((0, 2, 3)), torch.tensor(splits.info.mean), atol=1e-3, rtol=0)
    torch.testing.assert_close(x.std((0, 2, 3)), torch.tensor(splits.info.std), atol=1e-3, rtol=0)


def test_it_is_generated_from_its_seed_and_test_images_are_new_draws():
    a, b = syn.generate(300, seed=0, split_seed=1), syn.generate(300, seed=0, split_seed=1)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    other = syn.generate(300, seed=0, split_seed=2)
    assert not torch.equal(a[0], other[0])
    assert not torch.equal(syn.prototypes(0)[0], syn.prototypes(1)[0])
    train, _, test, _ = syn._splits(0)
    assert not torch.equal(train[:100], test[:100])


def test_a_class_is_its_shape_and_texture_not_a_template(splits):
    """Images of one class differ (several prototypes and nuisance), and class means differ more
    than the pixel noise: the labels carry structure a network can learn."""
    x, y = splits.train_x.float() / 255, splits.train_y
    means = torch.stack([x[y == c].mean(0) for c in range(10)])
    spread_within = torch.stack([x[y == c].std(0).mean() for c in range(10)]).mean()
    spread_between = means.std(0).mean()
    assert 0.03 < spread_between < spread_within  # structured, yet far from separable by a template


def test_a_small_cnn_learns_it_on_a_cpu_and_pgd_breaks_part_of_what_it_learns(tmp_path):
    from suite.config import RunConfig, RunOptions
    from suite.engine import execute

    config = RunConfig(
        method="fast_at",
        dataset="synthetic_cifar10",
        arch="small_cnn",
        epochs=3,
        lr=0.1,
        train_points=6144,
        val_points=256,
        test_points=256,
        aa_points=0,
        co_points=0,
        pgd_steps=5,
        pgd_restarts=1,
        val_pgd_steps=3,
    )
    options = RunOptions(results_dir=tmp_path / "results", device="cpu", progress=False, wandb="disabled")
    summary = execute(config, options)
    rows = [json.loads(line) for line in (tmp_path / "results" / "runs" / summary["run_id"] / "metrics.jsonl").open()]
    clean = [r["val_clean_acc"] for r in rows]
    assert clean == sorted(clean) and clean[-1] > clean[0] + 20  # rises epoch by epoch
    best = summary["best"]
    assert best["sa"] > 40  # chance: 10
    assert 10 < best["ra_pgd"] < best["sa"] - 10  # robust accuracy well below clean accuracy


def test_it_is_always_ready_for_prefetch_and_data_download(tmp_path, capsys):
    ensure_data("synthetic_cifar10", tmp_path / "data", download=False)
    assert main(["data", "download", "synthetic_cifar10", "--data-dir", str(tmp_path / "data")]) == 0
    assert "synthetic_cifar10: ready" in capsys.readouterr().out
    assert not (tmp_path / "data").exists()  # no lock file, no download folder


def _paper_protocol_summary(dataset: str) -> pd.DataFrame:
    """Summary rows of every paper cell with the paper's own protocol and numbers, on ``dataset``."""
    paper = tables.paper_table()
    rows = []
    for cell in paper.to_dict("records"):
        row = {
            "dataset": dataset,
            "arch": "preact_resnet18",
            "method": cell["method"],
            "eps": float(cell["eps"]),
            "variant": "",
            "n": 10,
            "epochs": "20",
            "pgd": "PGD-50-10",
            "test_points": "all",
            "aa_points": "10000",
            "epoch_seconds_mean": 1.0,
            "epoch_seconds_std": 0.0,
        }
        for metric in tables.METRICS:
            row[f"{metric}_mean"], row[f"{metric}_std"] = cell[f"{metric}_mean"], cell[f"{metric}_std"]
        rows.append(row)
    return pd.DataFrame(rows)


def test_reports_never_compare_it_with_the_papers_cifar10_cells():
    """The paper comparison matches the dataset ``cifar10`` exactly: the same figures on
    synthetic_cifar10 get no verdict, and the row says why."""
    real = tables.comparison_table(_paper_protocol_summary("cifar10"))
    assert real["within_spread"].eq(True).all()  # the control: the paper's numbers match the paper
    fake = tables.comparison_table(_paper_protocol_summary("synthetic_cifar10"))
    assert len(fake) == len(real) and fake["within_spread"].isna().all()
    assert fake["differs"].str.contains("dataset synthetic_cifar10 (paper: cifar10)", regex=False).all()
    layout = tables.table1(_paper_protocol_summary("synthetic_cifar10"))
    verdicts = layout[[c for c in layout.columns if c.endswith("vs paper")]].to_numpy().ravel()
    assert all(v.startswith("not compared: dataset synthetic_cifar10") or v == "not in the paper" for v in verdicts)
    assert set(layout["dataset"]) == {"synthetic_cifar10"}
