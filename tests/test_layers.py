"""suite.models.layers.Conv2d: torch's convolution with a faster double backward; same math."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from suite.models import layers
from suite.models.layers import Conv2d, conv2d

CASES = [  # stride, padding, dilation, groups, bias, kernel
    (1, 1, 1, 1, False, 3),
    (2, 1, 1, 1, False, 3),
    (2, 0, 1, 1, True, 1),
    (1, 2, 2, 2, True, 3),
    (3, 1, 1, 1, True, 3),        # output padding needed to give back the input size
]


@pytest.mark.parametrize("stride,padding,dilation,groups,bias,kernel", CASES)
def test_first_and_second_derivatives_pass_gradcheck(stride, padding, dilation, groups, bias, kernel):
    torch.manual_seed(0)
    x = torch.randn(2, 4, 8, 7, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, 4 // groups, kernel, kernel, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, dtype=torch.float64, requires_grad=True) if bias else None
    inputs = (x, w) if b is None else (x, w, b)

    def f(*t):
        return conv2d(t[0], t[1], t[2] if len(t) > 2 else None, stride, padding, dilation, groups)

    assert torch.autograd.gradcheck(f, inputs)
    assert torch.autograd.gradgradcheck(f, inputs)


def _double_backward(conv, x, v):
    """grad_theta < grad_x CE(conv(x)), v >: the shape of Fast-BAT's and GradAlign's correction."""
    x = x.clone().requires_grad_(True)
    loss = F.cross_entropy(conv(x).flatten(1), torch.arange(x.shape[0]) % 10)
    (gx,) = torch.autograd.grad(loss, x, create_graph=True)
    return torch.autograd.grad((gx * v).sum(), list(conv.parameters()))


def test_module_matches_torch_conv2d_in_value_gradient_and_double_backward():
    torch.manual_seed(0)
    ours = Conv2d(3, 5, 3, stride=2, padding=1, bias=True).double()
    native = nn.Conv2d(3, 5, 3, stride=2, padding=1, bias=True).double()
    native.load_state_dict(ours.state_dict())                     # the same parameters and state dict
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
    torch.autograd.grad(conv(x).square().sum(), x)                  # an attack's gradient
    conv(x).square().sum().backward(inputs=list(conv.parameters()))  # a training step's
    assert masks == [(True, False), (False, True)]
    assert x.grad is None and conv.weight.grad is not None


def test_without_autograd_it_is_torch_conv2d():
    conv = Conv2d(3, 4, 3, padding=1)
    x = torch.rand(2, 3, 6, 6)
    with torch.no_grad():
        out = conv(x)
    assert out.grad_fn is None
    torch.testing.assert_close(out, F.conv2d(x, conv.weight, conv.bias, padding=1))
