"""Whether a run's record may stand: a finished run is skipped only while its method's code is the
code it ran with.

Every record holds the hash of its method's code (``method_code``, :mod:`suite.methods.identity`).
When the method has changed since, the record is *stale*: its run is trained again from scratch,
since a result in a table must come from the code in the tree, and a changed method may change
every number. ``--accept-stale`` (``RunOptions.accept_stale``) keeps stale results instead, for an
edit the user knows to be harmless. A record made before records held the hash is *unknown*, and
is kept: nothing says it is stale.
"""

from __future__ import annotations

from ..config import RunOptions
from ..methods.identity import method_code
from ..store import RunDir

UNKNOWN = "unknown"


def recorded_code(run: RunDir) -> str | None:
    """The method-code hash in the run's summary, None where it has none (or no summary)."""
    return (run.read_summary() or {}).get("method_code")


def stale_reason(run: RunDir, method: str) -> str | None:
    """Why the run's record (finished or not) was made by other code than ``method``'s now, or None."""
    recorded = recorded_code(run)
    if recorded is None:
        return None
    current = method_code(method)
    if recorded == current:
        return None
    return f"method {method}'s code changed since this run was made (code {recorded}, now {current})"


def reusable(run: RunDir, method: str, options: RunOptions) -> bool:
    """Skip this run: finished with intact records, not ``--force``d, and current or ``--accept-stale``."""
    if options.force or not run.is_finished():
        return False
    return options.accept_stale or stale_reason(run, method) is None


def code_state(run: RunDir, method: str) -> str:
    """``current``, ``stale`` or ``unknown`` (a record without a hash): what a dry run shows."""
    recorded = recorded_code(run)
    if recorded is None:
        return UNKNOWN
    return "current" if recorded == method_code(method) else "stale"
