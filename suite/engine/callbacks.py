"""The training loop's seam for tracking and pruning.

A callback sees the run start, every finished epoch and the run's end. It may raise
``RunPruned`` from ``on_epoch_end`` to stop a hopeless run (Optuna's pruner does); the run
is then recorded with status ``pruned``.
"""

from __future__ import annotations


class RunPruned(Exception):
    """Raised by a callback to stop the run early; the run is recorded as pruned."""


class Callback:
    def on_start(self, run, config, record: dict) -> None:
        """Called once per process before the first epoch; ``record`` is the summary being written."""

    def on_epoch_end(self, epoch: int, metrics: dict) -> None:
        """Called after each epoch's checkpoint is written, with that epoch's metrics row."""

    def on_end(self, record: dict) -> None:
        """Called with the final summary (status finished, failed or pruned)."""
