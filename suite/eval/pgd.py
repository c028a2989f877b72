"""PGD-k-r evaluation: k signed steps of eps/4 from a uniform start, r restarts.

A point counts as broken once any iterate of any restart misclassifies it (clean
mistakes count as broken too, so robust accuracy never exceeds clean accuracy). With
``early_exit`` (the default) restarts and steps are spent only on points not yet broken;
``early_exit=False`` attacks every point for every restart and step, as the reference does,
and serves as the benchmark's baseline.

Early exit keeps the attacked batch full: every slot of the batch runs one attempt (a point
and one of its restarts, step by step), and a slot whose point breaks, or whose attempt has
taken its k steps, takes the next attempt from a queue (restart by restart, skipping broken
points). Shrinking the batch instead, as points break, leaves a GPU mostly idle (early exit then
costs more time than the full attack while doing half its work; docs/performance.md). Each attempt follows the same
trajectory wherever it runs (the model is in eval mode, so a point's logits do not depend on
its batch), so given the same random start per point and restart the verdicts are those of
the full attack (``start`` lets a test fix them).

With ``graphs`` (on CUDA) every iterate run in a full batch, whether of the full attack or of
early exit's refilled slots, is replayed from a CUDA graph (:class:`GraphedFunction`): one
launch instead of a forward and backward pass's few hundred. Batches that are not full (a
last partial batch, early exit's draining slots) run eagerly.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..engine.cuda_graphs import GraphedFunction
from ..methods.perturbation import project, uniform_init


def pgd_broken(
    model,
    x,
    y,
    eps: float,
    steps: int = 50,
    restarts: int = 10,
    *,
    early_exit: bool = True,
    batch_size: int | None = None,
    start=None,
    graphs: bool = False,
) -> torch.Tensor:
    """Boolean mask of the points of ``x`` that PGD-``steps``-``restarts`` breaks.

    ``batch_size``: points attacked at once (default all). ``start(points, restart)``: the
    random start of those points (a long tensor of indices into ``x``) for that restart;
    default a fresh uniform draw. ``graphs``: replay full batches' iterates from a CUDA graph
    (ignored off CUDA).
    """
    batch_size = min(batch_size or len(x), len(x))  # more slots than points would run restarts side by side
    start = start or (lambda points, restart: uniform_init(x[points], eps))
    iterate = _Iterate(model, eps, batch_size, graphs and x.is_cuda)
    with torch.no_grad():
        broken = torch.cat(
            [model(x[i : i + batch_size]).argmax(1) != y[i : i + batch_size] for i in range(0, len(x), batch_size)]
        )
    if early_exit:
        return _refilled(iterate, x, y, steps, restarts, batch_size, start, broken)
    for i in range(0, len(x), batch_size):
        idx = torch.arange(i, min(i + batch_size, len(x)), device=x.device)
        xa, ya = x[idx], y[idx]
        for r in range(restarts):
            delta = start(idx, r)
            for _ in range(steps):
                delta, hit = iterate(xa, ya, delta)
                broken[idx] |= hit  # no host sync, unlike indexing by the mask
            with torch.no_grad():
                broken[idx] |= model(xa + delta).argmax(1) != ya
    return broken


class _Iterate:
    """One PGD iterate of a batch: ``(x, y, delta) -> (next delta, whether x + delta is misclassified)``;
    from a CUDA graph for full batches when ``graphed``."""

    def __init__(self, model, eps: float, slots: int, graphed: bool):
        self.model, self.eps, self.slots = model, eps, slots
        self.graphed = GraphedFunction(self.eager) if graphed else None

    def eager(self, x, y, delta):
        grad, hit = _gradient(self.model, x, y, delta)
        return project(delta + self.eps / 4 * grad.sign(), x, self.eps), hit

    def __call__(self, x, y, delta):
        if self.graphed is not None and len(x) == self.slots:
            return self.graphed(x, y, delta)
        return self.eager(x, y, delta)


def _refilled(iterate, x, y, steps, restarts, slots, start, broken):
    """Early exit with a batch kept full by refilling (see the module's docstring)."""
    broken_h = broken.cpu().numpy().copy()
    queue = ((r, i) for r in range(restarts) for i in range(len(x)))
    points = np.zeros(0, dtype=np.int64)  # per slot: its point, and the iterates it has checked
    checked = np.zeros(0, dtype=np.int64)
    delta = x[:0].clone()
    while True:
        new = []
        for r, i in queue if len(points) < slots else ():  # refill the free slots: attempts on unbroken points
            if not broken_h[i]:
                new.append((r, i))
                if len(points) + len(new) == slots:
                    break
        if new:
            rs, ps = (np.array(v, dtype=np.int64) for v in zip(*new))
            starts = [start(torch.as_tensor(ps[rs == r], device=x.device), int(r)) for r in np.unique(rs)]
            order = np.concatenate([np.flatnonzero(rs == r) for r in np.unique(rs)])
            points = np.concatenate([points, ps[order]])
            checked = np.concatenate([checked, np.zeros(len(new), dtype=np.int64)])
            delta = torch.cat([delta, *starts])
        if len(points) == 0:
            break
        idx = torch.as_tensor(points, device=x.device)
        delta, hit = iterate(x[idx], y[idx], delta)  # iterate `checked` of each slot
        hit_h = hit.cpu().numpy()
        broken_h[points[hit_h]] = True
        checked += 1
        keep = ~broken_h[points] & (checked <= steps)  # iterates 0..steps, then the attempt ends
        points, checked = points[keep], checked[keep]
        delta = delta[torch.as_tensor(keep, device=x.device)]
    return torch.as_tensor(broken_h, device=x.device)


def _gradient(model, x, y, delta):
    """Input gradient of the summed loss at x + delta, and which points the iterate misclassifies."""
    delta = delta.detach().requires_grad_(True)
    logits = model(x + delta)
    (grad,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), delta)
    return grad, logits.detach().argmax(1) != y


def robust_accuracy(
    model,
    x,
    y,
    eps: float,
    steps: int = 50,
    restarts: int = 10,
    *,
    batch_size: int = 512,
    early_exit: bool = True,
    graphs: bool = False,
) -> float:
    """PGD robust accuracy in percent over ``x`` (a tensor on the model's device), model in eval mode."""
    return percent(
        pgd_robust(model, x, y, eps, steps, restarts, batch_size=batch_size, early_exit=early_exit, graphs=graphs)
    )


def pgd_robust(
    model,
    x,
    y,
    eps: float,
    steps: int = 50,
    restarts: int = 10,
    *,
    batch_size: int = 512,
    early_exit: bool = True,
    graphs: bool = False,
) -> torch.Tensor:
    """Per point of ``x``: True where PGD-``steps``-``restarts`` leaves it correctly classified
    (model in eval mode). :func:`robust_accuracy` is its mean; a subset's robust accuracy is the
    mean of its slice (the same attack, no new one)."""
    was_training = model.training
    model.eval()
    broken = pgd_broken(model, x, y, eps, steps, restarts, early_exit=early_exit, batch_size=batch_size, graphs=graphs)
    model.train(was_training)
    return ~broken


def percent(robust: torch.Tensor) -> float:
    """The share of True in a per-point mask, in percent."""
    return 100.0 * int(robust.sum()) / len(robust)
