"""PGD-k adversarial training (Madry et al.): uniform random start, k projected signed steps.

Step size: eps/2 for PGD-2 and 2/255 for PGD-10 (the reference's choices); other k use 2.5 eps / k.
"""

import torch.nn.functional as F

from ..config.checks import check_number
from .perturbation import signed_step, uniform_init

LABEL = "PGD-AT"  # its name in reports
COLOR = "#9467bd"  # its colour in every figure
FEASIBLE = True  # the input it trains on lies in the eps-ball and [0, 1]
HELP = {  # one line per hyperparameter: suite run --help
    "steps": "attack steps k",
    "alpha": "step size in /255, derived when unset: eps/2 for k = 2, 2 for k = 10, else 2.5 eps/k",
}


def defaults(eps: float) -> dict:
    return {"steps": 10, "alpha": None}


def validate(hparams: dict) -> None:
    check_number("pgd hyperparameter steps", hparams["steps"], integer=True, minimum=1)
    if hparams["alpha"] is not None:
        check_number("pgd hyperparameter alpha (in 1/255)", hparams["alpha"], above=0)


def default_alpha(eps: float, steps: int) -> float:
    """Step size in pixel units for PGD-k training at budget eps (pixel units)."""
    if steps == 2:
        return eps / 2
    if steps == 10:
        return 2 / 255
    return 2.5 * eps / steps


def step(model, x, y, eps, *, steps, alpha=None):
    alpha = default_alpha(eps, steps) if alpha is None else alpha / 255
    delta = uniform_init(x, eps)
    for _ in range(steps):
        delta = signed_step(model, x, y, delta, eps, alpha)
    logits = model(x + delta)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    return loss.detach(), logits.detach()
