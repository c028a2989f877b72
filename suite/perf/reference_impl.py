"""Direct, step-by-step transcriptions of the reference implementation's procedures.

They keep the reference's extra passes on purpose: the tests check that the optimized
methods in ``suite.methods`` compute the same gradients, and ``suite bench`` measures
what the optimizations save. They are not registered as training methods. The forward
passes whose graphs they keep use the same layers' double backward as the methods
(:func:`~suite.models.second_order.second_order`), so the saving measured is the procedure's.
"""

import torch
import torch.nn.functional as F

from ..methods.fast_at_ga import alignment_regularizer
from ..methods.fast_bat import interior_mask
from ..methods.perturbation import project, uniform_init
from ..models.second_order import second_order


def fast_bat_reference(model, x, y, eps, *, lmbda=10.0, ll_step=5000.0, z0=None):
    """METHODS.md's seven Fast-BAT steps as the reference runs them; accumulates parameter grads."""
    a = ll_step / 255
    batch = x.shape[0]
    # 1. random start
    z0 = uniform_init(x, eps) if z0 is None else z0
    # 2. unsigned step on l_atk = -CE_sum; the reference keeps a graph it never uses
    z0 = z0.clone().requires_grad_(True)
    with second_order():
        l_atk = -F.cross_entropy(model(x + z0), y, reduction="sum")
    (g0,) = torch.autograd.grad(l_atk, z0, create_graph=True)
    delta1 = project(z0 - a * g0, x, eps).detach()
    # 3. g1 at delta1, differentiable in theta; delta* detached
    delta1.requires_grad_(True)
    with second_order():
        l_atk = -F.cross_entropy(model(x + delta1), y, reduction="sum")
    (g1,) = torch.autograd.grad(l_atk, delta1, create_graph=True)
    delta_star = project(delta1 - a * g1, x, eps).detach()
    # 4. interior mask
    h = interior_mask(delta_star, x, eps)
    # 5. q: its own forward and backward
    d = delta_star.clone().requires_grad_(True)
    (q,) = torch.autograd.grad(F.cross_entropy(model(x + d), y, reduction="sum"), d)
    # 6. implicit-gradient correction
    correction = -(g1 * (h * q).detach()).sum() / (batch * lmbda)
    # 7. training loss: another forward at x + delta*
    logits = model(x + delta_star)
    loss = F.cross_entropy(logits, y)
    (loss + correction).backward()
    return loss.detach(), logits.detach()


def fast_at_ga_reference(model, x, y, eps, *, coef, eta=None):
    """FGSM (zero init, step 1.25 eps) + GradAlign as the reference runs it: the clean gradient twice."""
    # FGSM from zero init: its own forward/backward at x
    delta = torch.zeros_like(x, requires_grad=True)
    (g,) = torch.autograd.grad(F.cross_entropy(model(x + delta), y), delta)
    delta = project(delta.detach() + 1.25 * eps * g.sign(), x, eps)
    # GradAlign: grad1 at x again (detached), grad2 at x + eta with a graph
    x1 = x.clone().requires_grad_(True)
    (grad1,) = torch.autograd.grad(F.cross_entropy(model(x1), y), x1)
    eta = torch.empty_like(x).uniform_(-eps, eps) if eta is None else eta
    x2 = (x + eta).requires_grad_(True)
    with second_order():
        (grad2,) = torch.autograd.grad(F.cross_entropy(model(x2), y), x2, create_graph=True)
    reg = coef * alignment_regularizer(grad1, grad2)
    logits = model(x + delta)
    loss = F.cross_entropy(logits, y)
    (loss + reg).backward()
    return loss.detach(), logits.detach()
