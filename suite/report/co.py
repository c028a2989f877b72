"""The catastrophic-overfitting (CO) verdict of one run, from its per-epoch validation metrics.

CO (Wong et al. 2020; see ``suite/reference/METHODS.md``) is a sudden collapse of robustness
during single-step adversarial training: PGD accuracy falls to near zero within an epoch
while clean accuracy holds or rises. The rule below detects exactly that and nothing milder
(slow robust overfitting does not trigger it, nor a run whose clean accuracy collapses too).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

RELATIVE_FLOOR = 0.5    # robust accuracy falls below this fraction of its best so far ...
MIN_DROP = 10.0         # ... and by at least this many points since the previous epoch ...
CLEAN_TOLERANCE = 10.0  # ... while clean accuracy stays within this many points of its value at that best epoch
NOT_JUDGED = frozenset({"standard"})   # no adversarial training: no robustness to lose

CO_RULE = (
    f"A run is flagged for catastrophic overfitting (CO) at the first epoch e whose validation PGD accuracy is "
    f"below {RELATIVE_FLOOR:.0%} of the best of the earlier epochs, after a drop of at least {MIN_DROP:g} points "
    f"(absolute) from epoch e-1 to e, while validation clean accuracy at e is no more than {CLEAN_TOLERANCE:g} "
    f"points below its value at that best epoch. A sudden collapse of robustness alone counts; a slow decline or a "
    f"run that collapses altogether does not. Standard training (no attack) is not judged ('n/a'): the robustness it "
    f"has early on is incidental. Runs without per-epoch records get no verdict ('?')."
)


@dataclass(frozen=True)
class COVerdict:
    flagged: bool | None        # None: no per-epoch history to judge
    epoch: int | None = None    # the 1-based epoch of the collapse
    robust_before: float | None = None   # best validation robust accuracy before the collapse
    robust_after: float | None = None    # validation robust accuracy at the collapse


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
    best_index = 0
    for i in range(1, len(rows)):
        robust = _number(rows[i]["val_robust_acc"])
        previous = _number(rows[i - 1]["val_robust_acc"])
        best = _number(rows[best_index]["val_robust_acc"])
        clean, clean_at_best = _number(rows[i].get("val_clean_acc")), _number(rows[best_index].get("val_clean_acc"))
        clean_holds = clean is None or clean_at_best is None or clean >= clean_at_best - CLEAN_TOLERANCE
        if robust < RELATIVE_FLOOR * best and previous - robust >= MIN_DROP and clean_holds:
            epoch = rows[i].get("epoch")
            return COVerdict(True, int(epoch) if epoch is not None else i + 1, best, robust)
        if robust > best:
            best_index = i
    return COVerdict(False)
