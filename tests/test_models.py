"""Tests for suite.models: shapes, normalization wrapper, errors, double backward."""
import contextlib

import pytest
import torch

from suite.errors import SuiteError
from suite.models import ARCHS, build_model
from suite.models.layers import second_order
from suite.models.normalize import Normalized

EXPECTED_ARCHS = {"preact_resnet18", "wrn16_8", "resnet18", "resnet50", "small_cnn"}
INPUTS = [(1, 28, 28, 10), (3, 32, 32, 100), (3, 64, 64, 200)]


def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_arch_names():
    assert set(ARCHS) == EXPECTED_ARCHS


@pytest.mark.parametrize("arch", sorted(EXPECTED_ARCHS - {"resnet50"}))
@pytest.mark.parametrize("channels,size,size2,num_classes", INPUTS)
def test_output_shape(arch, channels, size, size2, num_classes):
    torch.manual_seed(0)
    model = build_model(arch, channels, num_classes, [0.5] * channels, [0.25] * channels)
    x = torch.rand(2, channels, size, size2)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, num_classes)
    assert torch.isfinite(out).all()


def test_resnet50_output_shape():
    model = build_model("resnet50", 3, 10, [0.5] * 3, [0.25] * 3).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 10)


def test_normalization_wrapper_is_exact():
    torch.manual_seed(0)
    mean, std = [0.4914, 0.4822, 0.4465], [0.2471, 0.2435, 0.2616]
    model = build_model("small_cnn", 3, 10, mean, std).eval()
    assert isinstance(model, Normalized)
    assert model.mean.shape == (1, 3, 1, 1) and model.std.shape == (1, 3, 1, 1)
    x = torch.rand(2, 3, 32, 32)
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.equal(model(x), model.net((x - m) / s))


def test_unknown_arch_lists_valid_names():
    with pytest.raises(SuiteError) as info:
        build_model("foo", 3, 10, [0.5] * 3, [0.5] * 3)
    msg = str(info.value)
    assert "'foo'" in msg
    for name in EXPECTED_ARCHS:
        assert name in msg


def test_mean_std_length_mismatch_raises():
    with pytest.raises(SuiteError):
        build_model("small_cnn", 1, 10, [0.5] * 3, [0.5] * 3)


@pytest.mark.parametrize("arch", ["preact_resnet18", "small_cnn"])
def test_double_backward(arch):
    torch.manual_seed(0)
    channels = 1 if arch == "small_cnn" else 3
    model = build_model(arch, channels, 10, [0.5] * channels, [0.5] * channels).train()
    x = torch.rand(2, channels, 32, 32)
    y = torch.tensor([1, 3])
    params = [p for p in model.parameters() if p.requires_grad]
    loss = torch.nn.functional.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    grad_norm = sum((g ** 2).sum() for g in grads)
    second = torch.autograd.grad(grad_norm, params, allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in second)
    assert all(g is None or torch.isfinite(g).all() for g in second)


@pytest.mark.parametrize("arch", ["preact_resnet18", "small_cnn"])
def test_channels_last(arch):
    model = build_model(arch, 3, 10, [0.5] * 3, [0.5] * 3).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
        model = model.to(memory_format=torch.channels_last)
        out = model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_preact_resnet18_param_count():
    n = _n_params(ARCHS["preact_resnet18"](3, 10))
    assert abs(n - 11.17e6) / 11.17e6 < 0.01


def test_small_cnn_is_small():
    n = _n_params(ARCHS["small_cnn"](1, 10))
    assert 100_000 <= n <= 200_000


@pytest.mark.parametrize("arch", sorted(EXPECTED_ARCHS))
def test_every_arch_gives_torchs_second_derivatives_through_the_suites_layers(arch):
    torch.manual_seed(0)
    model = build_model(arch, 3, 10, [0.5] * 3, [0.25] * 3).double().train()
    x, v = torch.rand(4, 3, 16, 16, dtype=torch.float64), torch.randn(4, 3, 16, 16, dtype=torch.float64)
    y = torch.tensor([1, 3, 5, 7])
    params = [p for p in model.parameters() if p.requires_grad]

    def mixed_second_derivative(context):
        xg = x.clone().requires_grad_(True)
        with context:
            loss = torch.nn.functional.cross_entropy(model(xg), y)
        (gx,) = torch.autograd.grad(loss, xg, create_graph=True)
        return torch.autograd.grad((gx * v).sum(), params)

    for ours, torchs in zip(mixed_second_derivative(second_order()), mixed_second_derivative(contextlib.nullcontext()),
                            strict=True):
        torch.testing.assert_close(ours, torchs, rtol=1e-8, atol=1e-10)
