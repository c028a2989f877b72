"""The ``suite`` command line."""
from __future__ import annotations

import argparse
import sys

from .errors import SuiteError, os_error_line


def build_parser() -> argparse.ArgumentParser:
    """Every module in ``suite/commands/`` is a sub-command: adding one touches no other file."""
    import importlib
    import pkgutil

    from . import commands

    parser = argparse.ArgumentParser(prog="suite", description="Fast-BAT reproduction suite.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
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
    except BrokenPipeError:            # `suite runs | head`: the reader left; not an error
        sys.stderr.close()
        return 0
    except OSError as err:             # a folder that is a file, read-only, full: the path and the problem
        print(f"error: {os_error_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
