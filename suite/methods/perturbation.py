"""Perturbation primitives shared by the training methods and the evaluation attacks.

Everything lives in pixel space: ``x`` in [0, 1], ``eps`` a float in the same units
(eps=8/255 for the command line's ``--eps 8``). The feasible set is
C(x) = {delta : |delta|_inf <= eps and 0 <= x + delta <= 1}.
"""

from __future__ import annotations

import contextlib
import contextvars

import torch
import torch.nn.functional as F

_GENERATOR = contextvars.ContextVar("generator", default=None)


@contextlib.contextmanager
def drawing_from(generator: torch.Generator | None):
    """The training methods' random draws in here (random starts, noise) come from ``generator``;
    None (and outside any such block): torch's global generator. A context variable, so a thread
    (one of several runs packed into one process) draws from its own run's generator only."""
    token = _GENERATOR.set(generator)
    try:
        yield
    finally:
        _GENERATOR.reset(token)


def uniform_noise(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """U(low, high) of ``x``'s shape, from the generator of :func:`drawing_from` (else the global one)."""
    return torch.empty_like(x).uniform_(low, high, generator=_GENERATOR.get())


def project(delta: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """P(delta): clamp to [-eps, eps], then clamp x + delta to the image box [0, 1]."""
    return clip_to_image(delta.clamp(-eps, eps), x)


def clip_to_image(delta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """delta with x + delta clamped to the image box [0, 1] (no eps-ball)."""
    return (x + delta).clamp(0.0, 1.0) - x


def uniform_init(x: torch.Tensor, eps: float) -> torch.Tensor:
    """delta0 ~ U(-eps, eps), clipped so that x + delta0 stays in [0, 1]."""
    return clip_to_image(uniform_noise(x, -eps, eps), x)


def input_grad(model, x_adv: torch.Tensor, y: torch.Tensor, *, create_graph: bool = False):
    """Gradient of the summed cross-entropy with respect to the model's input.

    Returns ``(grad, logits)``. Only the input gradient is computed: parameter
    gradients are neither accumulated nor (thanks to autograd's output masks) computed.
    """
    if not x_adv.requires_grad:
        x_adv = x_adv.detach().requires_grad_(True)
    logits = model(x_adv)
    loss = F.cross_entropy(logits, y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x_adv, create_graph=create_graph)
    return grad, logits


def signed_step(model, x: torch.Tensor, y: torch.Tensor, delta: torch.Tensor, eps: float, alpha: float) -> torch.Tensor:
    """One ascent step of the loss, ``P(delta + alpha * sign(grad))``, detached."""
    grad, _ = input_grad(model, x + delta, y)
    return project(delta.detach() + alpha * grad.sign(), x, eps)
