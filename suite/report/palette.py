"""Each method's place, name and colour, shared by every table and figure of the report.

Rows of tables, legends and bars follow :data:`METHOD_ORDER` (the plain baselines first, then the
single-step methods from the one that overfits most readily to the regularised ones); a method not
in it (a plug-in) sorts after them. Names and colours are the methods' own ``LABEL`` and ``COLOR``
(:mod:`suite.methods.metadata`). A method without a colour gets one from :data:`SPARE_COLORS`,
picked by a hash of its name: the same in every figure and run, never a built-in's. Inside
:func:`distinct` (the report wraps its figures in it) two such methods that hash to one colour
get different ones.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
from types import ModuleType

from ..methods import METHODS
from ..methods import metadata as meta

METHOD_ORDER = ["standard", "pgd", "fgsm", "fast_at", "n_fgsm", "fast_at_ga", "fast_bat"]
# colours for methods that declare none: matplotlib's tab20 and a few more, less the built-ins' own
SPARE_COLORS = [
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#aec7e8",
    "#ffbb78",
    "#98df8a",
    "#ff9896",
    "#c5b0d5",
    "#c49c94",
    "#f7b6d2",
    "#9edae5",
    "#dbdb8d",
    "#393b79",
    "#637939",
    "#8c6d31",
    "#843c39",
    "#7b4173",
    "#000000",
]

_assigned: dict[str, str] | None = None  # inside distinct(): method -> colour


@functools.lru_cache(maxsize=256)
def method_module(method: str) -> ModuleType | None:
    """The method's module, or None where it does not resolve here (a plug-in not installed)."""
    if method in METHODS:
        return METHODS[method]
    from ..errors import SuiteError
    from ..methods import get_method

    try:
        return get_method(method)
    except SuiteError:
        return None


def method_label(method: str) -> str:
    return meta.label(method, method_module(method))


def method_rank(method: str) -> int:
    return METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)


def hashed_color(method: str) -> str:
    """A spare colour picked by the name's hash: stable across processes (not Python's ``hash``)."""
    digest = int.from_bytes(hashlib.sha256(method.encode()).digest()[:8], "big")
    return SPARE_COLORS[digest % len(SPARE_COLORS)]


def color(method: str) -> str:
    """The method's ``COLOR``; else its hashed spare colour (inside :func:`distinct`, the one given it there)."""
    declared = meta.color(method_module(method))
    if declared:
        return declared
    if _assigned is not None and method in _assigned:
        return _assigned[method]
    return hashed_color(method)


def assign_colors(methods) -> dict[str, str]:
    """Colours for methods without one of their own, distinct where the spares allow: each takes its
    hashed colour unless a method before it (in name order, so the same set always gets the same
    colours) or a declared colour has it, then the next free spare."""
    taken = {meta.color(method_module(m)) for m in methods} - {None}
    taken |= {meta.color(module) for module in METHODS.values()}
    out = {}
    for method in sorted(set(methods)):
        if meta.color(method_module(method)):
            continue
        start = SPARE_COLORS.index(hashed_color(method))
        ring = SPARE_COLORS[start:] + SPARE_COLORS[:start]
        out[method] = next((c for c in ring if c not in taken), ring[0])
        taken.add(out[method])
    return out


@contextlib.contextmanager
def distinct(methods):
    """Within this block, :func:`color` gives ``methods`` without a declared colour distinct colours."""
    global _assigned
    previous, _assigned = _assigned, assign_colors(methods)
    try:
        yield
    finally:
        _assigned = previous


METHOD_LABELS = {method: method_label(method) for method in METHOD_ORDER}
METHOD_COLORS = {method: meta.color(METHODS[method]) for method in METHOD_ORDER}
PALETTE = [(method, METHOD_LABELS[method], METHOD_COLORS[method]) for method in METHOD_ORDER]
