"""N-FGSM (de Jorge et al., NeurIPS 2022, "Make some noise"): noise eta ~ U(-k eps, k eps), then
one signed step of alpha from x + eta, *not* projected back onto the eps-ball:
delta = eta + alpha * sign(grad_x CE(f(x + eta))), so |delta| may reach (k + alpha/eps) eps;
eta and delta are only clipped so that x + eta and x + delta stay in the image box [0, 1].
The authors' defaults: k = 2, alpha = eps. Same cost as Fast-AT (one extra forward-backward).
"""

import torch.nn.functional as F

from ..config.checks import check_number
from .perturbation import clip_to_image, input_grad, uniform_init

LABEL = "N-FGSM"  # its name in reports
COLOR = "#2ca02c"  # its colour in every figure
FEASIBLE = False  # its step is not projected onto the eps-ball
HELP = {  # one line per hyperparameter: suite run --help
    "noise_factor": "uniform noise in [-k eps, k eps], k",
    "alpha_factor": "step size as a multiple of eps",
}


def defaults(eps: float) -> dict:
    # noise U(-noise_factor * eps, noise_factor * eps); step size alpha = alpha_factor * eps
    return {"noise_factor": 2.0, "alpha_factor": 1.0}


def validate(hparams: dict) -> None:
    for name in ("noise_factor", "alpha_factor"):
        check_number(f"n_fgsm hyperparameter {name} (a multiple of eps)", hparams[name], minimum=0)


def step(model, x, y, eps, *, noise_factor, alpha_factor):
    eta = uniform_init(x, noise_factor * eps)
    grad, _ = input_grad(model, x + eta, y)
    delta = clip_to_image(eta + alpha_factor * eps * grad.sign(), x)
    logits = model(x + delta)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    return loss.detach(), logits.detach()
