"""FGSM from a uniform random start with a step of ``gamma * eps``: a plug-in method of the suite.

The method protocol (docs/methods.md): ``defaults(eps)`` gives the hyperparameters at a training
budget in /255 (each one is a spec key, a ``--set`` key and a ``--hp`` value), the optional
``validate`` refuses values the method cannot use, and ``step`` accumulates the parameter
gradients of one batch (the training loop owns the optimizer step). ``HELP``, ``LABEL`` and
``COLOR`` say how the suite shows it: in ``--help``, and in the report's tables and figures.
"""

import torch
import torch.nn.functional as F

from suite.errors import SuiteError
from suite.methods.perturbation import project, uniform_init

HELP = {"gamma": "my_fgsm: step size as a multiple of eps (default 1.25)"}
LABEL = "My FGSM"
COLOR = "#17becf"  # the reports' colour of this method (Fast-AT's is #d62728)


def defaults(eps: float) -> dict:
    return {"gamma": 1.25}


def validate(hparams: dict) -> None:
    if not hparams["gamma"] > 0:
        raise SuiteError(f"my_fgsm: gamma must be above 0, got {hparams['gamma']}")


def step(model, x, y, eps, *, gamma):
    """delta0 ~ U(-eps, eps) (drawn through the suite, so a run's seed fixes it), one ascent step
    delta = P(delta0 + gamma * eps * sign(grad_x CE)), then the gradient of CE(f(x + delta))."""
    delta = uniform_init(x, eps).requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(x + delta), y, reduction="sum"), delta)
    delta = project(delta.detach() + gamma * eps * grad.sign(), x, eps)
    logits = model(x + delta)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    return loss.detach(), logits.detach()
