"""submitit's log lines, each printed once.

At import, submitit gives its logger two stream handlers: ``submitit_out`` (stdout, every level)
and ``submitit_err`` (stderr, warnings and errors). A warning thus reaches both streams, and in a
terminal, where the two are one, it shows twice: on a cluster without accounting, every status
poll's "Bypassing sacct error" line appeared twice. :func:`print_each_line_once` keeps warnings
and errors off stdout, so each appears once, on stderr; info and debug lines stay on stdout.
With ``SUBMITIT_LOG_LEVEL=NOCONFIG`` submitit adds no handlers and there is nothing to do.
"""

from __future__ import annotations

import logging


class _BelowWarning(logging.Filter):
    """Lets through only records below WARNING (those that go to stdout alone)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.WARNING


_BELOW_WARNING = _BelowWarning()


def print_each_line_once() -> None:
    """Filter submitit's stdout handler so that its warnings print once, on stderr (idempotent)."""
    from submitit.core import logger  # importing it configures submitit's handlers

    for handler in logger.get_logger().handlers:
        if handler.get_name() == "submitit_out" and _BELOW_WARNING not in handler.filters:
            handler.addFilter(_BELOW_WARNING)
