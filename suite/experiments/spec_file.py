"""Experiment specs (sweeps and studies, YAML): read once, checked with the file and line of each key.

:func:`read_spec` composes the YAML document to learn the line of every key and item, then
loads it; :class:`SpecFile` reports a bad key or value as ``<file> line <n>: <what is wrong>``
(or names the ``--set`` flag it came from), so that sweeps and studies report mistakes alike.
Run settings (the keys of ``base``, a grid's axes, overrides) are checked against the run
configuration's fields and every method's hyperparameters (:mod:`suite.config.settings`): the
built-ins' and those of the plug-in methods the spec names (:meth:`SpecFile.find_methods`).

A spec is bounded before anything in it is expanded: the file's size (``MAX_SPEC_BYTES``), and
the number of YAML nodes with every alias expanded (``MAX_SPEC_NODES``, counted on the composed
node graph, where an alias is one shared node: linear in the file, so an alias bomb is refused
in milliseconds instead of being expanded into gigabytes) and their depth (``MAX_SPEC_DEPTH``).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from ..config import LR_SCHEDULES
from ..config.settings import FIELD_TYPES, hparam_kind, valid_keys
from ..errors import SuiteError, unknown_name, warn

MAX_SPEC_BYTES = 256 * 1024  # the shipped specs are under 4 KB
MAX_SPEC_NODES = 20_000  # keys, values and items, aliases expanded
MAX_SPEC_DEPTH = 32  # nesting of mappings and lists
NAMED = ("method", "arch", "dataset", "lr_schedule")  # settings whose value is a name
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml where PyYAML has it


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

    def __init__(self, path, data, lines: dict | None = None, what: str = "spec"):
        self.path, self.data, self.lines, self.what = path, data, lines or {}, what
        self.methods: tuple = ()  # the plug-in methods the spec names, whose hyperparameters are keys

    def find_methods(self, overrides: list[str] | dict = ()) -> tuple:
        """Resolve every plug-in method the spec (or a ``--set key=value`` of ``overrides``) names,
        before any key is checked: their hyperparameters are keys too. A method that does not
        resolve (unknown, clashing, not importable) fails with the line that names it."""
        from ..config.settings import parse_setting

        found = list(_method_values(self.data))
        pairs = overrides.items() if isinstance(overrides, dict) else (parse_setting(item) for item in overrides)
        for key, value in pairs:
            if key == "method":
                found += [(v, f"--set method={v}") for v in (value if isinstance(value, list) else [value])]
        for name, loc in found:
            self._check_method(name, loc)
        return self.methods

    def _check_method(self, name, loc) -> None:
        from ..methods import METHODS, get_method

        if not isinstance(name, str) or name in METHODS or name in self.methods:
            return
        try:
            get_method(name)
        except SuiteError as err:
            self.fail(loc, str(err))
        self.methods += (name,)

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
        known = valid_keys(self.methods) + list(extra)
        if key not in known:
            more = "; write method hyperparameters as flat keys" if key == "hparams" else ""
            self.fail(loc, f"{unknown_name('key', key, known)}{more}")

    def _list_hint(self, value, loc) -> str:
        """A list where one value belongs: in a sweep's ``base``, several values make a grid axis."""
        if isinstance(value, list) and self.what == "sweep spec" and isinstance(loc, tuple) and loc[:1] == ("base",):
            return "; to run several values, make it a grid axis (grid: {key: [a, b]})"
        return ""

    def value(self, key, value, loc) -> None:
        """``value`` is a known name (method, arch, dataset, lr_schedule) or of the setting's type."""
        from ..data import DATASETS
        from ..models import ARCHS

        if key in NAMED and not isinstance(value, str):
            self.fail(loc, f"{key} must be a name (a string), got {shown_value(value)}{self._list_hint(value, loc)}")
        if key == "eps" and isinstance(value, str) and value.replace(" ", "").endswith("/255"):
            self.fail(loc, f"eps is in units of 1/255: write eps: {value.split('/')[0].strip()} for {value}")
        if key == "method":  # a built-in, an entry point or a dotted path (suite.methods.get_method)
            self._check_method(value, loc)
            return
        choices = {"arch": ARCHS, "dataset": DATASETS, "lr_schedule": LR_SCHEDULES}.get(key)
        if choices is not None:
            if value not in choices:
                self.fail(loc, str(unknown_name(key, value, choices)))
            return
        kind = FIELD_TYPES[key] if key in FIELD_TYPES else hparam_kind(key, self.methods)
        ok = (value is None and "None" in kind) or (
            not isinstance(value, bool)
            and (
                ("int" in kind and isinstance(value, int))
                or ("float" in kind and isinstance(value, (int, float)))
                or ("str" in kind and isinstance(value, str))
            )
        )
        if not ok:
            self.fail(
                loc,
                f"{key} must be {kind.replace(' | None', ' or null')}, got {shown_value(value)}{self._list_hint(value, loc)}",
            )
        if key == "eps" and 0 < value < 1:
            warn_small_eps(value, self.where(loc))


def _method_values(node, path=()):
    """``(name, key path)`` of every value of a ``method`` key in a spec's data (a list's items too)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "method":
                items = enumerate(value) if isinstance(value, list) else [(None, value)]
                yield from ((v, path + (key,) + (() if i is None else (i,))) for i, v in items)
            else:
                yield from _method_values(value, path + (key,))
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _method_values(item, path + (i,))


def warn_small_eps(value: float, where: str) -> None:
    """eps is in /255: a value below 1 is almost surely a fraction of the pixel range (0.031 for 8/255)."""
    warn(
        f"{where}: eps {value:g} is in units of 1/255, so it trains at {value:g}/255; "
        f"for {value:g} of the pixel range write {value * 255:.3g} (eps 8 means 8/255)"
    )


def shown_value(value) -> str:
    """A value as the spec wrote it, kind first: ``a mapping {'a': 1}``, ``a list ['fast_at']``, ``'x'``."""
    text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    kind = "a mapping " if isinstance(value, dict) else "a list " if isinstance(value, list) else ""
    return kind + text


def _children(node) -> list:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def check_size(root, path) -> int:
    """The number of nodes of a composed YAML document with every alias expanded, and nothing
    built: each node is visited once (a shared, aliased node counts as often as it is used).
    Raises SuiteError past MAX_SPEC_NODES or MAX_SPEC_DEPTH, or for an alias inside itself."""
    sizes, depths, on_path = {}, {}, set()
    stack = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            children = _children(node)
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            depths[key] = 1 + max((depths[id(c)] for c in children), default=0)
            if sizes[key] > MAX_SPEC_NODES:
                raise _too_many(path, node.start_mark.line + 1)
            if depths[key] > MAX_SPEC_DEPTH:
                raise SuiteError(f"{path} line {node.start_mark.line + 1}: nested more than {MAX_SPEC_DEPTH} deep")
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise SuiteError(f"{path} line {node.start_mark.line + 1}: an alias refers to the value that holds it")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)
    return sizes[id(root)]


def _too_many(path, line=None) -> SuiteError:
    where = f"{path} line {line}" if line else str(path)
    return SuiteError(
        f"{where}: the spec holds more than {MAX_SPEC_NODES:,} YAML values (aliases expanded); "
        f"a spec lists settings and grid axes: is it the right file?"
    )


def _count_events(text: str, path) -> None:
    """Stream the parser's events (a node is one or two) and stop as soon as there are too many,
    before a single node is composed."""
    loader = _LOADER(text)
    try:
        for _ in range(2 * MAX_SPEC_NODES + 4):  # stream, document, and two per collection
            if not loader.check_event():
                return
            loader.get_event()
        if loader.check_event():
            raise _too_many(path)
    except yaml.YAMLError:
        return  # composing reports it with its line
    finally:
        loader.dispose()


def parse_yaml(text: str, path):
    """``(data, line map)`` of a YAML document, its size checked before any Python object is built."""
    _count_events(text, path)
    loader = _LOADER(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        check_size(node, path)
        return loader.construct_document(node), _line_map(node)
    except yaml.YAMLError as err:
        raise SuiteError(f"{path} is not valid YAML: {' '.join(str(err).split())}") from None
    finally:
        loader.dispose()


def read_spec(path, what: str) -> SpecFile:
    """Read the YAML spec at ``path`` (a ``what``: "sweep spec", "study spec") with its line map.
    At most MAX_SPEC_BYTES are read, so that a huge file (or /dev/zero) is refused at once."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_SPEC_BYTES + 1)
    except OSError as err:
        raise SuiteError(f"cannot read {what} {path}: {err.strerror}") from None
    if len(raw) > MAX_SPEC_BYTES:
        raise SuiteError(
            f"{path} is larger than {MAX_SPEC_BYTES // 1024} KiB; a {what} lists settings and grid axes "
            f"(the shipped ones are under 4 KiB): is it the right file?"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise SuiteError(
            f"{path} is not UTF-8 text ({err.reason} at byte {err.start}): is it the right file?"
        ) from None
    data, lines = parse_yaml(text, path)
    return SpecFile(path, data, lines, what)
