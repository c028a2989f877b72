"""Standard training: no attack (PGD-0)."""

import torch.nn.functional as F


def defaults(eps: float) -> dict:
    return {}


def step(model, x, y, eps):
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    return loss.detach(), logits.detach()
