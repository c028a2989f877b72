"""Range checks for numeric settings: one rule set for flags, sweep specs and ``--set``."""

from __future__ import annotations

import math

from ..errors import SuiteError


def check_number(
    name: str, value, *, integer: bool = False, minimum=None, above=None, below=None, maximum=None
) -> None:
    """Raise a one-line SuiteError unless ``value`` is a finite number (an integer where
    ``integer``) with ``minimum <= value``, ``above < value``, ``value < below``, ``value <= maximum``."""
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        raise SuiteError(f"{name} must be {kind}, got {value!r}")
    if not math.isfinite(value):
        raise SuiteError(f"{name} must be finite, got {value}")
    for bound, fails, words in (
        (minimum, lambda b: value < b, "at least"),
        (above, lambda b: value <= b, "above"),
        (below, lambda b: value >= b, "below"),
        (maximum, lambda b: value > b, "at most"),
    ):
        if bound is not None and fails(bound):
            raise SuiteError(f"{name} must be {words} {bound:g}, got {value:g}")
