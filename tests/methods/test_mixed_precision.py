"""The "mixed" precision: bf16 autocast for the first-order passes, float32 for the second-order term."""

import pytest
import torch
import torch.nn.functional as F

from suite.engine.device import training_autocast, uses_tf32
from suite.errors import SuiteError
from suite.methods import fast_at_ga, resolve_hparams
from suite.methods.perturbation import project
from suite.models.second_order import float32_second_order
from tests.conftest import small_cnn_problem

EPS = 8 / 255
COEF = resolve_hparams("fast_at_ga", 8)["coef"]


def _conv_dtypes(model):
    dtypes = []
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.register_forward_hook(lambda m, i, out: dtypes.append(out.dtype))
    return dtypes


def _step_gradient(model, x, y, mixed: bool):
    model.zero_grad(set_to_none=True)
    torch.manual_seed(1)  # GradAlign's noise
    with torch.autocast("cpu", dtype=torch.bfloat16), float32_second_order() if mixed else torch.enable_grad():
        fast_at_ga.step(model, x, y, EPS, coef=COEF)
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def _by_hand(model, x, y):
    """The same step by autograd with torch's own layers: the regularizer and both input gradients it
    compares in float32, the training loss under bf16 autocast."""
    params = list(model.parameters())
    xc = x.clone().requires_grad_(True)
    (grad_clean,) = torch.autograd.grad(F.cross_entropy(model(xc), y, reduction="sum"), xc)
    delta = project(1.25 * EPS * grad_clean.sign(), x, EPS)
    torch.manual_seed(1)
    eta = torch.empty_like(x).uniform_(-EPS, EPS)
    xn = (x + eta).requires_grad_(True)
    (grad_noisy,) = torch.autograd.grad(F.cross_entropy(model(xn), y, reduction="sum"), xn, create_graph=True)
    reg = COEF * fast_at_ga.alignment_regularizer(grad_clean, grad_noisy)
    g_reg = torch.autograd.grad(reg, params)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = F.cross_entropy(model(x + delta), y)
    g_loss = torch.autograd.grad(loss, params)
    return torch.cat([(a + b).flatten() for a, b in zip(g_reg, g_loss)])


def test_mixed_precision_computes_gradaligns_second_order_term_in_float32_under_cpu_bf16_autocast():
    model, x, y, _ = small_cnn_problem(torch.float32)
    dtypes = _conv_dtypes(model)
    mixed = _step_gradient(model, x, y, mixed=True)
    convs = len(dtypes) // 3  # the clean pass, the noisy (second-order) pass, the training pass
    assert dtypes == [torch.float32] * (2 * convs) + [torch.bfloat16] * convs
    dtypes.clear()
    plain_bf16 = _step_gradient(model, x, y, mixed=False)
    assert set(dtypes) == {torch.bfloat16}  # without it every pass is bf16
    expected = _by_hand(model, x, y)
    error = lambda g: float((g - expected).norm() / expected.norm())  # noqa: E731
    assert error(mixed) < 1e-5
    assert error(plain_bf16) > 100 * error(mixed)  # the float32 term is what makes the difference


def test_mixed_is_bf16_autocast_without_tf32_on_cuda_and_nothing_on_a_cpu():
    assert uses_tf32("bf16") and not uses_tf32("mixed") and not uses_tf32("fp32")
    with training_autocast(torch.device("cpu"), precision="mixed"):
        assert not torch.is_autocast_enabled("cpu")  # a CPU trains in float32
    with pytest.raises(SuiteError, match="unknown precision 'fp16'"):
        training_autocast(torch.device("cpu"), precision="fp16")
