"""Run settings written flat, as sweep and study specs and ``--set key=value`` write them."""

from __future__ import annotations

import dataclasses
import functools
import re
import sys

import yaml

from ..errors import SuiteError
from .run_config import RunConfig

FIELDS = {f.name for f in dataclasses.fields(RunConfig)} - {"hparams"}
FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(RunConfig) if f.name != "hparams"}  # "int | None", ...
# old spellings of settings -> their one name (in suite run flags, spec keys and --set alike)
ALIASES = {"attack_steps": "steps", "attack_alpha": "alpha", "ga_coef": "coef"}


_warned: set[str] = set()


def canonical(key, where: str = "") -> str:
    """A setting's one name; an old spelling is accepted with a warning on stderr."""
    if key in ALIASES:
        message = (
            f"warning: {where + ': ' if where else ''}{key!r} is the old name of {ALIASES[key]!r}; write {ALIASES[key]}"
        )
        if message not in _warned:
            _warned.add(message)
            print(message, file=sys.stderr)
        return ALIASES[key]
    return key


EXPONENT_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def parse_setting(item: str, flag: str = "--set") -> tuple[str, object]:
    """``"key=value"`` -> ``(key, YAML-parsed value)``; ``flag`` names the option in errors."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    key = canonical(key, f"{flag} {item}") if flag == "--set" else key
    if not sep or not key:
        example = "lmbda=1" if flag == "--hp" else "epochs=5"
        raise SuiteError(f"{flag} {item}: expected key=value, e.g. {flag} {example}")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise SuiteError(f"{flag} {item}: the value is not valid YAML ({err})") from None
    if isinstance(value, str) and EXPONENT_NUMBER.fullmatch(value.strip()):
        value = float(value)  # YAML 1.1 reads 1e3 (no dot) as text; on a command line it is a number
    return key, value


def split_settings(settings: dict) -> tuple[dict, dict]:
    """Flat settings -> (RunConfig fields, method hyperparameters): every key that is not a field
    (``lmbda``, ``ll_step``, ``steps``, ``coef``, ...) is a hyperparameter."""
    fields = {k: v for k, v in settings.items() if k in FIELDS}
    hparams = {
        **(settings.get("hparams") or {}),
        **{k: v for k, v in settings.items() if k not in FIELDS and k != "hparams"},
    }
    return fields, hparams


def method_hparams(methods=()) -> dict[str, set[str]]:
    """Each method's hyperparameter names: the built-ins' and those of the plug-ins ``methods`` names
    (resolved here; a built-in-only call never scans the installed plug-ins)."""
    from ..methods import METHODS, get_method

    names = [*METHODS, *(m for m in methods if m not in METHODS)]
    return {name: set(get_method(name).defaults(8.0)) for name in names}


@functools.cache
def _hparam_defaults(methods: tuple) -> dict:
    from ..methods import METHODS, get_method

    modules = [*METHODS.values(), *(get_method(m) for m in methods if m not in METHODS)]
    return {k: v for module in modules for k, v in module.defaults(8.0).items()}


def hparam_defaults(methods=()) -> dict:
    """Every method hyperparameter's default (at eps 8), by name: the built-ins' and those of the
    plug-ins ``methods`` names."""
    return _hparam_defaults(tuple(dict.fromkeys(methods)))


def hparam_kind(key: str, methods=()) -> str:
    """A hyperparameter's type, from its default: int, str, or a number (float; None: derived)."""
    default = hparam_defaults(methods).get(key)
    return {int: "int", str: "str"}.get(type(default), "float | None")


def valid_keys(methods=()) -> list[str]:
    """Every flat setting's name: the run configuration's fields and the methods' hyperparameters
    (the built-ins' and those of the plug-ins ``methods`` names)."""
    return sorted(FIELDS | set(hparam_defaults(methods)))
