"""Numbers as people read them: float noise (``28.000000000000004``) rounded away.

Used where numbers are written for people and reports (``metrics.jsonl``, ``summary.json``,
the CSV exports), never on checkpoint state or on what a run id hashes: a run resumes from
its checkpoint's exact values, and its records are rewritten from them.
"""

from __future__ import annotations

import math

DIGITS = 6  # significant digits: accuracies in % keep 4 decimals, seconds and losses their noise-free part


def tidy(value, digits: int = DIGITS):
    """Floats rounded to ``digits`` significant digits, recursively in dicts, lists and tuples;
    everything else (ints, strings, None, NaN, inf) unchanged."""
    if isinstance(value, float):
        if value == 0 or not math.isfinite(value):
            return value
        return round(value, digits - 1 - math.floor(math.log10(abs(value))))
    if isinstance(value, dict):
        return {key: tidy(item, digits) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(tidy(item, digits) for item in value)
    return value


def tidy_frame(frame, digits: int = DIGITS):
    """A DataFrame with its float columns tidied (for CSV exports)."""
    frame = frame.copy()
    for column in frame.columns:
        if frame[column].dtype.kind == "f":
            frame[column] = frame[column].map(lambda v: tidy(float(v), digits))
        elif frame[column].dtype == object:
            frame[column] = frame[column].map(lambda v: tidy(v, digits) if isinstance(v, float) else v)
    return frame
