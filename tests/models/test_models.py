"""Tests for suite.models: shapes, normalization wrapper, errors, double backward."""

import contextlib
import math

import pytest
import torch

from suite.errors import SuiteError
from suite.models import ARCHS, build_model
from suite.models.normalize import Normalized
from suite.models.second_order import second_order

EXPECTED_ARCHS = {
    "preact_resnet18",
    "preact_resnet18_gradalign",
    "preact_resnet18_preact_shortcut",
    "wrn16_8",
    "resnet18",
    "resnet50",
    "small_cnn",
}
INPUTS = [(1, 28, 28, 10), (3, 32, 32, 100), (3, 64, 64, 200)]


def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def nonzero_head(model):
    """``model`` with its zero-initialised linear layers (WRN-16-8's, as the reference's) drawn at
    random: a zero classifier makes every logit 0 and every input gradient vanish."""
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and not module.weight.any():
            torch.nn.init.normal_(module.weight, std=0.1)
    return model


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
    grad_norm = sum((g**2).sum() for g in grads)
    second = torch.autograd.grad(grad_norm, params, allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in second)
    assert all(g is None or torch.isfinite(g).all() for g in second)


@pytest.mark.parametrize(
    "arch", ["preact_resnet18", "preact_resnet18_gradalign", "preact_resnet18_preact_shortcut", "wrn16_8", "small_cnn"]
)
def test_channels_last(arch):
    model = nonzero_head(build_model(arch, 3, 10, [0.5] * 3, [0.5] * 3)).eval()
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
    model = nonzero_head(build_model(arch, 3, 10, [0.5] * 3, [0.25] * 3)).double().train()
    x, v = torch.rand(4, 3, 16, 16, dtype=torch.float64), torch.randn(4, 3, 16, 16, dtype=torch.float64)
    y = torch.tensor([1, 3, 5, 7])
    params = [p for p in model.parameters() if p.requires_grad]

    def mixed_second_derivative(context):
        xg = x.clone().requires_grad_(True)
        torch.manual_seed(1)  # the same dropout masks (WRN-16-8) in both passes
        with context:
            loss = torch.nn.functional.cross_entropy(model(xg), y)
        (gx,) = torch.autograd.grad(loss, xg, create_graph=True)
        return torch.autograd.grad((gx * v).sum(), params)

    for ours, torchs in zip(
        mixed_second_derivative(second_order()), mixed_second_derivative(contextlib.nullcontext()), strict=True
    ):
        torch.testing.assert_close(ours, torchs, rtol=1e-8, atol=1e-10)


# -- the reference implementation's networks, pinned by suite/reference/arch_fixture/ -----------

# the Fast-BAT reference's networks, and GradAlign's (its fixture computed with its own models.py)
REFERENCE_ARCHS = ["preact_resnet18", "preact_resnet18_gradalign", "wrn16_8", "resnet18", "resnet50"]
FIXTURE_MEAN, FIXTURE_STD = (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)


def reference_fixture(arch):
    """(parameter shapes in order, 4 x 10 train-mode logits) of the reference's ``arch``."""
    import csv
    from importlib import resources

    shapes, logits = [], []
    with (resources.files("suite") / "reference" / "arch_fixture" / f"{arch}.csv").open() as handle:
        for row in csv.reader(handle):
            if row and row[0] == "param":
                shapes.append(tuple(int(d) for d in row[1:]))
            elif row and row[0] == "logits":
                logits.append([float(v) for v in row[1:]])
    return shapes, torch.tensor(logits, dtype=torch.float64)


def fixture_model(arch):
    """``arch`` (dropout 0) in float64 with the fixture's weights: tensor k with n elements and
    shape s is sin(0.7 arange(n) + k), divided by sqrt(n / s[0]) for 2+ dimensions, else 1 + 0.1 w."""
    model = build_model(arch, 3, 10, FIXTURE_MEAN, FIXTURE_STD, dropout=0.0 if arch == "wrn16_8" else None)
    model = model.double().train()
    with torch.no_grad():
        for k, p in enumerate(model.parameters()):
            w = torch.sin(0.7 * torch.arange(p.numel(), dtype=torch.float64) + k).reshape(p.shape)
            p.copy_(w / math.sqrt(p.numel() / p.shape[0]) if p.dim() >= 2 else 1 + 0.1 * w)
    return model


def fixture_input():
    return ((torch.sin(0.3 * torch.arange(4 * 3 * 32 * 32, dtype=torch.float64)) + 1) / 2).reshape(4, 3, 32, 32)


def test_every_reference_arch_has_a_fixture_and_only_those():
    from importlib import resources

    folder = resources.files("suite") / "reference" / "arch_fixture"
    assert sorted(p.name[:-4] for p in folder.iterdir() if p.name.endswith(".csv")) == sorted(REFERENCE_ARCHS)


@pytest.mark.parametrize("arch", REFERENCE_ARCHS)
def test_network_is_the_reference_implementations(arch):
    shapes, logits = reference_fixture(arch)
    model = fixture_model(arch)
    assert [tuple(p.shape) for p in model.parameters()] == shapes
    with torch.no_grad():
        out = model(fixture_input())
    torch.testing.assert_close(out, logits, rtol=0, atol=1e-6)


def test_the_preactivated_shortcut_variant_has_the_reference_shapes_but_another_function():
    shapes, logits = reference_fixture("preact_resnet18")
    model = fixture_model("preact_resnet18_preact_shortcut")
    assert [tuple(p.shape) for p in model.parameters()] == shapes
    with torch.no_grad():
        gap = (model(fixture_input()) - logits).abs().max()
    assert gap > 1e-3


def test_gradaligns_network_differs_from_the_papers_only_by_the_final_batch_norm():
    papers, gradaligns = (reference_fixture(arch)[0] for arch in ("preact_resnet18", "preact_resnet18_gradalign"))
    assert papers[:-4] == gradaligns[:-2] and papers[-2:] == gradaligns[-2:]  # [..., bn.w, bn.b, linear.w, linear.b]
    assert papers[-4:-2] == [(512,), (512,)]


def test_the_old_name_of_the_preactivated_shortcut_variant_is_refused_with_its_new_name():
    with pytest.raises(SuiteError, match="now called 'preact_resnet18_preact_shortcut'"):
        build_model("preact_resnet18_wong", 3, 10, FIXTURE_MEAN, FIXTURE_STD)


def test_wrn_dropout_defaults_to_the_references_and_acts_in_training_only():
    model = build_model("wrn16_8", 3, 10, [0.5] * 3, [0.25] * 3)
    units = [m for m in model.modules() if hasattr(m, "dropout")]
    assert len(units) == 9 and {m.dropout for m in units} == {0.1}
    nonzero_head(model)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert not torch.equal(model.train()(x), model(x))
        assert torch.equal(model.eval()(x), model(x))
    off = build_model("wrn16_8", 3, 10, [0.5] * 3, [0.25] * 3, dropout=0.0)
    assert {m.dropout for m in off.modules() if hasattr(m, "dropout")} == {0.0}


def test_dropout_only_for_networks_that_have_it():
    from suite.models import resolve_dropout

    assert resolve_dropout("wrn16_8", None) == 0.1 and resolve_dropout("wrn16_8", 0.3) == 0.3
    assert resolve_dropout("resnet18", None) is None
    with pytest.raises(SuiteError, match="no dropout"):
        build_model("resnet18", 3, 10, [0.5] * 3, [0.25] * 3, dropout=0.1)
    with pytest.raises(SuiteError, match=r"\[0, 1\)"):
        resolve_dropout("wrn16_8", 1.0)
