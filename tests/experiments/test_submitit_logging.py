"""submitit's log lines print once: its warnings went to both stdout and stderr."""

from __future__ import annotations

import subprocess
import sys

LOG = """
import logging, sys
import submitit
if sys.argv[1] == "filtered":
    from suite.experiments.submitit_logging import print_each_line_once
    print_each_line_once()
    print_each_line_once()  # twice: still one filter
log = logging.getLogger("submitit")
log.warning("Call #1 - Bypassing sacct error")
log.info("an info line")
"""


def streams(mode: str) -> tuple[str, str]:
    done = subprocess.run([sys.executable, "-c", LOG, mode], capture_output=True, text=True, timeout=60, check=True)
    return done.stdout, done.stderr


def test_warnings_print_once_on_stderr_and_info_stays_on_stdout():
    out, err = streams("filtered")
    assert (out + err).count("Bypassing sacct error") == 1 and "Bypassing sacct error" in err
    assert out.count("an info line") == 1 and "an info line" not in err


def test_submitit_alone_prints_each_warning_twice():
    """The behaviour the filter undoes; if submitit changes it, the filter may go."""
    out, err = streams("plain")
    assert "Bypassing sacct error" in out and "Bypassing sacct error" in err
