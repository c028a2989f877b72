"""Stop signals: SIGTERM, SIGINT, SIGUSR1 and SIGUSR2 stop a run at a safe point instead of killing it.

Why: a scheduler (Slurm's pre-limit signal, a requeue or preemption), a terminal (Ctrl-C) or an
operator (``kill``) asks a run to stop. Killed at once, its record stays "running" and whatever was
half done is lost. Here the handler only sets a process-wide flag; every trainer (the main thread's,
or packed runs' threads: handlers can be installed only in the main thread) polls it between
iterations and after each epoch's checkpoint, and raises :class:`Stopped` there. The last complete
epoch's checkpoint stays the resume point, so a resume is bit-identical to an uninterrupted run.

While a run is in its final evaluation (it writes nothing until the end, and a resume redoes it), a
trainer in the main thread asks for :func:`raising_at_once`: a signal then raises at once, as Ctrl-C
always did, instead of waiting for an evaluation that can take minutes.
"""

from __future__ import annotations

import contextlib
import signal
import threading

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2)


class Stopped(KeyboardInterrupt):
    """A stop signal reached a safe point. A KeyboardInterrupt, so that what handles Ctrl-C handles it."""

    def __init__(self, signum: int):
        super().__init__(signal_name(signum))
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by this signal."""
        return 128 + self.signum


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class _State:
    """The process-wide flag: the first stop signal received while handlers are installed."""

    def __init__(self):
        self.signum: int | None = None
        self.depth = 0  # nested stopping_on_signals() in the main thread
        self.raise_now = False

    def handle(self, signum, frame) -> None:
        if self.signum is None:
            self.signum = signum
        if self.raise_now:  # set only by the main thread, where this handler runs
            self.raise_now = False
            raise Stopped(self.signum)


_STATE = _State()


def requested() -> int | None:
    """The stop signal received, or None."""
    return _STATE.signum


def check() -> None:
    """A safe point: raise :class:`Stopped` if a stop signal has been received."""
    if _STATE.signum is not None:
        raise Stopped(_STATE.signum)


def in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def raising_at_once():
    """Inside, a stop signal raises :class:`Stopped` at once (in the main thread only; elsewhere the
    handler cannot reach the trainer, which then finishes what it is doing)."""
    if not in_main_thread() or _STATE.depth == 0:
        yield
        return
    check()
    _STATE.raise_now = True
    try:
        yield
    finally:
        _STATE.raise_now = False


@contextlib.contextmanager
def stopping_on_signals(signals=STOP_SIGNALS):
    """Install the stop handlers for the block (main thread only; nested blocks share the outer
    one's), then restore the handlers found. Yields nothing: ask :func:`requested`."""
    if not in_main_thread() or _STATE.depth:
        _STATE.depth += in_main_thread()
        try:
            yield
        finally:
            _STATE.depth -= in_main_thread()
        return
    previous = {sig: signal.getsignal(sig) for sig in signals}
    _STATE.signum, _STATE.raise_now = None, False
    _STATE.depth = 1
    for sig in signals:
        signal.signal(sig, _STATE.handle)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        _STATE.depth, _STATE.raise_now = 0, False
        _STATE.signum = None


@contextlib.contextmanager
def ignoring(*signals):
    """Ignore ``signals`` for the block: a child process started inside inherits the ignored
    disposition (Python then leaves SIGINT alone at its start)."""
    previous = {sig: signal.getsignal(sig) for sig in signals}
    for sig in signals:
        signal.signal(sig, signal.SIG_IGN)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
