"""FGSM from a uniform random start with a step of ``gamma * eps``: a plug-in method of the suite.

The method protocol (docs/methods.md): ``defaults(eps)`` gives the hyperparameters at a training
budget in /255 (each one is a spec key, a ``--set`` key and a ``--hp`` value), the optional
``validate`` refuses values the method cannot use, and ``step`` accumulates the parameter
gradients of one batch (the training loop owns the optimizer step). The capitalised names are
optional and say how the suite shows and checks it: ``--help``, the report's tables and figures,
the contract test (``FEASIBLE``) and ``suite tune``'s default search.
"""

import torch
import torch.nn.functional as F

from suite.errors import SuiteError
from suite.methods.perturbation import project, uniform_init

LABEL = "My FGSM"  # its name in reports
COLOR = "#17becf"  # its colour in every figure (Fast-AT's is #d62728)
FEASIBLE = True  # every input it feeds the model lies in the eps-ball and [0, 1]
HELP = {"gamma": "step size as a multiple of eps"}  # suite run --gamma's help; the default is added
SEARCH = {"gamma": [0.5, 2.0]}  # suite tune's search when a study spec gives none (log-uniform)
SYMBOLS = {"gamma": "γ"}  # how the tuning figure writes it


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
