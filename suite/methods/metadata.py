"""What a method module declares about itself besides its math, read with fallbacks.

Every attribute is optional, so a plug-in that has only ``defaults`` and ``step`` works: it gets
its hyperparameters' names as help, its own name as label, a colour derived from its name, no
default search and no coupled hyperparameters. The attributes are listed in the docstring of
:mod:`suite.methods`; the contract test (tests/methods/test_contract.py) checks them for every
registered method.
"""

from __future__ import annotations

from types import ModuleType

from ..errors import SuiteError

# the eps (in /255) at which defaults are shown in help, and one more to tell whether they depend on it
HELP_EPS = (8.0, 16.0)


def hparam_help(module: ModuleType) -> dict[str, str]:
    """``HELP``: one line per hyperparameter; a hyperparameter without one gets an empty string."""
    declared = getattr(module, "HELP", None) or {}
    return {name: str(declared.get(name, "")) for name in module.defaults(HELP_EPS[0])}


def default_text(module: ModuleType, name: str) -> str:
    """A hyperparameter's default as help shows it: ``10``, ``5000 at eps 8, 2000 at eps 16``, ``derived``."""
    values = [module.defaults(eps).get(name) for eps in HELP_EPS]
    shown = ["derived" if v is None else f"{v:g}" if isinstance(v, float) else str(v) for v in values]
    if len(set(shown)) == 1:
        return shown[0]
    return ", ".join(f"{text} at eps {eps:g}" for text, eps in zip(shown, HELP_EPS))


def choices(module: ModuleType) -> dict[str, tuple]:
    """``CHOICES``: the values a text hyperparameter may take (``{"implicit": ("exact", "finite_diff")}``)."""
    return {name: tuple(values) for name, values in (getattr(module, "CHOICES", None) or {}).items()}


def label(name: str, module: ModuleType | None) -> str:
    """``LABEL``: the method's name in tables and legends; else the name it was asked by."""
    value = getattr(module, "LABEL", None) if module is not None else None
    return str(value) if value else name


def color(module: ModuleType | None) -> str | None:
    """``COLOR``: a matplotlib colour (``"#1f77b4"``, ``"tab:blue"``); None where it declares none."""
    value = getattr(module, "COLOR", None) if module is not None else None
    return str(value) if value else None


def feasible(module: ModuleType) -> bool:
    """``FEASIBLE``: whether the input its step trains on (the one its returned logits are of) lies
    in the eps-ball around x and in [0, 1]; the contract test holds it to that. Default False."""
    return bool(getattr(module, "FEASIBLE", False))


def search(module: ModuleType) -> dict:
    """``SEARCH``: ``suite tune``'s default search space, as a study spec's ``search`` writes it
    (``{"lmbda": [0.01, 1000]}``: log-uniform; or ``{name: {low, high, log}}``); empty if none."""
    return dict(getattr(module, "SEARCH", None) or {})


def couplings(module: ModuleType) -> dict[str, tuple]:
    """``COUPLED``: hyperparameters a study with ``coupled: true`` derives from a searched one,
    ``{target: (source, function of the source's value, "formula as text")}``."""
    declared = getattr(module, "COUPLED", None) or {}
    for target, entry in declared.items():
        if not (isinstance(entry, tuple) and len(entry) == 3 and callable(entry[1])):
            raise SuiteError(
                f"COUPLED[{target!r}] must be (source name, function, formula text), got {entry!r}; see docs/methods.md"
            )
    return dict(declared)


def symbol(module: ModuleType | None, name: str) -> str:
    """``SYMBOLS``: how a figure writes a hyperparameter (``{"lmbda": "λ"}``); else its name."""
    declared = (getattr(module, "SYMBOLS", None) or {}) if module is not None else {}
    return str(declared.get(name, name))
