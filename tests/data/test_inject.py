"""Tests for --inject-beta: the class-wise DCT patterns of suite/data/inject.py, their
injection into every split of a run, and the run id / validation of the setting."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.fft
import torch

from suite.config import RunConfig, RunOptions
from suite.config.run_config import digest
from suite.data import DATASETS, Splits
from suite.data.inject import carriers, inject, zigzag
from suite.engine import trainer as train
from suite.errors import SuiteError


def test_zigzag_is_the_jpeg_order():
    assert zigzag(3, 3) == [(0, 0), (0, 1), (1, 0), (2, 0), (1, 1), (0, 2), (1, 2), (2, 1), (2, 2)]
    assert sorted(zigzag(4, 6)) == [(i, j) for i in range(4) for j in range(6)]


@pytest.mark.parametrize("size", [(28, 28), (32, 32)])
def test_each_pattern_is_the_sign_of_an_inverse_dct_of_one_low_frequency(size):
    v = carriers(10, 1, *size)
    assert v.shape == (10, 1, *size) and set(v.unique().tolist()) == {-1.0, 1.0}
    for cls, (u, w) in enumerate(zigzag(*size)[1:11]):
        coefficients = np.zeros(size)
        coefficients[u, w] = 1.0
        image = scipy.fft.idctn(coefficients, norm="ortho")  # an independent inverse DCT
        clear = np.abs(image) > 1e-9
        assert np.array_equal(np.sign(image[clear]), v[cls, 0].numpy()[clear])
    # ten different patterns, linearly independent: each class is recognisable from its pattern alone
    assert torch.linalg.matrix_rank(v.reshape(10, -1)) == 10


def test_patterns_repeat_over_channels():
    v = carriers(4, 3, 32, 32)
    assert torch.equal(v[:, 0], v[:, 1]) and torch.equal(v[:, 0], v[:, 2])


def test_inject_adds_beta_times_the_class_pattern_and_clips():
    generator = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (40, 1, 28, 28), dtype=torch.uint8, generator=generator)
    y = torch.arange(40) % 10
    out = inject(x, y, 16, 10)
    assert out.dtype == torch.uint8 and out.shape == x.shape
    expected = (x.int() + 16 * carriers(10, 1, 28, 28)[y].int()).clamp(0, 255)
    assert torch.equal(out.int(), expected)
    assert out.int().min() == 0 and out.int().max() == 255  # clipped, not wrapped around
    # a fractional beta rounds per pixel to the nearest level
    assert torch.equal(
        inject(torch.full((1, 1, 28, 28), 100, dtype=torch.uint8), torch.tensor([0]), 2.6, 10).int(),
        (100 + 3 * carriers(10, 1, 28, 28)[0:1]).int(),
    )


def test_inject_beta_is_hashed_only_when_set_and_validated():
    plain = RunConfig(method="fast_at").resolved()
    before = {k: v for k, v in plain.to_dict().items() if k != "inject_beta"}  # a record from before the field
    assert plain.run_id == f"{plain.name}-{digest(before)}"  # old records keep their ids
    injected = dataclasses.replace(plain, inject_beta=16).resolved()
    assert injected.run_id != plain.run_id
    assert dataclasses.replace(plain, inject_beta=16.0).resolved().run_id == injected.run_id  # 16 and 16.0: one run
    for bad in (0, -1, 300, float("nan")):
        with pytest.raises(SuiteError, match="inject_beta"):
            RunConfig(inject_beta=bad).resolved()


def test_run_data_injects_every_split(monkeypatch, tmp_path):
    info = DATASETS["fashion_mnist"]
    generator = torch.Generator().manual_seed(1)
    make = lambda n: (
        torch.randint(60, 190, (n, 1, 28, 28), dtype=torch.uint8, generator=generator),  # noqa: E731
        torch.arange(n) % 10,
    )
    (tx, ty), (vx, vy), (sx, sy) = make(30), make(20), make(20)
    monkeypatch.setattr(train, "load_splits", lambda *a, **k: Splits(info, tx, ty, vx, vy, sx, sy))
    config = RunConfig(
        method="fast_at",
        inject_beta=8,
        train_points=30,
        val_points=20,
        test_points=20,
        batch_size=10,
        co_points=10,
        aa_points=0,
    ).resolved()
    data = train.RunData.load(config, RunOptions(data_dir=tmp_path), torch.device("cpu"))
    v = carriers(10, 1, 28, 28)
    assert torch.equal(data.train_x.int(), tx.int() + 8 * v[ty].int())  # uint8, as the loader wants
    assert torch.allclose(data.val_x, (vx.float() + 8 * v[vy]) / 255)
    assert torch.allclose(data.test_x, (sx.float() + 8 * v[sy]) / 255)
    plain = train.RunData.load(
        dataclasses.replace(config, inject_beta=None), RunOptions(data_dir=tmp_path), torch.device("cpu")
    )
    assert torch.equal(plain.train_x, tx)
