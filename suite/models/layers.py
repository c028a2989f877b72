"""Layers whose second derivatives are cheap: what Fast-BAT's and GradAlign's double backward needs.

Fast-BAT's implicit-gradient term and GradAlign's regularizer differentiate an input gradient
with respect to the parameters (a double backward). For a convolution, torch differentiates its
own backward node with a generic routine that gets the weight's part by a convolution over
swapped batch and channel axes, a slow path on the CPU. :class:`Conv2d` writes the input
gradient of its backward as the transposed convolution it is, so the double backward takes the
ordinary, optimized weight-gradient kernel (about 1.6x faster for a 64-channel 3x3 layer on a
CPU). A plain backward (no ``create_graph``) is the same single fused call torch makes, and,
like torch's own node, leaves out the gradients the pass does not reach (an attack's input
gradient computes no weight gradient).

It is a drop-in :class:`torch.nn.Conv2d` (same parameters, same state dict). Under autocast the
inputs are cast to autocast's dtype before it, as autocast casts them for torch's convolution.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Conv2d(nn.Conv2d):
    def _conv_forward(self, input, weight, bias):
        if self.padding_mode != "zeros" or isinstance(self.padding, str):
            return super()._conv_forward(input, weight, bias)
        return conv2d(input, weight, bias, self.stride, self.padding, self.dilation, self.groups)


def conv2d(x, weight, bias=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    """``F.conv2d`` with a double backward through the optimized kernels."""
    tracked = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, weight, bias))
    if not tracked or torch.compiler.is_compiling():   # compiled graphs get torch's own backward
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)
    kind = x.device.type
    if torch.is_autocast_enabled(kind):   # cast as autocast does: outside, where autograd records the casts
        dtype = torch.get_autocast_dtype(kind)
        x, weight = x.to(dtype), weight.to(dtype)
        bias = None if bias is None else bias.to(dtype)
    x, weight, bias = _graph_node(x), _graph_node(weight), _graph_node(bias)
    return _Conv2d.apply(x, weight, bias, _pair(stride), _pair(padding), _pair(dilation), groups)


class _Conv2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups):
        ctx.save_for_backward(x, weight)
        ctx.conf = (stride, padding, dilation, groups)
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conf
        need_x, need_w, need_b = _wanted(ctx, 3)
        grad_out = grad_out.to(x.dtype)
        grad_x = grad_w = grad_b = None
        if torch.is_grad_enabled():                    # create_graph: build the gradient from differentiable ops
            if need_x:
                grad_x = F.conv_transpose2d(grad_out, weight, None, stride, padding,
                                            _output_padding(x, grad_out, weight, stride, padding, dilation),
                                            groups, dilation)
            if need_w:
                grad_w = _backward(grad_out, x, weight, stride, padding, dilation, groups, (False, True))[1]
        elif need_x or need_w:
            grad_x, grad_w, _ = _backward(grad_out, x, weight, stride, padding, dilation, groups, (need_x, need_w))
        if need_b:
            grad_b = grad_out.sum((0, 2, 3))
        return grad_x, grad_w, grad_b, None, None, None, None


def _wanted(ctx, n):
    """Which of the first n inputs this backward pass reaches: ``needs_input_grad`` says only which
    could be (an attack's ``autograd.grad(loss, x)`` wants no weight gradient; torch's own nodes
    skip it, and so do these)."""
    try:
        nodes = [node for node, _ in ctx.next_functions] + [None] * n   # one per tensor input; bias may be None
        return tuple(bool(need and node is not None and torch._C._will_engine_execute_node(node))
                     for need, node in zip(ctx.needs_input_grad[:n], nodes))
    except (AttributeError, RuntimeError):             # private API gone: compute what could be needed
        return ctx.needs_input_grad[:n]


def _graph_node(t):
    """A leaf behind a view: the engine says whether it will run a graph node, but not a leaf's
    under ``autograd.grad``."""
    return t.view_as(t) if t is not None and t.requires_grad and t.grad_fn is None else t


def _backward(grad_out, x, weight, stride, padding, dilation, groups, mask):
    return torch.ops.aten.convolution_backward(grad_out, x, weight, None, stride, padding, dilation,
                                               False, [0, 0], groups, [*mask, False])


def _output_padding(x, grad_out, weight, stride, padding, dilation):
    """What the transposed convolution adds so that its output has the input's spatial size."""
    return tuple(x.shape[2 + i] - ((grad_out.shape[2 + i] - 1) * stride[i] - 2 * padding[i]
                                   + dilation[i] * (weight.shape[2 + i] - 1) + 1) for i in range(2))


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)

