"""A run's status, as its ``summary.json`` and ``suite runs`` give it."""

from __future__ import annotations

import enum


class RunStatus(str, enum.Enum):
    """Equal to its string (``RunStatus.FINISHED == "finished"``); records store ``.value``, plain JSON
    that every reader (pandas, W&B) takes as the string itself."""

    RUNNING = "running"  # being trained (or killed: listed as interrupted when nobody holds its lock)
    FINISHED = "finished"  # trained and evaluated
    FAILED = "failed"  # an error ended it; rerunning resumes from its last epoch
    PRUNED = "pruned"  # a callback (Optuna's pruner) stopped it
    INTERRUPTED = "interrupted"  # stopped by the user or a signal, or killed; rerunning resumes it
    INCOMPLETE = "incomplete"  # finished, but its per-epoch records are damaged (listings only)

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


STATUSES = tuple(status.value for status in RunStatus)
