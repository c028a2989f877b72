"""suite.models.second_order: torch's convolution and batch norm with a faster double backward; same math."""

import contextlib

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from suite.models import second_order as layers
from suite.models.second_order import BatchNorm2d, Conv2d, MaxPool2d, conv2d, second_order

CASES = [  # stride, padding, dilation, groups, bias, kernel
    (1, 1, 1, 1, False, 3),
    (2, 1, 1, 1, False, 3),
    (2, 0, 1, 1, True, 1),
    (1, 2, 2, 2, True, 3),
    (3, 1, 1, 1, True, 3),  # output padding needed to give back the input size
]


@pytest.mark.parametrize("stride,padding,dilation,groups,bias,kernel", CASES)
def test_first_and_second_derivatives_pass_gradcheck(stride, padding, dilation, groups, bias, kernel):
    torch.manual_seed(0)
    x = torch.randn(2, 4, 8, 7, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, 4 // groups, kernel, kernel, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, dtype=torch.float64, requires_grad=True) if bias else None
    inputs = (x, w) if b is None else (x, w, b)

    def f(*t):
        with second_order():
            return conv2d(t[0], t[1], t[2] if len(t) > 2 else None, stride, padding, dilation, groups)

    assert torch.autograd.gradcheck(f, inputs)
    assert torch.autograd.gradgradcheck(f, inputs)


def _double_backward(conv, x, v):
    """grad_theta < grad_x CE(conv(x)), v >: the shape of Fast-BAT's and GradAlign's correction."""
    x = x.clone().requires_grad_(True)
    with second_order():
        loss = F.cross_entropy(conv(x).flatten(1), torch.arange(x.shape[0]) % 10)
    (gx,) = torch.autograd.grad(loss, x, create_graph=True)
    return torch.autograd.grad((gx * v).sum(), list(conv.parameters()))


def test_module_matches_torch_conv2d_in_value_gradient_and_double_backward():
    torch.manual_seed(0)
    ours = Conv2d(3, 5, 3, stride=2, padding=1, bias=True).double()
    native = nn.Conv2d(3, 5, 3, stride=2, padding=1, bias=True).double()
    native.load_state_dict(ours.state_dict())  # the same parameters and state dict
    x, v = torch.randn(4, 3, 9, 9, dtype=torch.float64), torch.randn(4, 3, 9, 9, dtype=torch.float64)
    torch.testing.assert_close(ours(x), native(x))
    for a, b in zip(_double_backward(ours, x, v), _double_backward(native, x, v)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_bf16_autocast_computes_in_bf16_and_returns_float32_gradients_close_to_torch():
    torch.manual_seed(0)
    ours = Conv2d(3, 8, 3, padding=1)
    native = nn.Conv2d(3, 8, 3, padding=1)
    native.load_state_dict(ours.state_dict())
    x, v = torch.rand(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert ours(x).dtype == torch.bfloat16
        got, want = _double_backward(ours, x, v), _double_backward(native, x, v)
    for a, b in zip(got, want):
        assert a.dtype == torch.float32
        assert F.cosine_similarity(a.flatten(), b.flatten(), dim=0) > 0.999


def test_an_input_gradient_skips_the_weight_gradient_and_a_training_backward_computes_it(monkeypatch):
    masks = []
    real = layers._backward

    def recording(*args):
        masks.append(args[-1])
        return real(*args)

    monkeypatch.setattr(layers, "_backward", recording)
    conv = Conv2d(3, 4, 3, padding=1)
    x = torch.rand(2, 3, 6, 6, requires_grad=True)
    with second_order():
        torch.autograd.grad(conv(x).square().sum(), x)  # an attack's gradient
        conv(x).square().sum().backward(inputs=list(conv.parameters()))  # a training step's
    assert masks == [(True, False), (False, True)]
    assert x.grad is None and conv.weight.grad is not None


def test_outside_second_order_or_without_autograd_the_layers_are_torchs():
    conv, bn = Conv2d(3, 4, 3, padding=1), BatchNorm2d(4)
    x = torch.rand(2, 3, 6, 6, requires_grad=True)
    assert type(bn(conv(x)).grad_fn).__name__ == "NativeBatchNormBackward0"
    assert type(conv(x).grad_fn).__name__ == "ConvolutionBackward0"
    assert type(MaxPool2d(2)(x).grad_fn).__name__ == "MaxPool2DWithIndicesBackward0"
    with second_order():
        assert type(conv(x).grad_fn).__name__ == "_Conv2dBackward"
        assert type(MaxPool2d(2)(x).grad_fn).__name__ == "_MaxPoolBackward"
        assert type(bn(conv(x)).grad_fn).__name__ == "_BatchNormBackward"
        with torch.no_grad():
            out = conv(x)
    assert out.grad_fn is None
    torch.testing.assert_close(out, F.conv2d(x, conv.weight, conv.bias, padding=1))


def _batch_norm_pair(channels=3, momentum=0.1, dtype=torch.float64):
    torch.manual_seed(0)
    ours = BatchNorm2d(channels, momentum=momentum).to(dtype)
    with torch.no_grad():
        ours.weight.uniform_(0.5, 1.5)
        ours.bias.normal_()
    native = nn.BatchNorm2d(channels, momentum=momentum).to(dtype)
    native.load_state_dict(ours.state_dict())
    return ours, native


@pytest.mark.parametrize("channels_last", [False, True])
def test_batch_norm_first_and_second_derivatives_pass_gradcheck(channels_last):
    bn, _ = _batch_norm_pair()
    x = torch.randn(4, 3, 5, 5, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    inputs = (
        x.requires_grad_(True),
        bn.weight.detach().clone().requires_grad_(True),
        bn.bias.detach().clone().requires_grad_(True),
    )

    def f(x, weight, bias):
        with second_order():
            return torch.func.functional_call(bn, {"weight": weight, "bias": bias}, (x,))

    assert torch.autograd.gradcheck(f, inputs)
    assert torch.autograd.gradgradcheck(f, inputs)


def _bn_double_backward(bn, x, v, w):
    """grad of < grad_x <f(x), w>, v > with respect to x and the parameters (all of the hand-derived terms)."""
    x = x.clone().requires_grad_(True)
    with second_order():
        out = bn(x)
    gx, gweight, gbias = torch.autograd.grad((out * w).square().sum(), [x, bn.weight, bn.bias], create_graph=True)
    second = (gx * v).sum() + gweight.square().sum() + (gbias * torch.arange(len(gbias))).sum()
    return torch.autograd.grad(second, [x, bn.weight, bn.bias])


@pytest.mark.parametrize("momentum", [0.1, None])
def test_batch_norm_matches_torch_in_value_running_statistics_and_double_backward(momentum):
    ours, native = _batch_norm_pair(momentum=momentum)
    torch.manual_seed(1)
    for _ in range(3):
        x, v, w = (torch.randn(6, 3, 4, 4, dtype=torch.float64) for _ in range(3))
        for a, b in zip(_bn_double_backward(ours, x, v, w), _bn_double_backward(native, x, v, w)):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)
        torch.testing.assert_close(ours(x), native(x))
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(ours, name), getattr(native, name))
    ours.eval(), native.eval()
    torch.testing.assert_close(ours(x), native(x))


def test_batch_norm_under_bf16_autocast_stays_close_to_torch():
    ours, native = _batch_norm_pair(channels=8, dtype=torch.float32)
    x = torch.randn(4, 8, 6, 6).to(torch.bfloat16)  # what a convolution hands it under autocast
    v, w = torch.randn(4, 8, 6, 6), torch.randn(4, 8, 6, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, want = _bn_double_backward(ours, x, v, w), _bn_double_backward(native, x, v, w)
    for a, b in zip(got, want):
        assert a.dtype == b.dtype
        assert F.cosine_similarity(a.float().flatten(), b.float().flatten(), dim=0) > 0.999


def test_batch_norm_without_create_graph_uses_no_hand_derived_code(monkeypatch):
    ours, native = _batch_norm_pair()
    monkeypatch.setattr(layers._BatchNormBackward, "apply", None)  # would fail if called
    x = torch.randn(4, 3, 5, 5, dtype=torch.float64, requires_grad=True)
    with second_order():
        ours(x).square().sum().backward()
    native(x.detach()).square().sum().backward()
    torch.testing.assert_close(ours.weight.grad, native.weight.grad)


@pytest.mark.parametrize("method", ["fast_bat", "fast_at_ga"])
def test_second_order_methods_differentiate_twice_through_these_layers(method, monkeypatch):
    from suite.methods import get_method, resolve_hparams
    from suite.models import build_model

    calls = []
    real = layers._BatchNormBackward.apply
    monkeypatch.setattr(layers._BatchNormBackward, "apply", lambda *a: calls.append(1) or real(*a))
    torch.manual_seed(0)
    model = build_model("preact_resnet18", 3, 10, [0.5] * 3, [0.25] * 3)
    x, y = torch.rand(4, 3, 16, 16), torch.randint(0, 10, (4,))
    get_method(method).step(model, x, y, 8 / 255, **resolve_hparams(method, 8))
    assert len(calls) == sum(isinstance(m, BatchNorm2d) for m in model.modules())


@pytest.mark.parametrize("method", ["fast_bat", "fast_at_ga"])
@pytest.mark.parametrize(
    "dtype,layout", [(torch.float64, torch.contiguous_format), (torch.float32, torch.channels_last)]
)
def test_second_order_methods_give_torchs_gradients_on_a_batch_norm_network(method, dtype, layout, monkeypatch):
    import contextlib

    from suite.methods import get_method, resolve_hparams
    from suite.models import build_model

    torch.manual_seed(0)
    model = build_model("preact_resnet18", 3, 10, [0.5] * 3, [0.25] * 3).to(dtype).to(memory_format=layout)
    x = torch.rand(6, 3, 16, 16, dtype=dtype).contiguous(memory_format=layout)
    y = torch.randint(0, 10, (6,))
    hparams = resolve_hparams(method, 8)

    def gradients():
        model.zero_grad(set_to_none=True)
        torch.manual_seed(1)
        get_method(method).step(model, x, y, 8 / 255, **hparams)
        return [p.grad.clone() for p in model.parameters()]

    ours = gradients()
    monkeypatch.setattr(f"suite.methods.{method}.second_order", contextlib.nullcontext)  # torch's own nodes
    torchs = gradients()
    tol = dict(rtol=1e-9, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-3, atol=1e-5)
    for a, b in zip(ours, torchs, strict=True):
        torch.testing.assert_close(a, b, **tol)


def test_second_order_keeps_a_grayscale_first_layer_in_channels_last():
    # A one-input-channel weight's channels_last strides are ambiguous; view_as used to recompute
    # them as contiguous, and the layer's output (and every layer after it) left the layout
    torch.manual_seed(0)
    conv = Conv2d(1, 8, 3, padding=1).to(memory_format=torch.channels_last)
    x = torch.rand(2, 1, 8, 8).contiguous(memory_format=torch.channels_last)
    with second_order():
        out = conv(x)
    assert out.grad_fn is not None and type(out.grad_fn).__name__ == "_Conv2dBackward"
    assert out.is_contiguous(memory_format=torch.channels_last) and not out.is_contiguous()
    torch.testing.assert_close(out, F.conv2d(x, conv.weight, conv.bias, padding=1))


POOLS = [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=2, ceil_mode=True)]


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("conf", POOLS)
def test_max_pool_first_and_second_derivatives_pass_gradcheck(conf, layout):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 7, 7, dtype=torch.float64).contiguous(memory_format=layout).requires_grad_()
    pool = MaxPool2d(**conf)

    def f(t):
        with second_order():
            return pool(t)

    assert torch.autograd.gradcheck(f, (x,))
    assert torch.autograd.gradgradcheck(f, (x,))


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_max_pool_double_backward_matches_torchs_and_keeps_the_layout(layout):
    torch.manual_seed(0)
    x = torch.randn(4, 6, 8, 8, dtype=torch.float64).contiguous(memory_format=layout)
    w = torch.randn(4, 6, 4, 4, dtype=torch.float64).contiguous(memory_format=layout)
    v = torch.randn_like(x)

    def second(pool, wrap):
        xg, wg = x.clone().requires_grad_(), w.clone().requires_grad_()
        with wrap():
            (gx,) = torch.autograd.grad((pool(xg) * wg).square().sum(), xg, create_graph=True)
        return gx, torch.autograd.grad((gx * v).sum(), wg)[0]

    gx, gw = second(MaxPool2d(2), second_order)
    gx_torch, gw_torch = second(nn.MaxPool2d(2), contextlib.nullcontext)
    assert type(gx.grad_fn).__name__ == "_MaxPoolBackwardBackward"
    torch.testing.assert_close(gx, gx_torch, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gw, gw_torch, rtol=1e-12, atol=1e-12)
    if layout == torch.channels_last:
        assert gx.is_contiguous(memory_format=layout) and not gx.is_contiguous()


@pytest.mark.parametrize("method", ["fast_bat", "fast_at_ga"])
def test_second_order_methods_give_torchs_gradients_on_the_grayscale_small_cnn(method, monkeypatch):
    from suite.methods import get_method, resolve_hparams
    from suite.models import build_model

    torch.manual_seed(0)
    model = build_model("small_cnn", 1, 10, [0.5], [0.25]).to(torch.float64).to(memory_format=torch.channels_last)
    x = torch.rand(6, 1, 28, 28, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (6,))

    def gradients():
        model.zero_grad(set_to_none=True)
        torch.manual_seed(1)
        get_method(method).step(model, x, y, 8 / 255, **resolve_hparams(method, 8))
        return [p.grad.clone() for p in model.parameters()]

    ours = gradients()
    monkeypatch.setattr(f"suite.methods.{method}.second_order", contextlib.nullcontext)  # torch's own nodes
    for a, b in zip(ours, gradients(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
