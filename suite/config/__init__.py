"""What a run is: its configuration (hashed into its id), how it executes, and the rules for settings."""

from .run_config import LR_SCHEDULES, RunConfig, RunOptions

__all__ = ["LR_SCHEDULES", "RunConfig", "RunOptions"]
