"""The ``suite`` command line."""

from __future__ import annotations

import argparse
import sys

from .engine.signals import Stopped
from .errors import SuiteError, os_error_line, unknown_name


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every flag shows its default, unless it has none (None, off) or its help names it already;
    descriptions are wrapped, and epilogs written with line breaks (examples) are kept as written."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or action.default == [] or "default" in text:
            return text
        return super()._get_help_string(action)

    def _fill_text(self, text, width, indent):
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


class Parser(argparse.ArgumentParser):
    """The parser of ``suite`` and its sub-commands: :class:`HelpFormatter` for all of them, and a
    value outside a flag's choices (a sub-command, a data set, a preset, a bench section) answered
    with the closest one, as every unknown name is (:func:`suite.errors.unknown_name`)."""

    before_parse = None  # a sub-command's hook, (parser, its raw arguments) -> None: suite run's plug-in flags

    def __init__(self, *args, **kwargs):
        kwargs["formatter_class"] = HelpFormatter
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args=None, namespace=None):
        if self.before_parse is not None:
            hook, self.before_parse = self.before_parse, None  # once
            hook(self, list(sys.argv[1:] if args is None else args))
        return super().parse_known_args(args, namespace)

    def _check_value(self, action, value):  # argparse's one place for "invalid choice"
        if action.choices is not None and value not in action.choices:
            what = (action.metavar or action.dest or "choice").strip("-").replace("_", " ").lower()
            raise argparse.ArgumentError(action, str(unknown_name(what, value, action.choices)))

    def add_subparsers(self, **kwargs):
        kwargs.setdefault("parser_class", Parser)
        return super().add_subparsers(**kwargs)


def build_parser() -> argparse.ArgumentParser:
    """Every module in ``suite/commands/`` is a sub-command: adding one touches no other file."""
    import importlib
    import pkgutil

    from . import commands

    parser = Parser(prog="suite", description="Fast-BAT reproduction suite.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    for module in sorted(m.name for m in pkgutil.iter_modules(commands.__path__)):
        importlib.import_module(f"suite.commands.{module}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SuiteError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `suite runs | head`: the reader left; not an error
        sys.stderr.close()
        return 0
    except OSError as err:  # a folder that is a file, read-only, full: the path and the problem
        print(f"error: {os_error_line(err)}", file=sys.stderr)
        return 2
    except Stopped as stop:  # a stop signal reached a safe point; the run's record says where
        print(f"stopped by {stop}; rerun the same command to resume", file=sys.stderr)
        return stop.exit_code
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
