"""Fast-AT (RS-FGSM; Wong et al. 2020): one signed step of 1.25 eps from a uniform random start."""

import torch.nn.functional as F

from ..config.checks import check_number
from .perturbation import signed_step, uniform_init

LABEL = "Fast-AT"  # its name in reports
COLOR = "#d62728"  # its colour in every figure
FEASIBLE = True  # the input it trains on lies in the eps-ball and [0, 1]
HELP = {  # one line per hyperparameter: suite run --help
    "alpha_factor": "step size as a multiple of eps",
}


def defaults(eps: float) -> dict:
    return {"alpha_factor": 1.25}


def validate(hparams: dict) -> None:
    check_number("fast_at hyperparameter alpha_factor", hparams["alpha_factor"], above=0)


def step(model, x, y, eps, *, alpha_factor):
    delta = signed_step(model, x, y, uniform_init(x, eps), eps, alpha_factor * eps)
    logits = model(x + delta)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    return loss.detach(), logits.detach()
