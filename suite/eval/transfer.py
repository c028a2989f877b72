"""Transfer attacks: PGD-k-r crafted on a surrogate model, judged on the victim.

The attack is the suite's PGD (signed steps of eps/4 from a uniform start, projected onto the
eps-ball and the image), run on the surrogate's gradients; a point counts as broken on the victim
once any iterate of any restart fools the victim (its clean mistakes count too), the rule white-box
PGD uses. With the surrogate equal to the victim it is white-box PGD without early exit, draw for draw."""

from __future__ import annotations

import torch

from ..methods.perturbation import project, uniform_init
from .pgd import _gradient, percent


def transfer_robust(surrogate, victim, x, y, eps: float, steps: int, restarts: int, *, batch_size: int) -> torch.Tensor:
    """Per point of ``x``: True where the victim classifies every surrogate-crafted iterate correctly."""
    states = surrogate.training, victim.training
    surrogate.eval()
    victim.eval()
    broken = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            broken[i : i + batch_size] = victim(x[i : i + batch_size]).argmax(1) != y[i : i + batch_size]
    for i in range(0, len(x), batch_size):
        xa, ya = x[i : i + batch_size], y[i : i + batch_size]
        for _ in range(restarts):
            delta = uniform_init(xa, eps)
            for _ in range(steps):
                with torch.no_grad():
                    broken[i : i + batch_size] |= victim(xa + delta).argmax(1) != ya
                grad, _ = _gradient(surrogate, xa, ya, delta)
                delta = project(delta + eps / 4 * grad.sign(), xa, eps)
            with torch.no_grad():
                broken[i : i + batch_size] |= victim(xa + delta).argmax(1) != ya
    surrogate.train(states[0])
    victim.train(states[1])
    return ~broken


def transfer_accuracy(surrogate, victim, x, y, eps, steps, restarts, *, batch_size: int) -> float:
    """:func:`transfer_robust`'s mean, in percent."""
    return percent(transfer_robust(surrogate, victim, x, y, eps, steps, restarts, batch_size=batch_size))
