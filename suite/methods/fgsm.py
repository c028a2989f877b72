"""FGSM training (Wong et al. 2020's "FGSM from zero init"): one signed step of alpha = eps from
delta = 0, clipped to the eps-ball and the image box; train on CE(f(x + delta)). The baseline that
overfits catastrophically most readily.
"""

import torch
import torch.nn.functional as F

from .perturbation import signed_step

LABEL = "FGSM"  # its name in reports
COLOR = "#8c564b"  # its colour in every figure
FEASIBLE = True  # the input it trains on lies in the eps-ball and [0, 1]
HELP = {  # one line per hyperparameter: suite run --help
    "alpha_factor": "step size as a multiple of eps",
}


def defaults(eps: float) -> dict:
    return {"alpha_factor": 1.0}  # step size alpha = alpha_factor * eps


def step(model, x, y, eps, *, alpha_factor):
    delta = signed_step(model, x, y, torch.zeros_like(x), eps, alpha_factor * eps)
    logits = model(x + delta)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    return loss.detach(), logits.detach()
