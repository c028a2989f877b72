"""Each method's place, name and colour, shared by every table and figure of the report.

One ordered palette: rows of tables, legends and bars follow :data:`PALETTE`'s order (the plain
baselines first, then the single-step methods from the one that overfits most readily to the
regularised ones), and a method keeps its colour in every figure. A method missing here sorts
last, under its own name, in :data:`OTHER_COLOR`.
"""

from __future__ import annotations

PALETTE = [  # (method, label, colour), in report order
    ("standard", "Standard", "#7f7f7f"),
    ("pgd", "PGD-AT", "#9467bd"),
    ("fgsm", "FGSM", "#8c564b"),
    ("fast_at", "Fast-AT", "#d62728"),
    ("n_fgsm", "N-FGSM", "#2ca02c"),
    ("fast_at_ga", "Fast-AT-GA", "#ff7f0e"),
    ("fast_bat", "Fast-BAT", "#1f77b4"),
]
METHOD_ORDER = [method for method, _, _ in PALETTE]
METHOD_LABELS = {method: label for method, label, _ in PALETTE}
METHOD_COLORS = {method: colour for method, _, colour in PALETTE}
OTHER_COLOR = "#e377c2"


def method_label(method: str) -> str:
    return METHOD_LABELS.get(method, method)


def method_rank(method: str) -> int:
    return METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)


def color(method: str) -> str:
    return METHOD_COLORS.get(method, OTHER_COLOR)
