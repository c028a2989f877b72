"""Run settings written flat, as sweep and study specs and ``--set key=value`` write them."""
from __future__ import annotations

import dataclasses

import yaml

from .config import RunConfig
from .errors import SuiteError

FIELDS = {f.name for f in dataclasses.fields(RunConfig)} - {"hparams"}


def parse_setting(item: str, flag: str = "--set") -> tuple[str, object]:
    """``"key=value"`` -> ``(key, YAML-parsed value)``; ``flag`` names the option in errors."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise SuiteError(f"{flag} {item}: expected key=value, e.g. {flag} epochs=5")
    try:
        return key, yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise SuiteError(f"{flag} {item}: the value is not valid YAML ({err})") from None


def split_settings(settings: dict) -> tuple[dict, dict]:
    """Flat settings -> (RunConfig fields, method hyperparameters): every key that is not a field
    (``lmbda``, ``ll_step``, ``steps``, ``coef``, ...) is a hyperparameter."""
    fields = {k: v for k, v in settings.items() if k in FIELDS}
    hparams = {**(settings.get("hparams") or {}),
               **{k: v for k, v in settings.items() if k not in FIELDS and k != "hparams"}}
    return fields, hparams
