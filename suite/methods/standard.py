"""Standard training: no attack (PGD-0)."""

import torch.nn.functional as F

LABEL = "Standard"  # its name in reports
COLOR = "#7f7f7f"  # its colour in every figure
FEASIBLE = True  # the input it trains on lies in the eps-ball and [0, 1]
HELP: dict = {}  # no hyperparameters


def defaults(eps: float) -> dict:
    return {}


def step(model, x, y, eps):
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    return loss.detach(), logits.detach()
