"""AutoAttack through the PyPI package ``pyautoattack``."""

from __future__ import annotations

import logging

from .clean import clean_accuracy


def autoattack_accuracy(
    model,
    x,
    y,
    eps: float,
    *,
    version: str = "standard",
    attacks: list[str] | None = None,
    batch_size: int = 500,
    seed: int = 0,
) -> float:
    """Robust accuracy in percent under AutoAttack (Linf, ``eps`` in pixel units), model in eval mode.

    ``version='standard'`` runs APGD-CE, APGD-T, FAB-T and Square; ``version='custom'`` with
    ``attacks=['apgd-ce']`` runs a single attack.
    """
    from pyautoattack import AutoAttack

    logging.getLogger("auto-attack").setLevel(logging.WARNING)
    was_training = model.training
    model.eval()
    adversary = AutoAttack(model, eps=eps, norm="Linf", version=version, attacks=attacks, device=x.device, seed=seed)
    x_adv, _ = adversary.run_standard_evaluation(x, y, batch_size=batch_size)
    model.train(was_training)
    return clean_accuracy(model, x_adv, y, batch_size=batch_size)  # accuracy on the adversarial points
