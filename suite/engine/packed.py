"""Several runs in one process, sharing one GPU: each in a thread of its own, on a CUDA stream of its own.

Why: separate processes time-slice a GPU (their kernels never run at the same time), so K graphed
runs, each of which leaves most of the GPU idle at batch 128, reach together no more than one.
Runs in one process on their own streams may overlap their kernels. Each thread runs the whole
run (:func:`suite.engine.execute` through the launcher's job function: resume, checkpoints,
validation, final evaluation, its own record and lock), so a packed run is durable and resumes as
one alone does, and one failing run fails only itself.

Reproducibility: inside :func:`run_packed` every run's training step draws from a generator of
its own, seeded as the global one would be (:mod:`suite.engine.rng`), and what uses the global
generators holds their lock: a packed run computes what it computes alone (tests check the
metrics and final parameters bit for bit on a CPU). Three things are shared by a process and so
decide what may be packed together (:func:`packable`, :func:`pack_key`):

* dropout draws from the global generator inside the training step: networks with dropout are
  never packed;
* TF32 is a process-wide switch that the Trainer sets from the method's precision: only runs of
  one precision are packed together;
* CUDA graphs are captured one at a time (``suite.engine.cuda_graphs.CAPTURE_LOCK``).

With CUDA graphs a thread launches one graph per iteration, so Python's global lock is held only
briefly; eager runs are host-bound and gain less. ``suite bench --gpu-check`` measures both.
"""

from __future__ import annotations

import contextlib
import threading

import torch

from .rng import own_generators


def packable(config) -> str | None:
    """Why ``config`` (a resolved RunConfig) cannot share a process with other runs, or None if it can."""
    if config.dropout:
        return f"{config.arch} draws dropout masks from torch's global generator during training"
    return None


def pack_key(config) -> str:
    """Runs may be packed together only with the same key: the precision the method trains in on CUDA."""
    from ..methods import precision

    return precision(config.method)


def run_packed(tasks: list, device: torch.device) -> list:
    """Call every function of ``tasks`` (each training one run) at once, each in a thread of its own
    with generators of its own and, on CUDA, on a stream of its own; returns their results in order
    (a raised exception in place of a result). Waits for every thread."""
    results: list = [None] * len(tasks)

    def work(i: int) -> None:
        stream = (
            torch.cuda.stream(torch.cuda.Stream(device=device)) if device.type == "cuda" else contextlib.nullcontext()
        )
        try:
            with own_generators(), stream:
                results[i] = tasks[i]()
        except BaseException as err:  # noqa: BLE001 - reported as this run's outcome
            results[i] = err

    # daemon: an interrupted process does not wait for its runs (they resume from their last epoch)
    threads = [threading.Thread(target=work, args=(i,), name=f"packed-run-{i}", daemon=True) for i in range(len(tasks))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
