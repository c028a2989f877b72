"""The catastrophic-overfitting (CO) verdict of one run, from its per-epoch validation metrics.

CO (Wong et al. 2020; see ``suite/reference/METHODS.md``) is a sudden collapse of robustness
during single-step adversarial training: PGD accuracy falls to near zero within an epoch or two
while clean accuracy holds or rises. The rule below detects exactly that and nothing milder
(slow robust overfitting does not trigger it, nor a run whose clean accuracy collapses too).
Two epochs, not one: on Fashion-MNIST with injected features (reports/co_search.md) Fast-AT's
collapse takes 60-100 iterations, which a short epoch splits in two (for example 44 -> 24 -> 15%
while clean accuracy held at 68%); a one-epoch window missed such runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

RELATIVE_FLOOR = 0.5  # robust accuracy falls below this fraction of its value ...
WINDOW = 2  # ... at most this many epochs earlier (the better of those epochs) ...
MIN_DROP = 10.0  # ... by at least this many points ...
CLEAN_TOLERANCE = 10.0  # ... while clean accuracy stays within this many points of its value at that epoch
NOT_JUDGED = frozenset({"standard"})  # no adversarial training: no robustness to lose

CO_RULE = (
    f"A run is flagged for catastrophic overfitting (CO) at the first epoch e whose validation PGD accuracy has fallen, "
    f"within at most {WINDOW} epochs, to below {RELATIVE_FLOOR:.0%} of its value at the better of epochs e-1 and "
    f"e-{WINDOW}, by at least {MIN_DROP:g} points (absolute), while validation clean accuracy at e is no more than "
    f"{CLEAN_TOLERANCE:g} points below its value at that epoch. A sudden collapse of robustness alone counts; a slow "
    f"decline or a run that collapses altogether does not. Standard training (no attack) is not judged ('n/a'): the "
    f"robustness it has early on is incidental. Runs without per-epoch records get no verdict ('?')."
)


@dataclass(frozen=True)
class COVerdict:
    flagged: bool | None  # None: no per-epoch history to judge
    epoch: int | None = None  # the 1-based epoch of the collapse
    robust_before: float | None = None  # validation robust accuracy at the epoch it fell from
    robust_after: float | None = None  # validation robust accuracy at the collapse


def _number(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def co_verdict(history: list[dict]) -> COVerdict:
    """Apply :data:`CO_RULE` to a run's per-epoch rows (``epoch``, ``val_robust_acc``, ``val_clean_acc``)."""
    rows = [r for r in history if _number(r.get("val_robust_acc")) is not None]
    if not rows:
        return COVerdict(None)
    robust = [_number(r["val_robust_acc"]) for r in rows]
    for i in range(1, len(rows)):
        ref = max(range(max(0, i - WINDOW), i), key=lambda j: robust[j])  # the better recent epoch
        clean, clean_at_ref = _number(rows[i].get("val_clean_acc")), _number(rows[ref].get("val_clean_acc"))
        clean_holds = clean is None or clean_at_ref is None or clean >= clean_at_ref - CLEAN_TOLERANCE
        if robust[i] < RELATIVE_FLOOR * robust[ref] and robust[ref] - robust[i] >= MIN_DROP and clean_holds:
            epoch = rows[i].get("epoch")
            return COVerdict(True, int(epoch) if epoch is not None else i + 1, robust[ref], robust[i])
    return COVerdict(False)
