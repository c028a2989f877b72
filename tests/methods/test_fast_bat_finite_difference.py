"""Fast-BAT's finite-difference correction: equal to the exact one in float64, off by default."""

from __future__ import annotations

import math

import pytest
import torch

from suite.errors import SuiteError
from suite.methods import fast_bat, resolve_hparams
from tests.conftest import SMALL_CNN_EPS, small_cnn_problem

EPS = SMALL_CNN_EPS


def _gradient(model, x, y, z, implicit, lmbda):
    model.zero_grad(set_to_none=True)
    fast_bat.implicit_step(model, x, y, z, EPS, a=5000 / 255, lmbda=lmbda, implicit=implicit)
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def test_finite_difference_correction_matches_the_exact_one_in_float64():
    """In float64 the step is small enough to cross no ReLU kink: the forward difference converges."""
    model, x, y, z = small_cnn_problem(torch.float64)
    plain = _gradient(model, x, y, z, "exact", math.inf)
    exact = _gradient(model, x, y, z, "exact", 1.0)
    approx = _gradient(model, x, y, z, "finite_diff", 1.0)
    correction = exact - plain
    assert correction.norm() > 1e-3 * exact.norm(), "the correction must not be negligible here"
    assert (approx - exact).norm() < 1e-4 * correction.norm()


def test_finite_difference_mode_is_the_default_off_and_selectable():
    assert fast_bat.defaults(8)["implicit"] == "exact"
    hp = resolve_hparams("fast_bat", 8, {"implicit": "finite_diff"})
    model, x, y, _ = small_cnn_problem(torch.float32)
    loss, logits = fast_bat.step(model, x, y, EPS, **hp)
    assert torch.isfinite(loss) and logits.shape == (8, 10)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_unknown_implicit_mode_is_refused():
    model, x, y, z = small_cnn_problem(torch.float32)
    with pytest.raises(SuiteError, match="implicit"):
        fast_bat.implicit_step(model, x, y, z, EPS, a=0.1, lmbda=1.0, implicit="nope")
