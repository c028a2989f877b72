"""The suite's test protocol on one model: SA, RA-PGD-k-r, and AutoAttack on the first points with
RA-PGD on those same points beside it. The trainer's final evaluation and ``suite eval`` both call
:func:`evaluate_model`, so that a standalone evaluation of a run's checkpoint gives the run's own numbers."""

from __future__ import annotations

import contextlib

from .autoattack import autoattack_accuracy
from .clean import clean_accuracy
from .pgd import percent, pgd_robust


def evaluate_model(
    model,
    x,
    y,
    eps: float,
    steps: int,
    restarts: int,
    *,
    aa_points: int,
    seed: int,
    batch_size: int,
    rng,
    aa_rng,
    graphs: bool = False,
    say=lambda text: None,
    which: str = "model",
) -> dict:
    """``{sa, ra_pgd, ra_aa, ra_pgd_aa_subset}`` in percent. ``rng()`` and ``aa_rng()`` are the
    random contexts PGD and AutoAttack draw in (the trainer's fixed evaluation seed): passing them in
    keeps this module free of the engine's generators."""
    say(f"evaluating {which}: clean and PGD-{steps}-{restarts} on {len(x)} test points ...")
    with rng():
        robust = pgd_robust(model, x, y, eps, steps, restarts, batch_size=batch_size, graphs=graphs)
        result = {
            "sa": clean_accuracy(model, x, y, batch_size=batch_size),
            "ra_pgd": percent(robust),
            "ra_aa": None,
            "ra_pgd_aa_subset": None,
        }
        if aa_points:
            say(f"evaluating {which}: AutoAttack on {aa_points} test points ...")
            with aa_rng():  # AutoAttack seeds and draws from the global generators
                result["ra_aa"] = autoattack_accuracy(
                    model, x[:aa_points], y[:aa_points], eps, seed=seed, batch_size=batch_size
                )
            result["ra_pgd_aa_subset"] = percent(robust[:aa_points])
    return result


def autoattack_available() -> bool:
    """Whether the ``pyautoattack`` package imports here."""
    with contextlib.suppress(ImportError):
        import pyautoattack  # noqa: F401

        return True
    return False
