"""Experiment specs (sweeps and studies, YAML): read once, checked with the file and line of each key.

:func:`read_spec` composes the YAML document to learn the line of every key and item, then
loads it; :class:`SpecFile` reports a bad key or value as ``<file> line <n>: <what is wrong>``
(or names the ``--set`` flag it came from), so that sweeps and studies report mistakes alike.
Run settings (the keys of ``base``, a grid's axes, overrides) are checked against the run
configuration's fields and every method's hyperparameters (:mod:`suite.config.settings`).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from ..config import LR_SCHEDULES
from ..config.settings import FIELD_TYPES, hparam_kind, valid_keys
from ..errors import SuiteError, unknown_name


def _line_map(node, prefix=(), lines=None) -> dict:
    """``{("grid", "eps", 1): line}`` for every key and item of a composed YAML document (1-based)."""
    lines = {} if lines is None else lines
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = prefix + (key.value,)
            lines[path] = key.start_mark.line + 1
            _line_map(value, path, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[prefix + (i,)] = item.start_mark.line + 1
            _line_map(item, prefix + (i,), lines)
    return lines


class SpecFile:
    """A spec's data and the line of each of its keys; raises SuiteError naming the file and line
    (or the ``--set`` flag) of a bad key or value. ``loc`` is a key path (``("grid", "eps", 1)``)
    or a flag's text (``"--set eps=..."``)."""

    def __init__(self, path, data, lines: dict | None = None):
        self.path, self.data, self.lines = path, data, lines or {}

    def where(self, loc) -> str:
        if isinstance(loc, str):  # a --set flag
            return loc
        while loc and loc not in self.lines:
            loc = loc[:-1]
        return f"{self.path} line {self.lines[loc]}" if loc else str(self.path)

    def fail(self, loc, message: str):
        raise SuiteError(f"{self.where(loc)}: {message}")

    def top_keys(self, known, what: str) -> None:
        """The document is a mapping whose keys are among ``known``."""
        if not isinstance(self.data, dict):
            self.fail((), f"a {what} is a mapping with keys {', '.join(known)}")
        for key in self.data:
            if key not in known:
                self.fail((key,), f"{unknown_name('key', key, known)}")

    def key(self, key, loc, extra=()) -> None:
        """``key`` names a run setting or a method hyperparameter (or one of ``extra``)."""
        known = valid_keys() + list(extra)
        if key not in known:
            more = "; write method hyperparameters as flat keys" if key == "hparams" else ""
            self.fail(loc, f"{unknown_name('key', key, known)}{more}")

    def value(self, key, value, loc) -> None:
        """``value`` is a known name (method, arch, dataset, lr_schedule) or of the setting's type."""
        from ..data import DATASETS
        from ..methods import METHODS
        from ..models import ARCHS

        choices = {"method": METHODS, "arch": ARCHS, "dataset": DATASETS, "lr_schedule": LR_SCHEDULES}.get(key)
        if choices is not None:
            if value not in choices:
                self.fail(loc, str(unknown_name(key, value, choices)))
            return
        kind = FIELD_TYPES[key] if key in FIELD_TYPES else hparam_kind(key)
        ok = (value is None and "None" in kind) or (
            not isinstance(value, bool)
            and (
                ("int" in kind and isinstance(value, int))
                or ("float" in kind and isinstance(value, (int, float)))
                or ("str" in kind and isinstance(value, str))
            )
        )
        if not ok:
            self.fail(loc, f"{key} must be {kind.replace(' | None', ' or null')}, got {value!r}")


def read_spec(path, what: str) -> SpecFile:
    """Read the YAML spec at ``path`` (a ``what``: "sweep spec", "study spec") with its line map."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise SuiteError(f"cannot read {what} {path}: {err.strerror}") from None
    try:
        lines = _line_map(yaml.compose(text))
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise SuiteError(f"{path} is not valid YAML: {err}") from None
    return SpecFile(path, data, lines)
