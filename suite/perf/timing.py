"""How ``suite bench`` measures: variants interleaved round by round, medians, peak memory.

Every comparison is measured side by side in one run: the variants being compared are timed
in turn within each repetition (the order rotating from one repetition to the next), after
warm-up calls, and reported as medians and as ratios of medians.
"""

from __future__ import annotations

import ctypes
import gc
import platform
import re
import statistics
import sys
import time
from pathlib import Path

import torch

from ..engine.device import sync


def interleaved(fns: dict, reps: int, warmup: int, device: torch.device) -> dict[str, list[float]]:
    """Seconds of each call of ``fns[name]()``: ``warmup`` untimed rounds, then ``reps`` timed rounds.

    Within a round every function runs once, in an order that rotates from round to round, so
    drifting load (other processes, clock changes) falls on all variants alike.
    """
    names = list(fns)
    times = {name: [] for name in names}
    for r in range(warmup + reps):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            seconds = timed(fns[name], device)
            if r >= warmup:
                times[name].append(seconds)
    return times


def timed(fn, device: torch.device) -> float:
    """Seconds one call of ``fn`` takes: CUDA events on a GPU (the device's clock), else wall clock."""
    sync(device)
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def medians(times: dict[str, list[float]]) -> dict[str, float]:
    return {name: statistics.median(t) for name, t in times.items()}


def ratios(med: dict[str, float], base: str) -> dict[str, float]:
    return {name: t / med[base] for name, t in med.items()}


def peak_memory(fn, device: torch.device) -> int | None:
    """Bytes that one call of ``fn`` needs above what was allocated before it.

    CUDA: ``torch.cuda.max_memory_allocated``. CPU (Linux with glibc): the rise of the
    process's resident high-water mark, reset before the call (``/proc/self/clear_refs``) after
    returning freed heap memory to the system (``malloc_trim``); None where that is not possible.
    """
    gc.collect()
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        sync(device)
        return torch.cuda.max_memory_allocated(device) - before
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current VmRSS
        before = _proc_status_kib("VmRSS")
        fn()
        return 1024 * (_proc_status_kib("VmHWM") - before)
    except (OSError, AttributeError, ValueError):
        return None


def _proc_status_kib(key: str) -> int:
    match = re.search(rf"^{key}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    if match is None:
        raise ValueError(key)
    return int(match.group(1))


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
    except OSError:
        match = None
    cpu = match.group(1).strip() if match else (platform.processor() or platform.machine())
    threads = torch.get_num_threads()
    return f"{cpu}, {threads} torch thread{'s' if threads > 1 else ''}"


def progress(message: str) -> None:
    """A progress line of a benchmark, on stderr (stdout carries the table or JSON)."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)
