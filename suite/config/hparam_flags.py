"""``suite run``'s method hyperparameter flags, made from the methods' own files.

Each hyperparameter of a method gets ``--<name with dashes>`` (the name specs and ``--set`` use),
typed by its default (int, float, text, or a YAML boolean), restricted to the method's
``CHOICES``, with the method's ``HELP`` line and the default its ``defaults`` gives. Built-in
methods' flags exist from the start; installed plug-ins' (entry points) and a dotted
``--method pkg.module``'s are added just before ``suite run`` parses its arguments, so other
commands never import a plug-in, and a plug-in that fails to import breaks only its own runs.
"""

from __future__ import annotations

import argparse
from types import ModuleType

import yaml

from ..methods import metadata as meta
from .settings import ALIASES, FIELDS

DEST = "hparam_flags"  # the namespace attribute listing the hyperparameters that have a flag here


def yaml_bool(text: str) -> bool:
    """A boolean written as YAML writes one (true/false, yes/no, on/off)."""
    value = yaml.safe_load(text)
    if not isinstance(value, bool):
        raise argparse.ArgumentTypeError(f"{text!r} is not a boolean; write true or false")
    return value


def flag_type(defaults: list):
    """The argparse type of a hyperparameter whose defaults (over methods) are ``defaults``."""
    kinds = {type(v) for v in defaults}
    if kinds == {bool}:
        return yaml_bool
    if kinds == {str}:
        return str
    if kinds == {int}:
        return int
    return float  # a float, a derived (None) default, or methods that disagree on int and float


def flag_help(owners: dict[str, ModuleType], name: str) -> str:
    """One line over every method having ``name``: ``fast_bat: lower-level step a in /255 (default
    5000 at eps 8, 2000 at eps 16)``; methods with one help text share it."""
    by_text: dict[str, list[str]] = {}
    for method, module in owners.items():
        by_text.setdefault(meta.hparam_help(module).get(name, ""), []).append(method)
    parts = []
    for text, methods in by_text.items():
        shown = [meta.default_text(owners[m], name) for m in methods]
        default = shown[0] if len(set(shown)) == 1 else ", ".join(f"{m} {d}" for m, d in zip(methods, shown))
        parts.append(f"{', '.join(methods)}{': ' + text if text else ''} (default {default})")
    old = [f"--{o.replace('_', '-')}" for o, new in ALIASES.items() if new == name]
    return "; ".join(parts).replace("%", "%%") + (f"; old name {', '.join(old)}" if old else "")


def add_hparam_flags(parser: argparse.ArgumentParser, group, methods: dict[str, ModuleType]) -> list[str]:
    """Add a flag for every hyperparameter of ``methods`` that has none yet (a hyperparameter named
    like a run setting or another option keeps only ``--hp``); returns the hyperparameters added."""
    owners: dict[str, dict[str, ModuleType]] = {}
    for method, module in methods.items():
        for name in module.defaults(meta.HELP_EPS[0]):
            owners.setdefault(name, {})[method] = module
    known = set(parser.get_default(DEST) or ())
    added = []
    for name, of in owners.items():
        flag = "--" + name.replace("_", "-")
        if name in known or name in FIELDS or flag in parser._option_string_actions:
            continue
        values = [m.defaults(meta.HELP_EPS[0])[name] for m in of.values()]
        options = sorted({c for m in of.values() for c in meta.choices(m).get(name, ())})
        group.add_argument(
            flag,
            dest=name,
            type=flag_type([v for v in values if v is not None] or [0.0]),
            choices=options if options and all(isinstance(v, str) for v in values) else None,
            help=flag_help(of, name),
        )
        added.append(name)
    parser.set_defaults(**{DEST: [*known, *added]})
    return added


def method_named(args: list[str]) -> str | None:
    """The value of ``--method`` in raw arguments (``--method x`` or ``--method=x``), the last one."""
    found = None
    for i, arg in enumerate(args):
        if arg == "--method" and i + 1 < len(args):
            found = args[i + 1]
        elif arg.startswith("--method="):
            found = arg.split("=", 1)[1]
    return found


def plugin_modules(args: list[str]) -> dict[str, ModuleType]:
    """The plug-ins whose flags ``args`` may use: the ``--method`` named, when it is no built-in, and
    with ``--help`` every installed one. A built-in's run imports no plug-in. Those that fail to
    import are left for the run itself to refuse in one line."""
    from ..errors import SuiteError
    from ..methods import METHODS, get_method, plugin_names
    from .run_config import RunConfig

    named = method_named(args) or RunConfig.method
    asking = bool({"-h", "--help"} & set(args))
    if named in METHODS and not asking:
        return {}
    names = [n for n in plugin_names() if n not in METHODS] if asking else []
    if named not in METHODS and named not in names:
        names.append(named)
    modules = {}
    for name in names:
        try:
            modules[name] = get_method(name)
        except SuiteError:
            continue
    return modules


def hparams_from_args(args: argparse.Namespace) -> dict:
    """The hyperparameters given on the command line: the flags, then ``--hp NAME=VALUE`` (later wins)."""
    from .settings import canonical, parse_setting

    given = {name: getattr(args, name) for name in getattr(args, DEST, ()) if getattr(args, name, None) is not None}
    for item in getattr(args, "hp", None) or ():
        key, value = parse_setting(item, "--hp")
        given[canonical(key, f"--hp {item}")] = value
    return given
