"""Fast-AT-GA (FGSM + GradAlign; Andriushchenko & Flammarion 2020).

FGSM from zero init with step 1.25 eps (which ends at eps * sign(g) after projection),
plus ``coef * (1 - mean_i cos(grad_x CE(x_i), grad_x CE(x_i + eta_i)))`` with
eta ~ U(-eps, eps); the second gradient keeps its graph (double backprop).

The FGSM-from-zero gradient *is* the clean input gradient, so it is computed once and
serves both the attack and the regularizer (the reference computes it twice).
"""

from pathlib import Path

import torch
import torch.nn.functional as F

from ..models.second_order import second_order, second_order_term
from .perturbation import input_grad, project, uniform_noise

# The regularizer's second-order term is sensitive to rounding: under bf16 autocast (and TF32) the
# parameter gradient moves further from its float64 value than a fresh draw of the noise moves it
# (``suite bench --only precision``; the figures are in docs/precision.md).
PRECISION = "fp32"

_COEFFICIENTS = Path(__file__).resolve().parent.parent / "reference" / "gradalign_coefficients.csv"


LABEL = "Fast-AT-GA"  # its name in reports
COLOR = "#ff7f0e"  # its colour in every figure
FEASIBLE = True  # the input it trains on lies in the eps-ball and [0, 1]
HELP = {  # one line per hyperparameter: suite run --help
    "coef": "coefficient (the GradAlign authors' table by eps, else 0.02*10^(eps/8))",
}


def defaults(eps: float) -> dict:
    return {"coef": gradalign_coef(eps)}


def gradalign_coef(eps: float) -> float:
    """The GradAlign authors' coefficient for training eps (in /255): the table, else 0.02 * 10^(eps/8)."""
    for line in _COEFFICIENTS.read_text().splitlines():
        if line and not line.startswith(("#", "eps")):
            e, c = line.split(",")
            if float(e) == float(eps):
                return float(c)
    return round(0.02 * 10 ** (eps / 8), 3)


def alignment_regularizer(grad_clean, grad_noisy):
    """1 - mean cosine over the samples where neither gradient is exactly zero (0 if there are none).

    Masked, not indexed: no data-dependent shape and no host sync, so a CUDA graph can capture
    it. An excluded sample's rows are replaced by ones before the cosine, so that it contributes
    neither a value nor a gradient (not even a NaN times zero).
    """
    g1, g2 = grad_clean.flatten(1), grad_noisy.flatten(1)
    keep = (g1.norm(dim=1) != 0) & (g2.norm(dim=1) != 0)
    kept = keep.sum()
    rows = keep.unsqueeze(1)
    cos = F.cosine_similarity(torch.where(rows, g1, 1.0), torch.where(rows, g2, 1.0), dim=1)
    mean_cos = torch.where(keep, cos, 0.0).sum() / kept.clamp_min(1)
    return torch.where(kept > 0, 1.0 - mean_cos, g2.sum() * 0.0)


def step(model, x, y, eps, *, coef):
    with second_order_term():  # the regularizer compares it with the noisy gradient (mixed precision: float32)
        grad_clean, _ = input_grad(model, x, y)
    delta = project(1.25 * eps * grad_clean.sign(), x, eps)
    eta = uniform_noise(x, -eps, eps)
    with second_order():  # its graph is differentiated twice
        grad_noisy, _ = input_grad(model, x + eta, y, create_graph=True)
    reg = coef * alignment_regularizer(grad_clean, grad_noisy)
    logits = model(x + delta)
    loss = F.cross_entropy(logits, y)
    with second_order_term():  # it differentiates the regularizer's graph
        (loss + reg).backward(inputs=[p for p in model.parameters() if p.requires_grad])
    return loss.detach(), logits.detach()
