"""Fast-BAT (Zhang et al., ICML 2022): fast bi-level adversarial training.

The lower level linearizes the attack loss l_atk = -CE (summed over the batch) at a point z
and takes an unsigned step of size ``a`` (``ll_step``, in /255) that is projected onto the
feasible set: delta* = P(z - a * grad l_atk(theta, z)). The upper level trains on CE at
x + delta* and adds the implicit-gradient correction

    c = -(1/B) * grad_theta < g1, H * q / lambda >,

with g1 = grad_delta l_atk(theta, z) (differentiable in theta), H the mask of coordinates
where delta* lies strictly inside its box, and q = grad_delta CE_sum(theta, delta*).
With a = 1/lambda the result is the exact derivative of CE(f(x + P(z - a grad l_atk)))
with respect to theta, z held fixed (see tests).

Passes: z is found without a graph; one forward at x + delta* serves both the training
loss and q (a single backward yields q and the parameter gradient); the correction is one
double backward through the graph of g1.
"""
import torch
import torch.nn.functional as F

from ..attacks import input_grad, project, uniform_init

BOX_MARGIN = 1e-7


def defaults(eps: float) -> dict:
    return {"lmbda": 10.0, "ll_step": 5000.0 if eps <= 8 else 2000.0}


def step(model, x, y, eps, *, lmbda, ll_step):
    a = ll_step / 255
    z0 = uniform_init(x, eps)
    grad_ce, _ = input_grad(model, x + z0, y)           # grad l_atk = -grad CE
    z = project(z0 + a * grad_ce, x, eps)               # step 2, no graph kept
    return implicit_step(model, x, y, z, eps, a=a, lmbda=lmbda)


def interior_mask(delta, x, eps):
    """H: 1 where delta lies strictly inside max(-x, -eps) < delta < min(1 - x, eps)."""
    lower = torch.clamp(-x, min=-eps)
    upper = torch.clamp(1 - x, max=eps)
    return ((delta > lower + BOX_MARGIN) & (delta < upper - BOX_MARGIN)).to(delta.dtype)


def implicit_step(model, x, y, z, eps, *, a, lmbda):
    """Steps 3-7 at linearization point z: accumulate the parameter gradient, return (loss, logits)."""
    z = z.detach().requires_grad_(True)
    ce_z = F.cross_entropy(model(x + z), y, reduction="sum")
    (g1,) = torch.autograd.grad(-ce_z, z, create_graph=True)              # step 3
    delta = project(z.detach() - a * g1.detach(), x, eps).requires_grad_(True)
    h = interior_mask(delta.detach(), x, eps)                               # step 4

    logits = model(x + delta)                                               # steps 5 and 7
    batch = x.shape[0]
    loss = F.cross_entropy(logits, y)
    loss.backward()                       # accumulates the parameter gradient and delta.grad
    q = delta.grad * batch                # gradient of the summed CE at delta*
    correction = -(g1 * (h * q)).sum() / (batch * lmbda)                   # step 6
    correction.backward()
    return loss.detach(), logits.detach()
