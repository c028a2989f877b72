"""PGD-k-r evaluation: k signed steps of eps/4 from a uniform start, r restarts.

A point counts as broken once any iterate of any restart misclassifies it (clean
mistakes count as broken too, so robust accuracy never exceeds clean accuracy). With
``early_exit`` (the default) restarts and steps are spent only on points not yet broken;
``early_exit=False`` attacks every point for every restart and step, as the reference does,
and serves as the benchmark's baseline.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..attacks import project, uniform_init


def pgd_broken(model, x, y, eps: float, steps: int = 50, restarts: int = 10, *, early_exit: bool = True) -> torch.Tensor:
    """Boolean mask of the points of one batch that PGD-``steps``-``restarts`` breaks."""
    alpha = eps / 4
    with torch.no_grad():
        broken = model(x).argmax(1) != y
    for _ in range(restarts):
        idx = (~broken).nonzero().squeeze(1) if early_exit else torch.arange(len(x), device=x.device)
        if idx.numel() == 0:
            break
        xa, ya = x[idx], y[idx]
        delta = uniform_init(xa, eps)
        for _ in range(steps):
            delta.requires_grad_(True)
            logits = model(xa + delta)
            loss = F.cross_entropy(logits, ya, reduction="sum")
            (grad,) = torch.autograd.grad(loss, delta)
            hit = logits.detach().argmax(1) != ya
            broken[idx[hit]] = True
            delta = project(delta.detach() + alpha * grad.sign(), xa, eps)
            if early_exit and hit.any():
                keep = ~hit
                idx, xa, ya, delta = idx[keep], xa[keep], ya[keep], delta[keep]
                if idx.numel() == 0:
                    break
        with torch.no_grad():
            broken[idx[model(xa + delta).argmax(1) != ya]] = True
    return broken


def robust_accuracy(model, x, y, eps: float, steps: int = 50, restarts: int = 10, *, batch_size: int = 512,
                    early_exit: bool = True) -> float:
    """PGD robust accuracy in percent over ``x`` (a tensor on the model's device), model in eval mode."""
    return percent(pgd_robust(model, x, y, eps, steps, restarts, batch_size=batch_size, early_exit=early_exit))


def pgd_robust(model, x, y, eps: float, steps: int = 50, restarts: int = 10, *, batch_size: int = 512,
               early_exit: bool = True) -> torch.Tensor:
    """Per point of ``x``: True where PGD-``steps``-``restarts`` leaves it correctly classified
    (model in eval mode). :func:`robust_accuracy` is its mean; a subset's robust accuracy is the
    mean of its slice (the same attack, no new one)."""
    was_training = model.training
    model.eval()
    broken = torch.cat([pgd_broken(model, x[i:i + batch_size], y[i:i + batch_size], eps, steps, restarts,
                                   early_exit=early_exit) for i in range(0, len(x), batch_size)])
    model.train(was_training)
    return ~broken


def percent(robust: torch.Tensor) -> float:
    """The share of True in a per-point mask, in percent."""
    return 100.0 * int(robust.sum()) / len(robust)
