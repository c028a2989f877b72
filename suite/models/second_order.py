"""Layers whose second derivatives are cheap: what Fast-BAT's and GradAlign's double backward needs.

Fast-BAT's implicit-gradient term and GradAlign's regularizer differentiate an input gradient
with respect to the parameters (a double backward). For a convolution, torch differentiates its
own backward node with a generic routine that gets the weight's part by a convolution over
swapped batch and channel axes, a slow path on the CPU. :class:`Conv2d` writes the input
gradient of its backward as the transposed convolution it is, so the double backward takes the
ordinary, optimized weight-gradient kernel (faster on a CPU; figures in docs/performance.md).
A plain backward (no ``create_graph``) is the same single fused call torch makes, and,
like torch's own node, leaves out the gradients the pass does not reach (an attack's input
gradient computes no weight gradient).

Training-mode batch norm's double backward is, in torch, a generic routine of some thirty
passes over the activations; :class:`BatchNorm2d` gives its backward a hand-derived one in seven
(:class:`_BatchNormBackward`); docs/performance.md has what the two save.

Max-pooling's double backward is torch's gather, but in the channels_last layout the suite trains
in (:class:`MaxPool2d`); torch's returns a contiguous gradient that every layer below converts.

All three are drop-in replacements for the torch modules (same parameters, buffers and state dict).
They build their own autograd nodes only inside :func:`second_order`, around the forward passes
whose graph is differentiated twice; everywhere else (first-order training, attacks,
evaluation) they are the torch modules, without the Python nodes' overhead.
Under autocast a convolution's inputs are cast to autocast's dtype before it, as autocast casts
them for torch's own.
"""

from __future__ import annotations

import contextlib
import contextvars

import torch
import torch.nn.functional as F
from torch import nn

_SECOND_ORDER = contextvars.ContextVar("second_order", default=False)
_FLOAT32_SECOND_ORDER = contextvars.ContextVar("float32_second_order", default=False)


_SECOND_ORDER_TERM = contextvars.ContextVar("second_order_term", default=False)


@contextlib.contextmanager
def second_order():
    """Forward passes in here build graphs with the cheap double backward of these layers; inside
    :func:`float32_second_order` they also compute in float32 (as :func:`second_order_term`)."""
    token = _SECOND_ORDER.set(True)
    try:
        with second_order_term():
            yield
    finally:
        _SECOND_ORDER.reset(token)


@contextlib.contextmanager
def second_order_term():
    """A pass of a second-order term other than the forward differentiated twice (which
    :func:`second_order` marks): a result it depends on (GradAlign's clean input gradient), a backward
    pass that builds its graph, and the backward pass that differentiates that graph. Inside
    :func:`float32_second_order` it leaves autocast, else it changes nothing.

    The backward passes need it too: autocast applies to the operations a backward pass runs while
    it is on, and the derivative of a backward pass (the double backward) runs convolutions that
    autocast would compute in bf16 although their forward was float32.
    """
    token = _SECOND_ORDER_TERM.set(True)
    try:
        if _FLOAT32_SECOND_ORDER.get():
            with contextlib.ExitStack() as stack:
                for kind in ("cuda", "cpu"):
                    if torch.is_autocast_enabled(kind):
                        stack.enter_context(torch.autocast(kind, enabled=False))
                yield
        else:
            yield
    finally:
        _SECOND_ORDER_TERM.reset(token)


@contextlib.contextmanager
def float32_second_order():
    """The "mixed" precision: under autocast, the second-order terms of GradAlign and Fast-BAT are
    computed in float32 (every pass marked by :func:`second_order` or :func:`second_order_term`),
    every other pass in autocast's dtype."""
    token = _FLOAT32_SECOND_ORDER.set(True)
    try:
        yield
    finally:
        _FLOAT32_SECOND_ORDER.reset(token)


class Conv2d(nn.Conv2d):
    def _conv_forward(self, input, weight, bias):
        if self.padding_mode != "zeros" or isinstance(self.padding, str):
            return super()._conv_forward(input, weight, bias)
        return conv2d(input, weight, bias, self.stride, self.padding, self.dilation, self.groups)


def conv2d(x, weight, bias=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    """``F.conv2d`` with a double backward through the optimized kernels."""
    if not _custom_nodes(x, weight, bias):
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)
    kind = x.device.type
    if torch.is_autocast_enabled(kind):  # cast as autocast does: outside, where autograd records the casts
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
        grad_x = grad_w = grad_b = None
        if torch.is_grad_enabled():  # create_graph: build the gradient from differentiable ops
            if need_x:
                grad_x = F.conv_transpose2d(
                    grad_out,
                    weight,
                    None,
                    stride,
                    padding,
                    _output_padding(x, grad_out, weight, stride, padding, dilation),
                    groups,
                    dilation,
                )
            if need_w:
                grad_w = _backward(grad_out, x, weight, stride, padding, dilation, groups, (False, True))[1]
        elif need_x or need_w:
            grad_x, grad_w, _ = _backward(grad_out, x, weight, stride, padding, dilation, groups, (need_x, need_w))
        if need_b:
            grad_b = grad_out.sum((0, 2, 3))
        return grad_x, grad_w, grad_b, None, None, None, None


class BatchNorm2d(nn.BatchNorm2d):
    def forward(self, input):
        if not (self.training and self.affine and _custom_nodes(input, self.weight, self.bias)):
            return super().forward(input)
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum  # as nn.BatchNorm2d does
        if self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked)
        running_mean, running_var = (self.running_mean, self.running_var) if self.track_running_stats else (None, None)
        return _BatchNorm.apply(
            _graph_node(input),
            _graph_node(self.weight),
            _graph_node(self.bias),
            running_mean,
            running_var,
            factor,
            self.eps,
        )


class _BatchNorm(torch.autograd.Function):
    """Training-mode batch norm: torch's kernels, and :class:`_BatchNormBackward` under create_graph."""

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, momentum, eps):
        out, mean, invstd = torch.native_batch_norm(x, weight, bias, running_mean, running_var, True, momentum, eps)
        ctx.save_for_backward(x, weight, mean, invstd)
        ctx.eps = eps
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, weight, mean, invstd = ctx.saved_tensors
        need = _wanted(ctx, 3)
        if torch.is_grad_enabled():
            grads = _BatchNormBackward.apply(grad_out, x, weight, mean, invstd, ctx.eps)
        else:
            grads = torch.ops.aten.native_batch_norm_backward(
                grad_out, x, weight, None, None, mean, invstd, True, ctx.eps, list(need)
            )
        return (*(g if n else None for g, n in zip(grads, need)), None, None, None, None)


class _BatchNormBackward(torch.autograd.Function):
    """(grad_x, grad_weight, grad_bias) of training-mode batch norm, with a hand-derived backward.

    Per channel, with s = invstd, xh = (x - mean) s, means over (N, H, W) and the projection
    P(a) = a - mean(a) - xh mean(a xh): grad_x = weight s P(gy), grad_weight = sum(gy xh),
    grad_bias = sum(gy). For upstream gradients (u, u_w, u_b) of these three outputs:

        d gy     = weight s P(u) + u_w xh + u_b
        d weight = s sum(u P(gy))
        d x      = -weight s^2 (xh mean(u P(gy)) + P(u) mean(gy xh) + P(gy) mean(u xh)) + u_w s P(gy)

    (x reaches xh through the batch's mean and invstd too; tests check all of it against
    gradgradcheck.) The pass is memory-bound and, on a GPU, launch-bound, so it is arranged in as
    few operations over the activations as the formulas allow: d gy and d x are per-channel
    combinations of (u, x) and of (gy, u, x), two and three fused multiply-adds. Their
    coefficients need five per-channel sums: sum(gy) and sum(gy xh) are the forward's own
    outputs; sum(u), sum(u xh) and sum(u (gy - mean(gy))) come from two calls of torch's batch-norm
    backward reduction (each reads two tensors and writes nothing of their size). Upstream
    gradients that no one uses (the input gradients of GradAlign and Fast-BAT leave u_w and u_b
    unused) are skipped instead of being filled with zeros.
    """

    @staticmethod
    def forward(ctx, grad_out, x, weight, mean, invstd, eps):
        grads = torch.ops.aten.native_batch_norm_backward(
            grad_out, x, weight, None, None, mean, invstd, True, eps, [True, True, True]
        )
        n = x.numel() // x.shape[1]
        f32 = torch.float64 if x.dtype == torch.float64 else torch.float32
        # mean(gy xh) and mean(gy), for the backward (saving the outputs themselves costs more ops)
        ctx.save_for_backward(grad_out, x, weight, mean, invstd, grads[1].to(f32) / n, grads[2].to(f32) / n)
        ctx.eps = eps
        ctx.set_materialize_grads(False)
        return grads

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, u, u_w, u_b):
        gy, x, weight, mean, invstd, gx, mg = ctx.saved_tensors
        need_gy, need_x, need_w = ctx.needs_input_grad[:3]
        if u is None:  # only grad_weight or grad_bias is differentiated further (no method does)
            u = torch.zeros_like(gy)
        f32 = torch.float64 if x.dtype == torch.float64 else torch.float32  # the per-channel arithmetic
        n = x.numel() // x.shape[1]
        s, w, x_mean = invstd.to(f32), weight.to(f32), mean.to(f32)
        reduce = torch.ops.aten.native_batch_norm_backward  # (_, sum(g (a - m) v), sum(g)) for g, a, m, v
        _, sum_u_xh, sum_u = reduce(u, x, None, None, None, mean, invstd, True, ctx.eps, [False, True, True])
        _, sum_u_pg, _ = reduce(u, gy, None, None, None, mg, s, True, ctx.eps, [False, True, False])
        mu, ux = sum_u.to(f32) / n, sum_u_xh.to(f32) / n  # mean(u), mean(u xh)
        sn = s * n
        upg = torch.addcmul(sum_u_pg.to(f32) / sn, ux, gx, value=-1)  # mean(u P(gy))
        ws = w * s
        ws2 = ws * s
        alpha = (ws2 * ux).neg_()  # the coefficient of x in d gy and of gy in d x: u_w s - ws2 mean(u xh)
        if u_w is not None:
            alpha.addcmul_(u_w.to(f32), s)
        shape = (1, -1, 1, 1)
        d_gy = d_x = d_w = None
        if need_gy:  # ws u + alpha x + (u_b - ws mean(u) - alpha mean)
            offset = torch.mul(alpha, x_mean).neg_().addcmul_(ws, mu, value=-1)
            if u_b is not None:
                offset += u_b.to(f32)
            d_gy = torch.addcmul(offset.view(shape), u, ws.view(shape)).addcmul_(x, alpha.view(shape))
            d_gy = d_gy.to(gy.dtype)
        if need_x:  # alpha gy - c u + e x + (c mean(u) - alpha mean(gy) - e mean), c = ws2 mean(gy xh)
            c = ws2 * gx
            e = torch.addcmul(torch.addcmul(c * ux, ws2, upg, value=-1), alpha, gx, value=-1).mul_(s)
            offset = (c * mu).addcmul_(alpha, mg, value=-1).addcmul_(e, x_mean, value=-1)
            d_x = torch.addcmul(offset.view(shape), gy, alpha.view(shape))
            d_x = d_x.addcmul_(u, c.view(shape), value=-1).addcmul_(x, e.view(shape)).to(x.dtype)
        if need_w:
            d_w = (sn * upg).to(weight.dtype)
        return d_gy, d_x, d_w, None, None, None


class MaxPool2d(nn.MaxPool2d):
    """Max-pooling whose double backward keeps the channels_last layout.

    The derivative of max-pooling's backward with respect to its upstream gradient is a gather
    at the pooled indices. torch gathers over flattened contiguous rows and hands a
    channels_last network a contiguous gradient, which every layer below then converts back
    (on a CPU, small CNN at batch 128, about 10% of a Fast-BAT step went to those copies and
    to kernels reading mixed layouts). :class:`_MaxPoolBackward` gathers in the indices' layout.
    """

    def forward(self, input):
        if self.return_indices or not _custom_nodes(input):
            return super().forward(input)
        conf = tuple(
            _pair(v) for v in (self.kernel_size, self.stride or self.kernel_size, self.padding, self.dilation)
        ) + (self.ceil_mode,)
        return _MaxPool.apply(_graph_node(input), conf)


class _MaxPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, conf):
        out, indices = torch.ops.aten.max_pool2d_with_indices(x, *conf)
        ctx.save_for_backward(x, indices)
        ctx.conf = conf
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, indices = ctx.saved_tensors
        if torch.is_grad_enabled():
            return _MaxPoolBackward.apply(grad_out, x, indices, ctx.conf), None
        return torch.ops.aten.max_pool2d_with_indices_backward(grad_out, x, *ctx.conf, indices), None


class _MaxPoolBackward(torch.autograd.Function):
    """Max-pooling's input gradient; its own gradient (in the upstream gradient; in the input it is
    zero almost everywhere, as in torch) gathers at the indices without leaving their layout."""

    @staticmethod
    def forward(ctx, grad_out, x, indices, conf):
        ctx.save_for_backward(indices)
        return torch.ops.aten.max_pool2d_with_indices_backward(grad_out, x, *conf, indices)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, u):
        (indices,) = ctx.saved_tensors
        n, c, h, w = indices.shape
        if indices.is_contiguous(memory_format=torch.channels_last) and not indices.is_contiguous():
            # (N, H, W, C) rows: gather along the flattened spatial axis, channels innermost
            gathered = u.permute(0, 2, 3, 1).reshape(n, -1, c).gather(1, indices.permute(0, 2, 3, 1).reshape(n, -1, c))
            grad = gathered.view(n, h, w, c).permute(0, 3, 1, 2)
        else:
            grad = u.reshape(n, c, -1).gather(2, indices.reshape(n, c, -1)).view(n, c, h, w)
        return grad, None, None, None


def _custom_nodes(*tensors):
    """Inside :func:`second_order`, recording autograd, for an input that needs a gradient."""
    return _SECOND_ORDER.get() and torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def _wanted(ctx, n):
    """Which of the first n inputs this backward pass reaches: ``needs_input_grad`` says only which
    could be (an attack's ``autograd.grad(loss, x)`` wants no weight gradient; torch's own nodes
    skip it, and so do these)."""
    try:
        nodes = [node for node, _ in ctx.next_functions] + [None] * n  # one per tensor input; bias may be None
        return tuple(
            bool(need and node is not None and torch._C._will_engine_execute_node(node))
            for need, node in zip(ctx.needs_input_grad[:n], nodes)
        )
    except (AttributeError, RuntimeError):  # private API gone: compute what could be needed
        return ctx.needs_input_grad[:n]


def _graph_node(t):
    """A leaf behind an alias: the engine says whether it will run a graph node, but not a leaf's
    under ``autograd.grad``. ``aten.alias`` keeps the strides as they are; ``view_as`` would
    recompute them, and a channels_last weight with one input channel (a first layer on
    grayscale images) would come out contiguous and take every layer after it out of the layout."""
    return torch.ops.aten.alias(t) if t is not None and t.requires_grad and t.grad_fn is None else t


def _backward(grad_out, x, weight, stride, padding, dilation, groups, mask):
    return torch.ops.aten.convolution_backward(
        grad_out, x, weight, None, stride, padding, dilation, False, [0, 0], groups, [*mask, False]
    )


def _output_padding(x, grad_out, weight, stride, padding, dilation):
    """What the transposed convolution adds so that its output has the input's spatial size."""
    return tuple(
        x.shape[2 + i]
        - ((grad_out.shape[2 + i] - 1) * stride[i] - 2 * padding[i] + dilation[i] * (weight.shape[2 + i] - 1) + 1)
        for i in range(2)
    )


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)
