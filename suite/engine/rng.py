"""Random numbers of a run that may share its process with others (``suite.engine.packed``).

A run alone draws everything from torch's global generators, seeded per epoch. Packed with
others (:func:`own_generators`, set by the packing driver in each run's thread), its training
step and its evaluation draw their random starts and noise from generators of its own instead,
seeded as the global ones would be (through :func:`suite.methods.perturbation.drawing_from`), so
it draws exactly the numbers it would draw alone, and packed runs evaluate at the same time. What
still uses the global generators (a network's initialisation, AutoAttack, which seeds them
itself, a CUDA-graph capture, which registers the default CUDA generator, and a run alone's
evaluation) seeds and draws while holding :data:`GLOBAL_RNG`, so that no other run reseeds them
meanwhile; a run alone takes the lock uncontended. Dropout draws from the global generator inside the training step, so a network with
dropout is never packed (``suite.engine.packed.packable``).
"""

from __future__ import annotations

import contextlib
import contextvars
import threading

import torch

GLOBAL_RNG = threading.RLock()
_OWN_GENERATORS = contextvars.ContextVar("own_generators", default=False)


@contextlib.contextmanager
def own_generators():
    """Runs started in here give their training steps generators of their own (:func:`run_generator`)."""
    token = _OWN_GENERATORS.set(True)
    try:
        yield
    finally:
        _OWN_GENERATORS.reset(token)


@contextlib.contextmanager
def seeded(seed: int, device: torch.device | None = None):
    """torch's global generators (CPU, and ``device`` if CUDA) seeded with ``seed`` inside, restored
    afterwards, under :data:`GLOBAL_RNG`."""
    devices = [device] if device is not None and device.type == "cuda" else []
    with GLOBAL_RNG, torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def seed_global(seed: int) -> None:
    """``torch.manual_seed(seed)`` under :data:`GLOBAL_RNG` (what dropout then draws from)."""
    with GLOBAL_RNG:
        torch.manual_seed(seed)


def run_generator(device: torch.device) -> torch.Generator | None:
    """Inside :func:`own_generators`, a generator of the run's own on ``device`` (the Trainer seeds it per
    epoch as it seeds the global ones); else None: the global generators, as a run alone uses."""
    return torch.Generator(device=device) if _OWN_GENERATORS.get() else None
