"""Storage: atomic files and safe checkpoints, the folder of one run, the table of all runs."""

from .atomic import (
    atomic_file,
    atomic_write_bytes,
    load_checkpoint,
    read_json,
    read_jsonl,
    save_checkpoint,
    write_json,
    write_jsonl,
    write_summary,
)
from .run_dir import RUNS, RunDir, RunLocked, iter_run_dirs
from .runs_table import filter_runs, model_metrics, runs_dataframe

__all__ = [
    "RUNS",
    "RunDir",
    "RunLocked",
    "atomic_file",
    "atomic_write_bytes",
    "filter_runs",
    "iter_run_dirs",
    "load_checkpoint",
    "model_metrics",
    "read_json",
    "read_jsonl",
    "runs_dataframe",
    "save_checkpoint",
    "write_json",
    "write_jsonl",
    "write_summary",
]
